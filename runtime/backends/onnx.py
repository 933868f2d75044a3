"""The ONNX adapter: onnxruntime on the CPU provider, fed from memory (verified bytes), only after the
file passed the allow-list (runtime/allowlist/onnx.py) and with a bounded thread count."""

from ..allowlist.onnx import OnnxRefused, check_onnx
from ..errors import VariantUnavailable, check_threads
from .packages import import_package
from .tensors import match


def refuse_unless_allowed(model_bytes, variant, package):
    """VariantUnavailable unless the file is an ONNX model of the kind nextword's exporter writes (no
    external data, allowed operators and opsets, bounded sizes): checked before onnxruntime, or a child
    process running it, sees a byte."""
    try:
        check_onnx(model_bytes)
    except OnnxRefused as e:
        raise VariantUnavailable(f"{variant.file} is refused before {package} sees it: {e}") from None


class OnnxBackend:
    def __init__(self, model_bytes, variant, package, num_threads):
        num_threads = check_threads(num_threads)   # 10**6 made onnxruntime allocate 24 GB before dying
        refuse_unless_allowed(model_bytes, variant, package)
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
