"""How far an export is: a known number of steps, counted before the first one starts, so a progress
bar can show n/total and name the step it is on."""

from nextword.runtime.bundle import FORMATS


def checking_packages(spec, here, legacy):
    """The interpreter packages that check `spec` here: installed ones, plus tflite-runtime through
    the legacy python."""
    return [pkg for pkg in FORMATS[spec.format] if (legacy if pkg == "tflite-runtime" else pkg in here)]


def steps_after_conversion(spec, here, legacy):
    """One parity check per checking interpreter, and for a window variant one cost measurement each."""
    return len(checking_packages(spec, here, legacy)) * (2 if spec.kind == "window" else 1)


def planned_steps(specs, here, legacy):
    """One conversion per variant plus what follows it."""
    return sum(1 + steps_after_conversion(s, here, legacy) for s in specs)


class Steps:
    """`progress(done, total, label)` is called as each step begins and once at the end (label
    "done"); steps skipped (a variant that failed) are counted as done so the total stays true."""

    def __init__(self, progress, total):
        self.progress, self.total, self.done = progress, total, 0

    def begin(self, label):
        if self.progress:
            self.progress(self.done, self.total, label)

    def end(self, n=1):
        self.done += n

    def finish(self):
        if self.progress:
            self.progress(self.done, self.total, "done")
