"""`python -m runtime.dump BUNDLE VARIANT BACKEND WINDOWS.npy OUT.npy`: the Predictor's probabilities
for given id windows, written as .npy. Lets export check a variant on an interpreter that lives in
another environment (tflite-runtime 2.14 needs numpy<2) through the real Predictor code."""

import sys

import numpy as np

from .predictor import Predictor


def main(argv):
    bundle, variant, backend, windows, out = argv
    p = Predictor.load(bundle, backend=backend, variant=variant)
    np.save(out, p.probabilities(np.load(windows, allow_pickle=False)).astype(np.float32), allow_pickle=False)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except Exception as e:
        print(f"{type(e).__name__}: {' '.join(str(e).split())}", file=sys.stderr)
        sys.exit(1)
