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

# -- interpreters (runtime/backends/) ---------------------------------------------------------------
THREADS_PER_CORE = 4                  # num_threads may be 1 .. THREADS_PER_CORE x cores
PROBE_TIMEOUT_S = 60                  # a check process that has not loaded and run the model by then fails


def max_threads():
    """The largest num_threads accepted on this machine: THREADS_PER_CORE x the cores it has."""
    return THREADS_PER_CORE * max(1, os.cpu_count() or 1)


# -- text, sessions, generation (runtime/predictor.py, session.py, cli.py) --------------------------

# -- messages (runtime/errors.py, runtime/cliutil.py) ----------------------------------------------
MAX_ERROR_CHARS = 600                 # an error message longer than this is cut, with a note saying so
