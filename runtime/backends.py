"""Interpreter adapters behind one small interface: `run(list of arrays) -> list of arrays`, in the
manifest's input and output order. Interpreter packages are imported lazily, only when used."""

import importlib
import logging
import os
import subprocess
import sys
import threading

import numpy as np

from .errors import BackendUnavailable, BundleInvalid, VariantUnavailable

log = logging.getLogger(__name__)

# Preference order inside each format: the maintained package first, the legacy one after.
PACKAGES = {"tflite": ("ai-edge-litert", "tflite-runtime"), "onnx": ("onnxruntime",)}
_MODULES = {"ai-edge-litert": "ai_edge_litert.interpreter", "tflite-runtime": "tflite_runtime.interpreter",
            "onnxruntime": "onnxruntime"}
_DISTRIBUTIONS = {"ai-edge-litert": "ai-edge-litert", "tflite-runtime": "tflite-runtime", "onnxruntime": "onnxruntime"}


def package_version(package):
    try:
        from importlib.metadata import version
        return version(_DISTRIBUTIONS[package])
    except Exception:
        return "unknown"


def import_package(package):
    """Import an interpreter package or raise BackendUnavailable saying how to install it."""
    try:
        return importlib.import_module(_MODULES[package])
    except ImportError as e:
        extra = "legacy" if package == "tflite-runtime" else "runtime"
        raise BackendUnavailable(f"{package} is not installed ({e}); install it with pip install '.[{extra}]'") from None
    except Exception as e:  # e.g. tflite-runtime under numpy 2: AttributeError _ARRAY_API not found
        raise BackendUnavailable(f"{package} is installed but fails to import ({type(e).__name__}: {e})") from None


def available_packages():
    """Interpreter packages importable in this process, with versions (checked without importing heavy code twice)."""
    found = {}
    for pkg in ("ai-edge-litert", "tflite-runtime", "onnxruntime"):
        try:
            import_package(pkg)
        except BackendUnavailable:
            continue
        found[pkg] = package_version(pkg)
    return found


def _np_dtype(name):
    return np.dtype(name)


class TfliteBackend:
    """ai-edge-litert or tflite-runtime: same Interpreter API. Fed from memory, never from a path."""

    def __init__(self, model_bytes, variant, package, num_threads):
        module = import_package(package)
        self.package = package
        try:
            self.interpreter = module.Interpreter(model_content=bytes(model_bytes), num_threads=num_threads)
            self.interpreter.allocate_tensors()
        except Exception as e:  # the interpreters raise RuntimeError/ValueError on bad flatbuffers
            raise VariantUnavailable(f"{package} refused {variant.file} ({type(e).__name__}: {e})") from None
        inputs = {d["name"]: d for d in self.interpreter.get_input_details()}
        outputs = {d["name"]: d for d in self.interpreter.get_output_details()}
        self.in_index = [_match(inputs, spec, variant, "input")["index"] for spec in variant.inputs]
        self.out_index = [_match(outputs, spec, variant, "output")["index"] for spec in variant.outputs]

    def run(self, arrays):
        interp = self.interpreter
        for idx, a in zip(self.in_index, arrays):
            interp.set_tensor(idx, a)
        interp.invoke()
        return [interp.get_tensor(idx) for idx in self.out_index]


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
            raise VariantUnavailable(f"onnxruntime refused {variant.file} ({type(e).__name__}: {e})") from None
        inputs = {i.name: {"name": i.name, "shape": i.shape, "dtype": i.type} for i in self.session.get_inputs()}
        outputs = {o.name: {"name": o.name, "shape": o.shape, "dtype": o.type} for o in self.session.get_outputs()}
        self.in_names = [_match(inputs, s, variant, "input")["name"] for s in variant.inputs]
        self.out_names = [_match(outputs, s, variant, "output")["name"] for s in variant.outputs]

    def run(self, arrays):
        return self.session.run(self.out_names, dict(zip(self.in_names, arrays)))


def _match(found, spec, variant, what):
    """The model file must expose the tensors the manifest names, or the bundle is inconsistent."""
    d = found.get(spec.name)
    if d is None:
        raise BundleInvalid(f"variant {variant.name}: the model has no {what} named {spec.name!r} "
                            f"(it has {sorted(found)}); the manifest does not describe this file")
    return d


def _probe_in_child(model_bytes, variant, package, timeout=120):
    """First load of a file on tflite-runtime happens in a child process: a malformed flatbuffer there
    crashes the whole process with SIGSEGV, so only a file that survived a child is loaded here."""
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    try:
        proc = subprocess.run([sys.executable, "-m", "runtime.probe", package, variant.format],
                              input=bytes(model_bytes), capture_output=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise VariantUnavailable(f"{package} did not load {variant.file} within {timeout} s in a check process") from None
    if proc.returncode < 0:
        raise VariantUnavailable(f"{package} crashed (signal {-proc.returncode}) loading {variant.file} in a check "
                                 "process; the file is damaged or not a model this interpreter can run")
    if proc.returncode != 0:
        last = (proc.stderr.decode("utf-8", "replace").strip().splitlines() or ["no message"])[-1]
        raise VariantUnavailable(f"{package} refused {variant.file}: {last}")


_PROBED = set()
_PROBED_LOCK = threading.Lock()


def open_backend(model_bytes, variant, package, num_threads=1, sha256=None, guard=None):
    """Build the adapter for `package`. `guard` (default: on for tflite-runtime) loads the file in a
    child process first, remembered by sha256 for the life of this process."""
    if package not in PACKAGES[variant.format]:
        raise BackendUnavailable(f"{package} cannot run {variant.format} files")
    if guard is None:
        guard = package == "tflite-runtime"
    import_package(package)  # a missing package is BackendUnavailable before any probing
    if guard:
        key = (package, sha256)
        with _PROBED_LOCK:
            seen = key in _PROBED
        if not seen:
            _probe_in_child(model_bytes, variant, package)
            with _PROBED_LOCK:
                _PROBED.add(key)
    cls = OnnxBackend if variant.format == "onnx" else TfliteBackend
    return cls(model_bytes, variant, package, num_threads)
