"""`python -m nextword.runtime.dump BUNDLE VARIANT BACKEND WINDOWS.npy OUT.npy`: the Predictor's probabilities
for given id windows, written as .npy (for a step variant: each window run through it from the zero
state by an exact-mode session). Lets export check a variant on an interpreter that lives in
another environment (tflite-runtime 2.14 needs numpy<2) through the real Predictor code."""


import numpy as np

from .bundle import Bundle
from .child import run_child
from .predictor import Predictor
from .session import step_probabilities


def main(argv):
    bundle, variant, backend, windows, out = argv
    x = np.load(windows, allow_pickle=False)
    found = Bundle.open(bundle).manifest.variants.get(variant)
    if found is not None and found.kind == "step":   # run each window through the step model (runtime/session.py)
        probs = step_probabilities(bundle, variant, x, backend=backend)
    else:
        probs = Predictor.load(bundle, backend=backend, variant=variant).probabilities(x)
    np.save(out, probs.astype(np.float32), allow_pickle=False)


if __name__ == "__main__":
    run_child(main)
