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

# -- ONNX allow-list (runtime/allowlist/onnx.py) --------------------------------------------------

# -- interpreters (runtime/backends/) ---------------------------------------------------------------
THREADS_PER_CORE = 4                  # num_threads may be 1 .. THREADS_PER_CORE x cores
PROBE_TIMEOUT_S = 60                  # a check process that has not loaded and run the model by then fails


def max_threads():
    """The largest num_threads accepted on this machine: THREADS_PER_CORE x the cores it has."""
    return THREADS_PER_CORE * max(1, os.cpu_count() or 1)


# -- text, sessions, generation (runtime/predictor.py, session.py, cli.py) --------------------------

# -- messages (runtime/errors.py, runtime/cliutil.py) ----------------------------------------------
MAX_ERROR_CHARS = 600                 # an error message longer than this is cut, with a note saying so
