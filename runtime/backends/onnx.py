"""The ONNX adapter: onnxruntime on the CPU provider, fed from memory (verified bytes)."""

from ..errors import VariantUnavailable
from .packages import import_package
from .tensors import match


class OnnxBackend:
    def __init__(self, model_bytes, variant, package, num_threads):
        ort = import_package(package)
        self.package = package
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = num_threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(bytes(model_bytes), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # InvalidProtobuf, InvalidArgument, even UnicodeDecodeError: catch broadly
            raise VariantUnavailable(f"{package} refused {variant.file} ({type(e).__name__}: {e})") from None
        inputs = {i.name: {"name": i.name, "shape": i.shape, "dtype": i.type} for i in self.session.get_inputs()}
        outputs = {o.name: {"name": o.name, "shape": o.shape, "dtype": o.type} for o in self.session.get_outputs()}
        self.in_names = [match(inputs, s, variant, "input")["name"] for s in variant.inputs]
        self.out_names = [match(outputs, s, variant, "output")["name"] for s in variant.outputs]

    def run(self, arrays):
        """Outputs for `arrays` (in the manifest's input order), in the manifest's output order."""
        return self.session.run(self.out_names, dict(zip(self.in_names, arrays)))
