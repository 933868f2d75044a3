"""Every bound the runtime enforces, in one place (listed in docs/reliability.md).

Hashes stop accidents, not attacks: a bundle whose sha256 values were rewritten reaches these checks
unchanged, so each count, length and size a file or a caller can choose has a named ceiling here,
and going past it is a typed error, never a slow death. Modules import the constant they enforce;
nothing else defines a limit."""

import os

# -- files of a bundle (runtime/bundle.py, runtime/bundle_files.py) -------------------------------
MAX_MANIFEST_BYTES = 4 << 20          # manifest.json
MAX_VOCAB_BYTES = 64 << 20            # vocab.json
MAX_MODEL_BYTES = 1 << 30             # each model file

# -- manifest fields (runtime/bundle.py) --------------------------------------------------------------
MAX_VARIANTS = 64                     # variants in one manifest
MAX_PREFERENCE = 64                   # entries in the measured (variant, package) preference
MAX_NAME_CHARS = 128                  # variant names, tensor names, package keys
MAX_VOCAB_SIZE = 1 << 22              # model output width (ids)
MAX_WINDOW = 4096                     # window length (ids)
MAX_DIM = 1 << 24                     # any one tensor dimension in the manifest

# -- vocabulary fields (runtime/tokenizer.py) -------------------------------------------------------

# -- TFLite allow-list (runtime/allowlist/tflite.py) ------------------------------------------------

# -- ONNX allow-list (runtime/allowlist/onnx.py) --------------------------------------------------

# -- interpreters (runtime/backends/) ---------------------------------------------------------------
THREADS_PER_CORE = 4                  # num_threads may be 1 .. THREADS_PER_CORE x cores
PROBE_TIMEOUT_S = 60                  # a check process that has not loaded and run the model by then fails


def max_threads():
    """The largest num_threads accepted on this machine: THREADS_PER_CORE x the cores it has."""
    return THREADS_PER_CORE * max(1, os.cpu_count() or 1)


# -- text, sessions, generation (runtime/predictor.py, session.py, cli.py) --------------------------
MAX_GENERATE_WORDS = 10_000           # n_words of one generate() call: each word is one interpreter call
MAX_HISTORY = 1000                    # undo depth of a session (history=); each step kept costs ~1 state
MAX_FEED_CHUNK = 256                  # ids a session steps through per hold of the shared step lock
TAIL_BLOCK_CHARS = 4096               # text is tokenized from its end in blocks of (at least) this many chars

# -- messages (runtime/errors.py, runtime/cliutil.py) ----------------------------------------------
MAX_ERROR_CHARS = 600                 # an error message longer than this is cut, with a note saying so
