"""The bundle format, in one place: the manifest schema, how export writes it and how the device
reads it. Loading *is* verifying: a file reaches an interpreter only as bytes whose size and sha256
match the manifest, read from a plain file inside the bundle folder."""

import json
import math
import os
from dataclasses import dataclass, field

from .backends.packages import PACKAGES
from .bundle_files import MANIFEST, read_inside, sha256_bytes, verified
from .bundle_files import sha256_file  # noqa: F401 (export imports it from here)
from .errors import BundleInvalid, UnsupportedVersion
from .tokenizer import Tokenizer

FORMAT_VERSION = 1
MAX_MANIFEST_BYTES = 4 << 20
MAX_MODEL_BYTES = 1 << 30
FORMATS = PACKAGES        # format -> interpreter packages: the one table lives in runtime/backends/packages.py
MAX_PREFERENCE = 64       # entries in the manifest's measured (variant, package) preference
COST_FIELDS = {"cold_start_ms": "num", "peak_rss_mib": "num", "call_us": "num", "runs": "int"}
KINDS = ("window", "step")
DTYPES = ("int8", "uint8", "int16", "int32", "int64", "float16", "float32")


# -- schema ------------------------------------------------------------------------------------
class _Check:
    """Reads typed fields out of untrusted JSON; every miss is a BundleInvalid naming the field."""

    def __init__(self, where):
        self.where = where

    def fail(self, path, expected, got):
        shown = repr(got)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise BundleInvalid(f"{self.where}: {path} must be {expected}, found {shown}; re-export the bundle")

    def obj(self, data, path):
        if not isinstance(data, dict):
            self.fail(path, "an object", data)
        return data

    def get(self, data, key, kind, path, optional=False, default=None):
        if key not in data:
            if optional:
                return default
            raise BundleInvalid(f"{self.where}: missing field {path}.{key}; re-export the bundle")
        value = data[key]
        if kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                self.fail(f"{path}.{key}", "an integer", value)
        elif kind == "str":
            if not isinstance(value, str):
                self.fail(f"{path}.{key}", "a string", value)
        elif kind == "bool":
            if not isinstance(value, bool):
                self.fail(f"{path}.{key}", "true or false", value)
        elif kind == "list":
            if not isinstance(value, list):
                self.fail(f"{path}.{key}", "a list", value)
        elif kind == "dict":
            if not isinstance(value, dict):
                self.fail(f"{path}.{key}", "an object", value)
        elif kind == "num":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                self.fail(f"{path}.{key}", "a number", value)
        return value


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output. Never quantized: the exporter keeps ids integer and logits and
    LSTM states float32 in every variant (quantization lives inside the graph), and the schema
    refuses anything else rather than carry untested (de)quantization code."""
    name: str
    dtype: str
    shape: tuple

    def to_dict(self):
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


@dataclass(frozen=True)
class Preference:
    """One entry of the manifest's measured preference: a window variant on an interpreter package,
    best first, with the export's score (lower is better; informative)."""
    variant: str
    package: str
    score: float


@dataclass
class Variant:
    name: str
    file: str
    format: str
    kind: str
    quantization: str
    sha256: str
    size: int
    inputs: list
    outputs: list
    runtimes: dict            # package name -> {"ok": bool, "version": str, "reason": str}
    parity: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)   # ops / opset, converter notes: informative only
    cost: dict = field(default_factory=dict)      # package -> measured cold start, RSS, call time (informative)

    def runnable_on(self, package):
        """(ok, reason): what the manifest says about this variant on an interpreter package."""
        if package not in PACKAGES[self.format]:
            return False, f"{package} does not run {self.format} files"
        entry = self.runtimes.get(package)
        if entry is None:
            return True, "not verified at export"
        return bool(entry.get("ok")), entry.get("reason", "")


def _tensor(check, data, path):
    check.obj(data, path)
    name = check.get(data, "name", "str", path)
    dtype = check.get(data, "dtype", "str", path)
    if dtype not in DTYPES:
        check.fail(f"{path}.dtype", f"one of {', '.join(DTYPES)}", dtype)
    shape = check.get(data, "shape", "list", path)
    for n in shape:
        if isinstance(n, bool) or not isinstance(n, int) or n < -1 or n == 0 or n > 1 << 24:
            check.fail(f"{path}.shape", "a list of positive sizes (-1 for a dynamic batch)", shape)
    if "quantization" in data:
        check.fail(f"{path}.quantization", "absent (this runtime reads unquantized model inputs and outputs: "
                   "integer ids in, float32 logits and states out)", data["quantization"])
    return TensorSpec(name, dtype, tuple(shape))


def _finite(check, data, key, kind, path):
    value = check.get(data, key, kind, path)
    if not (math.isfinite(value) and value >= 0):
        check.fail(f"{path}.{key}", "a finite number >= 0", value)
    return value


def _cost(check, v, fmt, path):
    """Optional per-variant measurements: {package: {cold_start_ms, peak_rss_mib, call_us, runs}}."""
    cost = check.get(v, "cost", "dict", path, optional=True, default={})
    for pkg, entry in cost.items():
        if pkg not in PACKAGES[fmt]:
            check.fail(f"{path}.cost", f"keyed by {fmt} packages ({', '.join(PACKAGES[fmt])})", pkg)
        check.obj(entry, f"{path}.cost.{pkg}")
        for key, kind in COST_FIELDS.items():
            _finite(check, entry, key, kind, f"{path}.cost.{pkg}")
    return cost


def _preference(check, data, variants, default):
    """Optional measured preference: [{variant, package, score}], best first, window variants only,
    each package one that runs the variant's format; its first variant is the default variant."""
    entries = check.get(data, "preference", "list", "manifest", optional=True, default=[])
    if len(entries) > MAX_PREFERENCE:
        check.fail("preference", f"at most {MAX_PREFERENCE} entries", f"{len(entries)} entries")
    out = []
    for i, e in enumerate(entries):
        p = f"preference[{i}]"
        check.obj(e, p)
        name = check.get(e, "variant", "str", p)
        v = variants.get(name)
        if v is None or v.kind != "window":
            check.fail(p + ".variant", f"a window variant ({', '.join(n for n, x in variants.items() if x.kind == 'window')})", name)
        pkg = check.get(e, "package", "str", p)
        if pkg not in PACKAGES[v.format]:
            check.fail(p + ".package", f"a package that runs {v.format} files ({', '.join(PACKAGES[v.format])})", pkg)
        if any((x.variant, x.package) == (name, pkg) for x in out):
            check.fail(p, "a (variant, package) pair not listed before", {"variant": name, "package": pkg})
        out.append(Preference(name, pkg, float(_finite(check, e, "score", "num", p))))
    if out and out[0].variant != default:
        check.fail("default_variant", f"the first variant of the preference ({out[0].variant!r})", default)
    return out


def check_file_name(name, where):
    """A bundle file is a bare name inside the bundle folder: no paths, no '..', nothing hidden."""
    if (not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name
            or "\x00" in name or name.startswith(".") or os.path.isabs(name) or len(name) > 255):
        raise BundleInvalid(f"{where}: file name {name!r} is not a plain file name inside the bundle "
                            "(no folders, no '..', no absolute paths); the manifest was tampered with or is damaged")
    return name


@dataclass
class Manifest:
    raw: dict
    vocab_file: str
    vocab_sha256: str
    vocab_size_bytes: int
    vocab_size: int
    window: int
    output: str
    default_variant: str
    variants: dict            # name -> Variant, in manifest order
    preference: list = field(default_factory=list)   # [Preference], best first; [] when not measured

    @classmethod
    def parse(cls, data):
        c = _Check("manifest.json")
        c.obj(data, "manifest")
        version = data.get("format_version")
        if isinstance(version, bool) or not isinstance(version, int):
            c.fail("format_version", "an integer", version)
        if version != FORMAT_VERSION:
            raise UnsupportedVersion(
                f"manifest.json: format_version {version} is not supported (this runtime reads {FORMAT_VERSION}); "
                + ("upgrade nextword to read it" if version > FORMAT_VERSION else "re-export the bundle"))
        tok = c.get(data, "tokenizer", "dict", "manifest")
        vocab_file = check_file_name(c.get(tok, "file", "str", "tokenizer"), "manifest.json tokenizer")
        vocab_sha = c.get(tok, "sha256", "str", "tokenizer")
        vocab_bytes = c.get(tok, "size", "int", "tokenizer")
        vocab_size = c.get(data, "vocab_size", "int", "manifest")
        window = c.get(data, "window", "int", "manifest")
        if not 2 <= vocab_size <= 1 << 22:
            c.fail("vocab_size", "an integer from 2 to 4194304", vocab_size)
        if not 1 <= window <= 4096:
            c.fail("window", "an integer from 1 to 4096", window)
        if c.get(data, "padding", "str", "manifest") != "pre":
            c.fail("padding", "'pre'", data["padding"])
        output = c.get(data, "output", "str", "manifest")
        if output != "logits":   # every variant the exporter writes ends in a linear layer; softmax is numpy's
            c.fail("output", "'logits' (the only model output this runtime reads)", output)
        variants = {}
        for name, v in c.get(data, "variants", "dict", "manifest").items():
            p = f"variants.{name}"
            c.obj(v, p)
            fmt = c.get(v, "format", "str", p)
            if fmt not in PACKAGES:
                c.fail(p + ".format", "'tflite' or 'onnx'", fmt)
            kind = c.get(v, "kind", "str", p)
            if kind not in KINDS:
                c.fail(p + ".kind", "'window' or 'step'", kind)
            size = c.get(v, "size", "int", p)
            if not 0 < size <= MAX_MODEL_BYTES:
                c.fail(p + ".size", f"a size from 1 to {MAX_MODEL_BYTES} bytes", size)
            runtimes = c.get(v, "runtimes", "dict", p)
            for pkg, entry in runtimes.items():
                c.obj(entry, f"{p}.runtimes.{pkg}")
                c.get(entry, "ok", "bool", f"{p}.runtimes.{pkg}")
            variants[name] = Variant(
                name=name,
                file=check_file_name(c.get(v, "file", "str", p), p),
                format=fmt, kind=kind,
                quantization=c.get(v, "quantization", "str", p),
                sha256=c.get(v, "sha256", "str", p), size=size,
                inputs=[_tensor(c, t, f"{p}.inputs[{i}]") for i, t in enumerate(c.get(v, "inputs", "list", p))],
                outputs=[_tensor(c, t, f"{p}.outputs[{i}]") for i, t in enumerate(c.get(v, "outputs", "list", p))],
                runtimes=runtimes,
                parity=c.get(v, "parity", "dict", p, optional=True, default={}),
                details=c.get(v, "details", "dict", p, optional=True, default={}),
                cost=_cost(c, v, fmt, p))
            _check_shapes(c, variants[name], vocab_size, window)
        if not variants:
            raise BundleInvalid("manifest.json: the bundle holds no variants; re-export it")
        default = c.get(data, "default_variant", "str", "manifest")
        if default not in variants:
            c.fail("default_variant", f"one of {sorted(variants)}", default)
        if variants[default].kind != "window":   # a step variant cannot answer a window on its own
            c.fail("default_variant", "a window variant", default)
        preference = _preference(c, data, variants, default)
        return cls(data, vocab_file, vocab_sha, vocab_bytes, vocab_size, window, output, default, variants, preference)


def _check_shapes(c, v, vocab_size, window):
    """The tensors must be what the predictor will feed and read: mismatches are refused here."""
    p = f"variants.{v.name}"
    want_in = 1 if v.kind == "window" else 3
    if len(v.inputs) != want_in or len(v.outputs) != want_in:
        c.fail(p + ".inputs/outputs", f"{want_in} input(s) and {want_in} output(s)", [len(v.inputs), len(v.outputs)])
    ids = v.inputs[0]
    if ids.dtype not in ("int32", "int64") or len(ids.shape) != 2:
        c.fail(p + ".inputs[0]", "an int32/int64 tensor of shape [batch, time]", ids.to_dict())
    if ids.shape[1] != (window if v.kind == "window" else 1):
        c.fail(p + ".inputs[0].shape[1]", f"the window length {window}" if v.kind == "window" else "1", ids.shape[1])
    if len(v.outputs[0].shape) != 2 or v.outputs[0].shape[-1] != vocab_size:
        c.fail(p + ".outputs[0].shape", f"[batch, {vocab_size}] (the vocabulary size)", list(v.outputs[0].shape))
    for what, specs in (("inputs", v.inputs[1:]), ("outputs", v.outputs)):   # step states h, c; logits
        for i, spec in enumerate(specs, start=1 if what == "inputs" else 0):
            if spec.dtype != "float32":
                c.fail(f"{p}.{what}[{i}].dtype", "float32 (logits and LSTM states are float32 in every variant)",
                       spec.dtype)


# -- reading -----------------------------------------------------------------------------------
@dataclass
class Bundle:
    """A verified bundle: manifest and tokenizer checked; model bytes verified on request."""
    path: str
    manifest: Manifest
    tokenizer: Tokenizer
    manifest_sha256: str

    @classmethod
    def open(cls, path):
        path = os.fspath(path)
        if not os.path.isdir(path):
            raise BundleInvalid(f"{path} is not a bundle folder (expected a folder with {MANIFEST}); "
                                "build one with nextword-export")
        raw = read_inside(path, MANIFEST, MAX_MANIFEST_BYTES, "bundle")
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as e:  # RecursionError: absurdly deep nesting
            raise BundleInvalid(f"{MANIFEST} is not valid JSON ({e}); the bundle is damaged: re-export or copy it again") from None
        manifest = Manifest.parse(data)
        vocab = verified(read_inside(path, manifest.vocab_file, MAX_MANIFEST_BYTES * 16, "bundle"),
                          manifest.vocab_file, manifest.vocab_size_bytes, manifest.vocab_sha256)
        try:
            tokenizer = Tokenizer.from_json(vocab.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise BundleInvalid(f"{manifest.vocab_file} is not UTF-8 ({e})") from None
        if tokenizer.vocab_size != manifest.vocab_size:
            raise BundleInvalid(f"vocabulary has {tokenizer.vocab_size} ids but the model outputs "
                                f"{manifest.vocab_size}; the bundle mixes files from two exports")
        return cls(path, manifest, tokenizer, sha256_bytes(raw))

    def model_bytes(self, variant):
        """The variant's file, read once and verified; only these bytes are given to an interpreter."""
        v = self.manifest.variants[variant] if isinstance(variant, str) else variant
        data = read_inside(self.path, v.file, MAX_MODEL_BYTES, f"variant {v.name}")
        return verified(data, v.file, v.size, v.sha256)
