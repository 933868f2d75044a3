"""Interpreter adapters behind one small interface: `run(list of arrays) -> list of arrays`, in the
manifest's input and output order. Interpreter packages are imported lazily, only when used."""

import importlib
import logging
import os
import struct
import subprocess
import sys
import threading

import numpy as np

from .child import module_argv
from .quiet import quiet_fd2
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
            with quiet_fd2():   # the interpreter announces its XNNPACK delegate on fd 2 (runtime/quiet.py)
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


def _dtype_name(d):
    t = d["dtype"]
    if isinstance(t, str):  # onnxruntime: "tensor(float)", "tensor(int32)", ...
        t = t[7:-1] if t.startswith("tensor(") else t
        return {"float": "float32", "double": "float64"}.get(t, t)
    return np.dtype(t).name


def _match(found, spec, variant, what):
    """The model file must expose the tensors the manifest names, with the manifest's dtype, shape
    (-1 = dynamic) and quantization, or the bundle is inconsistent: refused at load, not at the
    first prediction."""
    d = found.get(spec.name)
    if d is None:
        raise BundleInvalid(f"variant {variant.name}: the model has no {what} named {spec.name!r} "
                            f"(it has {sorted(found)}); the manifest does not describe this file")
    dtype = _dtype_name(d)
    shape = [int(n) if isinstance(n, (int, np.integer)) and n >= 0 else -1 for n in d["shape"]]
    q = d.get("quantization") or (0.0, 0)   # TFLite only: (scale, zero_point)
    quant_ok = (abs(float(q[0]) - spec.scale) <= 1e-6 * max(abs(float(q[0])), spec.scale)
                and (not spec.scale or int(q[1]) == spec.zero_point))
    if dtype != spec.dtype or shape != list(spec.shape) or not quant_ok:
        raise BundleInvalid(f"variant {variant.name}: {what} {spec.name!r} is {dtype} {shape} (quantization {tuple(q)}) "
                            f"in the model but the manifest says {spec.dtype} {list(spec.shape)} "
                            f"(quantization {(spec.scale, spec.zero_point)}); the manifest does not describe this file")
    return d


# -- TFLite structure check -----------------------------------------------------------------------
# tflite-runtime 2.14 builds its interpreter from an unverified flatbuffer: an offset pointing outside
# the file makes it read wild memory, which kills the process with SIGSEGV -- or not, depending on the
# heap layout, so a check process can survive a file that then crashes the serving process (seen in
# tests/test_runtime_damage.py). This walks what the interpreter follows (tables, vectors, tensor and
# operator indices, constant buffer sizes) in pure Python, where a bad offset is an exception.
_TFLITE_ITEM = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 11: 16, 12: 8, 15: 4, 16: 2}


class _Flat:
    def __init__(self, data):
        self.d, self.n = memoryview(data), len(data)

    def u(self, fmt, pos):
        size = struct.calcsize(fmt)
        if pos < 0 or pos + size > self.n:
            raise ValueError(f"offset {pos} is outside the {self.n}-byte file")
        return struct.unpack_from(fmt, self.d, pos)[0]

    def table(self, pos):
        vt = pos - self.u("<i", pos)
        vsize, tsize = self.u("<H", vt), self.u("<H", vt + 2)
        if vsize < 4 or vsize % 2 or tsize < 4 or pos + tsize > self.n or vt + vsize > self.n:
            raise ValueError(f"malformed table at {pos}")
        return pos, vt, vsize, tsize

    def field(self, t, i, size):
        pos, vt, vsize, tsize = t
        off = self.u("<H", vt + 4 + 2 * i) if 4 + 2 * i < vsize else 0
        if off and off + size > tsize:
            raise ValueError(f"field {i} of the table at {pos} lies outside it")
        return pos + off if off else None

    def scalar(self, t, i, fmt):
        p = self.field(t, i, struct.calcsize(fmt))
        return 0 if p is None else self.u(fmt, p)

    def ref(self, t, i):
        p = self.field(t, i, 4)
        return None if p is None else p + self.u("<I", p)

    def vector(self, t, i, item):
        v = self.ref(t, i)
        if v is None:
            return None
        count = self.u("<I", v)
        if v + 4 + count * item > self.n:
            raise ValueError(f"vector at {v} ({count} items) runs past the end of the file")
        return v + 4, count

    def ints(self, t, i, code="i"):
        vec = self.vector(t, i, struct.calcsize(code))
        return list(struct.unpack_from(f"<{vec[1]}{code}", self.d, vec[0])) if vec else []

    def tables(self, t, i):
        vec = self.vector(t, i, 4)
        return [self.table(p + self.u("<I", p)) for p in (vec[0] + 4 * k for k in range(vec[1]))] if vec else []

    def string(self, t, i):
        vec = self.vector(t, i, 1)
        if vec is not None and self.u("<B", vec[0] + vec[1]) != 0:
            raise ValueError("unterminated string")


def check_tflite_structure(data):
    """Raise ValueError if the TFLite flatbuffer has an offset, index or size tflite-runtime would
    follow outside the file (the schema fields it reads: model, operator codes, subgraphs, tensors,
    quantization, operators, buffers, signatures, metadata)."""
    f = _Flat(data)
    if f.n < 8 or bytes(f.d[4:8]) != b"TFL3":
        raise ValueError("no TFL3 file identifier")
    model = f.table(f.u("<I", 0))
    codes = f.tables(model, 1)
    for c in codes:
        f.string(c, 1)
    buffers = []
    for b in f.tables(model, 4):
        vec, off, size = f.vector(b, 0, 1), f.scalar(b, 1, "<Q"), f.scalar(b, 2, "<Q")
        if off > 1 and off + size > f.n:
            raise ValueError("a buffer's data lies outside the file")
        buffers.append(vec[1] if vec else (size if off > 1 else 0))
    subgraphs = f.tables(model, 2)
    if not subgraphs:
        raise ValueError("no subgraph")
    counts = []
    for sg in subgraphs:
        tensors = f.tables(sg, 0)
        nt = len(tensors)
        counts.append(nt)
        for t in tensors:
            shape, ttype, buf = f.ints(t, 0), f.scalar(t, 1, "<b"), f.scalar(t, 2, "<I")
            if any(d < 0 for d in shape) or not 0 <= ttype <= 17 or buf >= max(len(buffers), 1):
                raise ValueError(f"tensor with shape {shape}, type {ttype}, buffer {buf} is out of range")
            f.string(t, 3)
            q = f.ref(t, 4)
            if q is not None:
                q = f.table(q)
                for i, item in ((0, 4), (1, 4), (2, 4), (3, 8)):
                    f.vector(q, i, item)
                if f.ref(q, 5) is not None:
                    f.table(f.ref(q, 5))
            if f.ref(t, 6) is not None:
                f.table(f.ref(t, 6))
            f.ints(t, 7)
            elements = 1
            for d in shape:
                elements *= d
            if buffers and buffers[buf] and ttype in _TFLITE_ITEM and buffers[buf] != elements * _TFLITE_ITEM[ttype]:
                raise ValueError(f"tensor of shape {shape} has {buffers[buf]} bytes of constant data")
        if any(not 0 <= i < nt for i in f.ints(sg, 1) + f.ints(sg, 2)):
            raise ValueError("a subgraph input/output index is out of range")
        for op in f.tables(sg, 3):
            if f.scalar(op, 0, "<I") >= len(codes):
                raise ValueError("an operator's opcode index is out of range")
            if any(not -1 <= i < nt for i in f.ints(op, 1) + f.ints(op, 2) + f.ints(op, 8)):
                raise ValueError("an operator's tensor index is out of range")
            for i in (4, 12):
                if f.ref(op, i) is not None:
                    f.table(f.ref(op, i))
            f.vector(op, 5, 1)
            f.vector(op, 7, 1)
            if f.scalar(op, 9, "<Q") + f.scalar(op, 10, "<Q") > f.n:
                raise ValueError("an operator's custom options lie outside the file")
        f.string(sg, 4)
    for sig in f.tables(model, 7):
        sub = f.scalar(sig, 4, "<I")
        if sub >= len(subgraphs):
            raise ValueError("a signature names a missing subgraph")
        for i in (0, 1):
            for m in f.tables(sig, i):
                f.string(m, 0)
                if f.scalar(m, 1, "<I") >= counts[sub]:
                    raise ValueError("a signature's tensor index is out of range")
        f.string(sig, 2)
    for m in f.tables(model, 6):
        f.string(m, 0)
        if f.scalar(m, 1, "<I") >= len(buffers):
            raise ValueError("a metadata entry names a missing buffer")
    f.ints(model, 5)
    f.string(model, 3)


def _probe_in_child(model_bytes, variant, package, timeout=120):
    """First load of a file on tflite-runtime happens in a child process: a malformed flatbuffer there
    crashes the whole process with SIGSEGV, so only a file that survived a child is loaded here."""
    try:
        proc = subprocess.run(module_argv("nextword.runtime.probe", package, variant.format),
                              input=bytes(model_bytes), capture_output=True, timeout=timeout)
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
    if guard and variant.format == "tflite":
        try:
            check_tflite_structure(model_bytes)
        except Exception as e:  # pure Python: a malformed file is an exception here, not a crash
            raise VariantUnavailable(f"{variant.file} is not a well-formed TFLite file ({e}); {package} would read "
                                     "outside it, so it is refused") from None
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


def open_first(bundle, candidates, num_threads=1, strict=False, what="variant"):
    """The fallback chain: candidates are [(variant, packages)], tried in order; the first variant x
    package that loads wins. Returns (variant, runner, package, skipped reasons). A damaged file
    (HashMismatch) is an error, never a reason to fall back; `strict` re-raises an interpreter's refusal.
    Nothing loadable: BackendUnavailable when a package was missing, else VariantUnavailable."""
    skipped, missing = [], False
    for v, packages in candidates:
        if not packages:
            skipped.append(f"{v.name}: the requested backend does not run {v.format} files")
            continue
        for pkg in packages:
            ok, reason = v.runnable_on(pkg)
            if not ok:
                skipped.append(f"{v.name} on {pkg}: not runnable there ({reason})")
                continue
            try:
                import_package(pkg)
            except BackendUnavailable as e:
                skipped.append(f"{v.name} on {pkg}: {e}")
                missing = True
                continue
            data = bundle.model_bytes(v)
            try:
                runner = open_backend(data, v, pkg, num_threads=num_threads, sha256=v.sha256)
            except VariantUnavailable as e:
                if strict:
                    raise
                skipped.append(f"{v.name} on {pkg}: {e}")
                continue
            log.info("loaded %s %s on %s (%d threads)", what, v.name, pkg, num_threads)
            return v, runner, pkg, skipped
    detail = "; ".join(skipped) or "no candidates"
    if missing:
        raise BackendUnavailable(f"no usable interpreter for a {what} of {bundle.path}: {detail}")
    raise VariantUnavailable(f"no {what} of {bundle.path} can run here: {detail}")
