"""Every bound the runtime enforces, in one place (listed in docs/reliability.md).

Hashes stop accidents, not attacks: a bundle whose sha256 values were rewritten reaches these checks
unchanged, so each count, length and size a file or a caller can choose has a named ceiling here,
and going past it is a typed error, never a slow death. Modules import the constant they enforce;
nothing else defines a limit."""

import os

# -- files of a bundle (runtime/bundle.py, runtime/bundle_files.py) -------------------------------
MAX_MANIFEST_BYTES = 4 << 20          # manifest.json: the 10-variant demo writes 29 KB
MAX_VOCAB_BYTES = 32 << 20            # vocab.json: MAX_VOCAB_WORDS words of ~50 characters (a novel: 135 KB)
MAX_MODEL_BYTES = 1 << 30             # each model file
# Parsed JSON costs ~100 bytes per value whatever its text ("[]," is 3 bytes), so the number of
# values (keys included) is bounded before json.loads runs, not only the byte size.
MAX_MANIFEST_VALUES = 1 << 17         # JSON values in manifest.json (the demo: 1,744 for 10 variants)

# -- manifest fields (runtime/bundle.py) --------------------------------------------------------------
MAX_VARIANTS = 64                     # variants in one manifest (the exporter writes 10)
MAX_PREFERENCE = 64                   # entries in the measured (variant, package) preference
MAX_NAME_CHARS = 128                  # variant names, tensor names, package keys, quantization
MAX_VOCAB_SIZE = 1 << 22              # model output width (ids)
MAX_WINDOW = 4096                     # window length (ids)
MAX_DIM = 1 << 24                     # any one tensor dimension in the manifest
MAX_RANK = 8                          # dimensions of one tensor (the runtime reads rank 2 only)
MAX_TENSORS = 8                       # inputs, and outputs, of one variant (a step variant has 3)
MAX_PACKAGES = 8                      # entries of a variant's runtimes / parity / cost (3 packages exist)
MAX_INFO_VALUES = 4096                # JSON values in one informative field (details, a parity or runtimes entry)
MAX_INFO_DEPTH = 8                    # nesting of an informative field (the exporter writes 4 levels)
MAX_NOTE_CHARS = 1 << 16              # one informative string (a converter note, a failure reason line)

# -- vocabulary fields (runtime/tokenizer.py) -------------------------------------------------------
MAX_VOCAB_WORDS = 1 << 19             # word_counts entries: a novel has ~7,300, wikitext-103 267,735
MAX_WORD_CHARS = 1024                 # one word or the OOV token: English tops out near 45; room for hashes, URLs
MAX_SPLIT_CHARS = 8                   # `split`: text grows by len(split) per filtered character (Keras: " ")
MAX_FILTER_CHARS = 4096               # `filters`: Keras' default has 33 characters
MAX_COUNT = (1 << 63) - 1             # a word count or document_count (an int64 never overflows on a corpus)
MAX_VOCAB_VALUES = 4 * MAX_VOCAB_WORDS + 64   # JSON values in vocab.json: 3 per word ([word, count]), config, slack

# -- TFLite allow-list (runtime/allowlist/tflite.py) ------------------------------------------------
TFLITE_MAX_SUBGRAPHS = 1              # the exporter writes one subgraph (no WHILE/IF bodies: the LSTM is unrolled)
TFLITE_MAX_SUBGRAPH_ENDS = 3          # subgraph inputs, and outputs: window 1 and 1; step ids, h, c and logits, h, c
TFLITE_MAX_SIGNATURES = 1             # one serving signature
TFLITE_MAX_OPERATOR_CODES = 32        # distinct (operator, version) entries; the exporter uses at most 12
TFLITE_MAX_TENSORS = 1 << 17          # tensors in the subgraph: an unrolled window of 4096 steps needs ~80k
TFLITE_MAX_OPERATORS = 1 << 17        # operators in the subgraph (same reasoning)
TFLITE_MAX_BUFFERS = 1 << 17          # buffers (at most one per tensor, plus metadata)
TFLITE_MAX_OPERATOR_TENSORS = 4096 + 8  # inputs + outputs of one operator (UNPACK: one output per window step)
TFLITE_MAX_METADATA = 8               # metadata entries (the exporter writes 2 or 3)
TFLITE_MAX_METADATA_BYTES = 4096      # each metadata buffer (version strings, conversion flags)
TFLITE_SCALE_RANGE = (1e-20, 1e8)     # a quantization scale (exports: ~1e-5 .. 0.1); kernels compute 2 x scale and
                                      # scale ratios in float32: a 3.4e38 scale made ai-edge-litert abort (SIGABRT)
TFLITE_MAX_RANK = 4                   # dimensions of any tensor (the exporter's are at most 3)
TFLITE_MAX_TENSOR_BYTES = 1 << 30     # declared size of any one tensor (shape x item size)
TFLITE_MAX_ACTIVATION_BYTES = 1 << 30  # declared sizes of all non-constant tensors together (allocated at load)
PROBE_CACHE_MAX_ENTRIES = 256         # check-process verdicts kept on disk (runtime/backends/probe_cache.py)
PROBE_CACHE_ENTRY_BYTES = 4096        # a cache entry larger than this is ignored (and the file checked again)

# -- ONNX allow-list (runtime/allowlist/onnx.py) --------------------------------------------------
MAX_ONNX_DEPTH = 16                   # nested protobuf messages (3 per subgraph level; the exporter needs 6)
MAX_ONNX_FIELDS = 1 << 18             # protobuf fields read in one file: bounds the pure-Python walk (~1 s;
                                      # the exporter writes ~1,000: weights are one raw_data field each)
MAX_ONNX_STRING_BYTES = 1 << 16       # one name, doc string or metadata value
MAX_ONNX_NODES = 10_000               # graph nodes (the exporter writes 24-40: the LSTM is one fused node)
MAX_ONNX_INITIALIZERS = 10_000        # constant tensors (the exporter writes 9-21)
MAX_ONNX_VALUE_INFO = 20_000          # intermediate tensor descriptions
MAX_ONNX_GRAPH_IO = 16                # graph inputs, and outputs (the exporter writes 1 or 3)
MAX_ONNX_NODE_IO = 64                 # inputs, and outputs, of one node (LSTM takes 8)
MAX_ONNX_ATTRIBUTES = 32              # attributes of one node
MAX_ONNX_LIST = 4096                  # entries of one list-valued attribute
MAX_ONNX_RANK = 8                     # dimensions of one tensor
MAX_ONNX_METADATA = 64                # metadata_props entries
# Static shapes (runtime/allowlist/onnx_shapes.py), in bytes per batch row (the batch is the caller's choice).
# The largest model the exporter accepts needs ~0.2 GiB: window MAX_WINDOW=4096, units 1024, embedding 1024,
# vocabulary MAX_VOCAB_SIZE (LSTM scratch 4096 x 4 x 1024 floats = 64 MiB, logits 16 MiB); the seed needs 7 KB.
MAX_ONNX_TENSOR_BYTES = 1 << 28       # any one node output (or an LSTM's gate scratch): 4x the largest above
MAX_ONNX_ACTIVATION_BYTES = 1 << 30   # all node outputs together, as TFLITE_MAX_ACTIVATION_BYTES
MAX_ONNX_SHAPE_VALUES = 64            # integer tensors up to this many elements have their values tracked

# -- interpreters (runtime/backends/) ---------------------------------------------------------------
THREADS_PER_CORE = 4                  # num_threads may be 1 .. THREADS_PER_CORE x cores
PROBE_TIMEOUT_S = 60                  # a check process that has not loaded and run the model by then fails
MAX_LOAD_ATTEMPTS = 16                # (variant, package) pairs one load tries before giving up (the exporter
                                      # writes 6 window variants: 10 pairs with both TFLite packages installed)


def max_threads():
    """The largest num_threads accepted on this machine: THREADS_PER_CORE x the cores it has."""
    return THREADS_PER_CORE * max(1, os.cpu_count() or 1)


# -- text, sessions, generation (runtime/predictor.py, session.py, cli.py) --------------------------
MAX_GENERATE_WORDS = 10_000           # n_words of one generate() call and --generate N: one interpreter call a word
MAX_HISTORY = 1000                    # undo depth of a session (history=); each step kept costs ~1 state
MAX_FEED_CHUNK = 256                  # ids a session steps through per hold of the shared step lock
TAIL_BLOCK_CHARS = 4096               # text is tokenized from its end in blocks of (at least) this many chars

# -- messages (runtime/errors.py, runtime/cliutil.py) ----------------------------------------------
MAX_ERROR_CHARS = 600                 # an error message longer than this is cut, with a note saying so

# -- command line (runtime/cli.py) ------------------------------------------------------------------
MAX_LINE_BYTES = 4 << 20              # one stdin line; a longer one gets an error line and is skipped
MAX_SKIP_BYTES = 64 << 20             # a too-long line is drained up to here; past it, input is not lines: stop
READ_CHUNK_BYTES = 1 << 16            # a too-long line is drained in chunks of this size, never held
MAX_TOP_K = 10_000                    # --top-k K (more than the vocabulary gives every suggestible word)
MAX_SEED = 2**64 - 1                  # --seed 0 .. MAX_SEED (numpy refuses negative seeds)
MAX_UNDO_STEPS = 1_000_000            # /undo N in --stream (a session undoes at most its history anyway)
MAX_NUMBER_CHARS = 40                 # an integer argument longer than this is refused before int() reads it

# -- completion, display forms, blocklist (runtime/complete.py, lexicon.py, blocklist.py) --------------
MAX_LEXICON_BYTES = 64 << 20          # lexicon.json: each form repeats its word (2 x MAX_VOCAB_BYTES); a novel: ~10 KB
MAX_LEXICON_VALUES = 4 * MAX_VOCAB_WORDS + 64   # JSON values in lexicon.json: 3 per form ([word, display]), 1 per abbreviation
MAX_COMPLETE_K = 1000                 # k of one complete() call: a keyboard shows 3-6, the KSR bench at most 6
MAX_COMPLETE_CACHE = 16               # next-word distributions complete() keeps (LRU by context ids): a keyboard needs 1
MAX_COMPLETE_CACHE_BYTES = 64 << 20   # ... and at most this many bytes of them (8 bytes a word: 4 MB at MAX_VOCAB_WORDS)
MAX_BLOCKLIST_BYTES = 4 << 20         # a blocklist file (published offensive-word lists: 2k-10k words, < 100 KB)
MAX_BLOCKLIST_WORDS = 1 << 17         # words blocked at once (file and block() together)

# -- n-gram model (runtime/ngram.py, runtime/bundle.py) -------------------------------------------
MAX_NGRAM_ORDER = 5                   # orders 1..5: past 5, a novel's n-grams are nearly all seen once
MAX_NGRAM_BYTES = 256 << 20           # ngram.npz: the default export budget is 2 MB; room for --ngram-budget on a big corpus
MAX_NGRAM_ENTRIES = 1 << 25           # contexts, and entries, of one order (8 bytes an entry: MAX_NGRAM_BYTES)
MAX_NGRAM_BATCH_BYTES = 1 << 30       # float64 output of one probs_batch call (contexts x vocabulary x 8)

# -- user model: learning from what a session is fed (runtime/user_model.py, user_file.py) -----------
MAX_USER_WORDS = 50_000               # distinct words learnt: people use 10k-30k word forms; lowest decayed dropped past it
MAX_USER_BIGRAMS = 100_000            # word pairs learnt (~2 per word typed in a month at USER_HALF_LIFE_WORDS)
MAX_USER_CACHE = 200                  # recency cache: the last words learnt (Kuhn & De Mori used 200, Grave et al. 100-2000)
MAX_USER_FORGOTTEN = 10_000           # words forgotten at once (forget() masks model words until learnt again)
MAX_USER_FILE_BYTES = 16 << 20        # a user file: a full model writes ~4 MB; save() prunes until it fits
MAX_USER_FILE_VALUES = 3 * MAX_USER_WORDS + 4 * MAX_USER_BIGRAMS + 2 * (MAX_USER_CACHE + MAX_USER_FORGOTTEN) + 64
                                      # JSON values in a user file: [word, count], [i, j, count], cache, forgotten
MAX_USER_COUNT = 1e15                 # a decayed count in a user file (a count grows by 1 a word typed)
