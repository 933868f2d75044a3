"""nextword: train a next-word LSTM with Keras, export verified TFLite/ONNX bundles, predict without TensorFlow.

This file is the `nextword` package once installed (pyproject.toml maps the repository's folders to
nextword.runtime, nextword.train, nextword.export and nextword.bench). Import the part you need:

    from nextword.runtime import Predictor
"""
