"""Training: corpus -> documents -> windows -> Keras model. Only model.py and fit.py import TensorFlow."""
