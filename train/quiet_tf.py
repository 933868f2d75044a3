"""Import TensorFlow and Keras without their start-up chatter, on every CPU.

On CPUs with AVX-512 or AMX, `import tensorflow` writes lines from C++ straight to file descriptor 2
before absl logging is set up (absl's pre-init banner, oneDNN's "custom operations are on", the
cpu_feature_guard notice). TF_CPP_MIN_LOG_LEVEL does not silence all of them, and Python's
sys.stderr never sees them. So the first import runs inside nextword.runtime.quiet.quiet_fd2(): the
captured lines that are known chatter are dropped and every other line is written back to fd 2, so
real warnings and errors still reach the user, and a failed import shows everything it printed.

Every TensorFlow or Keras import of the package goes through `import_keras()` or `import_tensorflow()` here.
TF_CPP_MIN_LOG_LEVEL defaults to 2 (errors only from TensorFlow's C++ after start-up); set it
yourself to see more."""

import os
import sys

from nextword.runtime.quiet import quiet_fd2

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def import_tensorflow():
    """The tensorflow module, imported quietly the first time."""
    if "tensorflow" not in sys.modules:
        with quiet_fd2():
            import tensorflow  # noqa: F401
    return sys.modules["tensorflow"]


def import_keras():
    """The keras module (TensorFlow backend), imported quietly the first time."""
    if "keras" not in sys.modules:
        import_tensorflow()
        with quiet_fd2():
            import keras  # noqa: F401
    return sys.modules["keras"]
