"""Ctrl-C (and SIGTERM, SIGHUP) during training: a request to stop, honoured between two batches.

A KeyboardInterrupt raised wherever Python happens to check for signals can land inside TensorFlow's
own Python/C code (a tensor conversion between two steps) and leave it half-done: measured here, a
Ctrl-C right after an epoch crashed the process with SIGSEGV about one run in six. So during
training a signal only sets a flag; a callback turns it into `StopRequested` at the next batch end,
from plain Python. A second signal of the same kind gets the default action: the process ends at
once (the checkpoint of the last finished epoch is already on disk)."""

import os
import signal

from .quiet_tf import import_keras

SIGNALS = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}


class StopRequested(Exception):
    """Raised between two batches once a stop signal arrived."""

    def __init__(self, signame):
        super().__init__(f"stop requested by {signame}")
        self.signame = signame


class StopSignals:
    """with StopSignals() as stop: ... stop.requested is the name of the first signal, or None.
    Only the main thread can install handlers; elsewhere (and for an ignored SIGHUP) nothing changes."""

    def __init__(self):
        self.requested = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.requested is not None:   # the second one: end now, as the default action does
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.requested = SIGNALS[signum]

    def __enter__(self):
        for signum in SIGNALS:
            try:
                if signal.getsignal(signum) is signal.SIG_IGN:   # nohup: keep ignoring
                    continue
                self._previous[signum] = signal.signal(signum, self._handle)
            except (ValueError, OSError):   # not the main thread
                pass
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        return False

    def check(self):
        if self.requested is not None:
            raise StopRequested(self.requested)


def stop_check_callback(stop):
    """A Keras callback that raises StopRequested at a batch end (training or validation)."""
    keras = import_keras()

    class StopCheck(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            stop.check()

        def on_test_batch_end(self, batch, logs=None):
            stop.check()

    return StopCheck()
