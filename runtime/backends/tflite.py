"""The TFLite adapter: ai-edge-litert or tflite-runtime, which share one Interpreter API. The model
is fed from memory (verified bytes), never from a path."""

from ..errors import VariantUnavailable
from ..quiet import quiet_fd2
from .packages import import_package
from .tensors import match


class TfliteBackend:
    def __init__(self, model_bytes, variant, package, num_threads):
        module = import_package(package)
        self.package = package
        try:
            with quiet_fd2():   # the interpreter announces its XNNPACK delegate on fd 2 (runtime/quiet.py)
                self.interpreter = module.Interpreter(model_content=bytes(model_bytes), num_threads=num_threads)
                self.interpreter.allocate_tensors()
        except Exception as e:  # the interpreters raise RuntimeError/ValueError on bad flatbuffers
            raise VariantUnavailable(f"{package} refused {variant.file} ({type(e).__name__}: {e})") from None
        inputs = {d["name"]: d for d in self.interpreter.get_input_details()}
        outputs = {d["name"]: d for d in self.interpreter.get_output_details()}
        self.in_index = [match(inputs, spec, variant, "input")["index"] for spec in variant.inputs]
        self.out_index = [match(outputs, spec, variant, "output")["index"] for spec in variant.outputs]

    def run(self, arrays):
        """Outputs for `arrays` (in the manifest's input order), in the manifest's output order."""
        interp = self.interpreter
        for idx, a in zip(self.in_index, arrays):
            interp.set_tensor(idx, a)
        interp.invoke()
        return [interp.get_tensor(idx) for idx in self.out_index]
