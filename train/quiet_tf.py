"""Import TensorFlow and Keras without their start-up chatter, on every CPU.

On CPUs with AVX-512 or AMX, `import tensorflow` writes lines from C++ straight to file descriptor 2
before absl logging is set up (absl's pre-init banner, oneDNN's "custom operations are on", the
cpu_feature_guard notice). TF_CPP_MIN_LOG_LEVEL does not silence all of them, and Python's
sys.stderr never sees them. So the first import runs with fd 2 pointed at a temporary file; after it,
the captured lines that are known chatter are dropped and every other line is written back to fd 2:
real warnings and errors still reach the user, and a failed import shows everything it printed.

Every TensorFlow or Keras import of the package goes through `import_keras()` or `import_tensorflow()` here.
TF_CPP_MIN_LOG_LEVEL defaults to 2 (errors only from TensorFlow's C++ after start-up); set it
yourself to see more."""

import contextlib
import os
import re
import sys
import tempfile
import threading

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# What TensorFlow prints at start-up that is no use to a user (FIELD-NOTES: start-up lines).
CHATTER = re.compile(
    rb"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|^I\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ \S+:\d+\]"                      # absl INFO lines
    rb"|^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: I \S+:\d+\]"               # TensorFlow INFO lines
    rb"|cpu_feature_guard\.cc|oneDNN custom operations|TF_ENABLE_ONEDNN_OPTS"
    rb"|^To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags"
    rb"|TF-TRT Warning|Could not find TensorRT|Unable to register cu(DNN|FFT|BLAS) factory"
    rb"|could not open file to read NUMA node|Could not find cuda drivers|failed call to cuInit")

_lock = threading.Lock()


def filter_chatter(captured):
    """The lines of `captured` (bytes) that are not start-up chatter, as bytes."""
    return b"".join(line for line in captured.splitlines(keepends=True) if not CHATTER.search(line.strip()))


@contextlib.contextmanager
def quiet_fd2():
    """Capture file descriptor 2 (C++ and Python alike) for the duration; write back what is not chatter."""
    with _lock, tempfile.TemporaryFile() as captured:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            captured.seek(0)
            keep = filter_chatter(captured.read())
            if keep:
                os.write(2, keep)


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
