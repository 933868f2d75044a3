"""Keep the C++ start-up chatter of TensorFlow-family runtimes away from the user, on every CPU.

Some lines are written from C++ straight to file descriptor 2, where neither Python's sys.stderr nor
TF_CPP_MIN_LOG_LEVEL reaches them: TensorFlow's import on CPUs with AVX-512 or AMX (absl's pre-init
banner, oneDNN's "custom operations are on", cpu_feature_guard), and the TFLite interpreters' "Created
TensorFlow Lite XNNPACK delegate" on every CPU. `quiet_fd2()` points fd 2 at a temporary file for the
duration, then drops the lines that are known chatter and writes every other line back: real warnings
and errors still reach the user, and an exception shows everything that was printed."""

import contextlib
import os
import re
import sys
import tempfile
import threading

CHATTER = re.compile(
    rb"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|^I\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ \S+:\d+\]"                      # absl INFO lines
    rb"|^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: I \S+:\d+\]"               # TensorFlow INFO lines
    rb"|cpu_feature_guard\.cc|oneDNN custom operations|TF_ENABLE_ONEDNN_OPTS"
    rb"|^To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags"
    rb"|TF-TRT Warning|Could not find TensorRT|Unable to register cu(DNN|FFT|BLAS) factory"
    rb"|could not open file to read NUMA node|Could not find cuda drivers|failed call to cuInit"
    rb"|^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.")

_lock = threading.RLock()


def filter_chatter(captured):
    """The lines of `captured` (bytes) that are not start-up chatter, as bytes."""
    return b"".join(line for line in captured.splitlines(keepends=True) if not CHATTER.search(line.strip()))


@contextlib.contextmanager
def quiet_fd2():
    """Capture file descriptor 2 (C++ and Python alike) for the duration; write back what is not chatter.
    fd 2 is process-wide: output of other threads in that window is held back, never lost."""
    with _lock, tempfile.TemporaryFile() as captured:
        try:
            sys.stderr.flush()
        except (AttributeError, OSError, ValueError):   # no usable sys.stderr: nothing buffered to lose
            pass
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            except (AttributeError, OSError, ValueError):
                pass
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            captured.seek(0)
            keep = filter_chatter(captured.read())
            if keep:
                try:
                    os.write(2, keep)
                except OSError:   # stderr closed: nothing more we can do with it
                    pass
