"""Export: a trained model folder -> a verified bundle (TFLite and ONNX variants, vocab, manifest)."""
