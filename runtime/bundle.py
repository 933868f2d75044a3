"""The bundle format, in one place: the manifest schema, how export writes it and how the device
reads it. Loading *is* verifying: a file reaches an interpreter only as bytes whose size and sha256
match the manifest, read from a plain file inside the bundle folder."""

import math
import os
import re
from dataclasses import dataclass, field

from .backends.packages import PACKAGES
from .bundle_files import MANIFEST, load_json, read_inside, sha256_bytes, verified
from .bundle_files import sha256_file  # noqa: F401 (export imports it from here)
from .errors import BundleInvalid, UnsupportedVersion
from .json_fields import Check, Said, short
from .limits import (MAX_DIM, MAX_FILTER_CHARS, MAX_MANIFEST_BYTES, MAX_MANIFEST_VALUES, MAX_MODEL_BYTES,
                     MAX_NOTE_CHARS, MAX_PREFERENCE, MAX_RANK, MAX_SPLIT_CHARS, MAX_TENSORS, MAX_VARIANTS,
                     MAX_VOCAB_BYTES, MAX_VOCAB_SIZE, MAX_WINDOW, MAX_WORD_CHARS, MAX_LEXICON_BYTES)
from .limits import MAX_NGRAM_BYTES, MAX_NGRAM_ORDER
from .lexicon import Lexicon
from .ngram import NgramModel
from .tokenizer import Tokenizer

FORMAT_VERSION = 1
FORMATS = PACKAGES        # format -> interpreter packages: the one table lives in runtime/backends/packages.py
COST_FIELDS = {"cold_start_ms": "num", "peak_rss_mib": "num", "call_us": "num", "runs": "int"}
KINDS = ("window", "step")
DTYPES = ("int8", "uint8", "int16", "int32", "int64", "float16", "float32")
SHA256 = re.compile(r"[0-9a-fA-F]{64}")
# The tokenizer settings the manifest repeats from vocab.json (written by every exporter since the
# first): both must agree, or the bundle mixes files from two exports.
TOKENIZER_FIELDS = {"num_words": "int?", "filters": "str", "lower": "bool", "split": "str", "oov_token": "str?"}
TOKENIZER_CHARS = {"filters": MAX_FILTER_CHARS, "split": MAX_SPLIT_CHARS, "oov_token": MAX_WORD_CHARS}


# -- schema ------------------------------------------------------------------------------------
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
    name = check.name(check.get(data, "name", "str", path), f"{path}.name", "a tensor name")
    dtype = check.get(data, "dtype", "str", path)
    if dtype not in DTYPES:
        check.fail(f"{path}.dtype", f"one of {', '.join(DTYPES)}", dtype)
    shape = check.get(data, "shape", "list", path)
    if not 0 < len(shape) <= MAX_RANK:
        check.fail(f"{path}.shape", f"a list of 1 to {MAX_RANK} sizes", Said(f"{len(shape)} sizes"))
    for n in shape:
        if isinstance(n, bool) or not isinstance(n, int) or n < -1 or n == 0 or n > MAX_DIM:
            check.fail(f"{path}.shape", f"a list of sizes from 1 to {MAX_DIM} (-1 for a dynamic batch)", shape)
    if "quantization" in data:
        check.fail(f"{path}.quantization", "absent (this runtime reads unquantized model inputs and outputs: "
                   "integer ids in, float32 logits and states out)", data["quantization"])
    return TensorSpec(name, dtype, tuple(shape))


def _finite(check, data, key, kind, path):
    value = check.get(data, key, kind, path)
    if not (math.isfinite(value) and value >= 0):
        check.fail(f"{path}.{key}", "a finite number >= 0", value)
    return value


def _tensors(check, v, key, path):
    specs = check.get(v, key, "list", path)
    if len(specs) > MAX_TENSORS:
        check.fail(f"{path}.{key}", f"a list of at most {MAX_TENSORS} tensors", Said(f"{len(specs)} tensors"))
    return [_tensor(check, t, f"{path}.{key}[{i}]") for i, t in enumerate(specs)]


def _sha256(check, data, path):
    """64 hex digits in either case, kept lowercase (what hashlib's hexdigest gives)."""
    value = check.get(data, "sha256", "str", path)
    if SHA256.fullmatch(value) is None:
        check.fail(f"{path}.sha256", "64 hexadecimal digits (the file's SHA-256)", value)
    return value.lower()


def _runtimes(check, v, path):
    """{package: {"ok": bool, "version": str, "reason": str, ...}}: what export verified per package."""
    runtimes = check.keyed(v, "runtimes", path, optional=False)
    for pkg, entry in runtimes.items():
        p = f"{path}.runtimes.{pkg}"
        check.obj(entry, p)
        check.get(entry, "ok", "bool", p)
        check.text(entry, "reason", p, MAX_NOTE_CHARS, optional=True)
        check.info(entry, p)
    return runtimes


def _cost(check, v, fmt, path):
    """Optional per-variant measurements: {package: {cold_start_ms, peak_rss_mib, call_us, runs}}."""
    cost = check.keyed(v, "cost", path)
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
        check.fail("preference", f"at most {MAX_PREFERENCE} entries", Said(f"{len(entries)} entries"))
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
    tokenizer_config: dict = field(default_factory=dict)   # num_words, filters, lower, split, oov_token
    lexicon: dict = None      # optional {"file", "sha256", "size"} of lexicon.json (display forms); None: absent
    ngram: dict = None        # optional {"file", "sha256", "size", "order"} of ngram.npz; None: absent

    @classmethod
    def parse(cls, data):
        c = Check("manifest.json")
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
        vocab_sha = _sha256(c, tok, "tokenizer")
        vocab_bytes = c.get(tok, "size", "int", "tokenizer")
        if not 0 < vocab_bytes <= MAX_VOCAB_BYTES:
            c.fail("tokenizer.size", f"a size from 1 to {MAX_VOCAB_BYTES} bytes", vocab_bytes)
        tokenizer_config = {}
        for key, kind in TOKENIZER_FIELDS.items():
            value = c.get(tok, key, kind, "tokenizer")
            if key in TOKENIZER_CHARS and value is not None and len(value) > TOKENIZER_CHARS[key]:
                c.fail(f"tokenizer.{key}", f"a string of at most {TOKENIZER_CHARS[key]} characters",
                       Said(f"{len(value)} characters"))
            tokenizer_config[key] = value
        vocab_size = c.get(data, "vocab_size", "int", "manifest")
        window = c.get(data, "window", "int", "manifest")
        if not 2 <= vocab_size <= MAX_VOCAB_SIZE:
            c.fail("vocab_size", f"an integer from 2 to {MAX_VOCAB_SIZE}", vocab_size)
        if not 1 <= window <= MAX_WINDOW:
            c.fail("window", f"an integer from 1 to {MAX_WINDOW}", window)
        if c.get(data, "padding", "str", "manifest") != "pre":
            c.fail("padding", "'pre'", data["padding"])
        output = c.get(data, "output", "str", "manifest")
        if output != "logits":   # every variant the exporter writes ends in a linear layer; softmax is numpy's
            c.fail("output", "'logits' (the only model output this runtime reads)", output)
        variants = {}
        entries = c.get(data, "variants", "dict", "manifest")
        if len(entries) > MAX_VARIANTS:   # before any is read: 10,600 variants once took 24 minutes to refuse
            c.fail("variants", f"at most {MAX_VARIANTS} variants", Said(f"{len(entries)} variants"))
        for name, v in entries.items():
            c.name(name, "variants key", "a variant name")
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
            variants[name] = Variant(
                name=name,
                file=check_file_name(c.get(v, "file", "str", p), p),
                format=fmt, kind=kind,
                quantization=c.name(c.get(v, "quantization", "str", p), p + ".quantization", "a quantization name"),
                sha256=_sha256(c, v, p), size=size,
                inputs=_tensors(c, v, "inputs", p),
                outputs=_tensors(c, v, "outputs", p),
                runtimes=_runtimes(c, v, p),
                parity={pkg: c.info(e, f"{p}.parity.{pkg}") for pkg, e in c.keyed(v, "parity", p).items()},
                details=c.info(c.get(v, "details", "dict", p, optional=True, default={}), p + ".details"),
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
        return cls(data, vocab_file, vocab_sha, vocab_bytes, vocab_size, window, output, default, variants, preference,
                   tokenizer_config, _lexicon_entry(c, data), _ngram_entry(c, data))

    def check_tokenizer(self, tokenizer):
        """The vocabulary's settings must be the ones the manifest records (both written by one export)."""
        for key in TOKENIZER_FIELDS:
            mine, theirs = self.tokenizer_config[key], tokenizer.config()[key]
            if type(mine) is not type(theirs) or mine != theirs:   # type: true == 1 in Python
                raise BundleInvalid(f"manifest.json tokenizer.{key} is {short(mine)} but {self.vocab_file} says "
                                    f"{short(theirs)}; the bundle mixes files from two exports: re-export it")


def _file_entry(c, data, key, max_bytes):
    """(the raw entry, {"file", "sha256", "size"}) of an optional top-level file entry, or (None, None)."""
    entry = c.get(data, key, "dict", "manifest", optional=True)
    if entry is None:
        return None, None
    name = check_file_name(c.get(entry, "file", "str", key), f"manifest.json {key}")
    size = c.get(entry, "size", "int", key)
    if not 0 < size <= max_bytes:
        c.fail(f"{key}.size", f"a size from 1 to {max_bytes} bytes", size)
    return entry, {"file": name, "sha256": _sha256(c, entry, key), "size": size}


def _lexicon_entry(c, data):
    """The optional `lexicon` entry: {"file", "sha256", "size"} of the display forms file, or None."""
    return _file_entry(c, data, "lexicon", MAX_LEXICON_BYTES)[1]


def _ngram_entry(c, data):
    """The optional `ngram` entry: {"file", "sha256", "size", "order", "lstm_weight", "mix"} of the
    n-gram model, or None. Its informative "details" (what export counted and pruned) are checked for
    size only."""
    entry, out = _file_entry(c, data, "ngram", MAX_NGRAM_BYTES)
    if entry is None:
        return None
    order = c.get(entry, "order", "int", "ngram")
    if not 1 <= order <= MAX_NGRAM_ORDER:
        c.fail("ngram.order", f"an integer from 1 to {MAX_NGRAM_ORDER}", order)
    c.info(c.get(entry, "details", "dict", "ngram", optional=True, default={}), "ngram.details")
    mix = c.get(entry, "mix", "dict", "ngram", optional=True, default=None)
    weight = None
    if mix is not None:
        c.info(mix, "ngram.mix")
        weight = c.get(mix, "lstm_weight", "num", "ngram.mix")
        if not 0.0 <= weight <= 1.0:   # NaN fails too
            c.fail("ngram.mix.lstm_weight", "a number from 0 to 1 (the LSTM's share of the mixture)", weight)
        weight = float(weight)
    return dict(out, order=order, lstm_weight=weight, mix=mix)


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
    _lexicon: Lexicon = field(default=None, init=False, repr=False, compare=False)
    _ngram: NgramModel = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def open(cls, path):
        path = os.fspath(path)
        if not os.path.isdir(path):
            raise BundleInvalid(f"{path} is not a bundle folder (expected a folder with {MANIFEST}); "
                                "build one with nextword-export")
        raw = read_inside(path, MANIFEST, MAX_MANIFEST_BYTES, "bundle")
        manifest = Manifest.parse(load_json(raw, MAX_MANIFEST_VALUES, MANIFEST))
        vocab = verified(read_inside(path, manifest.vocab_file, MAX_VOCAB_BYTES, "bundle"),
                         manifest.vocab_file, manifest.vocab_size_bytes, manifest.vocab_sha256)
        tokenizer = Tokenizer.from_json(vocab)
        manifest.check_tokenizer(tokenizer)
        if tokenizer.vocab_size != manifest.vocab_size:
            raise BundleInvalid(f"vocabulary has {tokenizer.vocab_size} ids but the model outputs "
                                f"{manifest.vocab_size}; the bundle mixes files from two exports")
        if not any(w for i, w in enumerate(tokenizer.id_to_word_table()) if i != tokenizer.oov_id):
            raise BundleInvalid(f"{manifest.vocab_file} holds no word a suggestion could name (only padding and the "
                                "OOV token); train on a corpus with words")
        return cls(path, manifest, tokenizer, sha256_bytes(raw))

    def lexicon(self):
        """The display forms (runtime/lexicon.py), read on first use: verified against the manifest's
        size and sha256, from inside the bundle; an empty Lexicon when the manifest names none.
        A damaged or crafted file is a BundleError (and is read again on the next call)."""
        if self._lexicon is None:
            entry = self.manifest.lexicon
            if entry is None:
                lexicon = Lexicon.empty()
            else:
                raw = verified(read_inside(self.path, entry["file"], MAX_LEXICON_BYTES, "bundle"),
                               entry["file"], entry["size"], entry["sha256"])
                lexicon = Lexicon.from_json(raw, self.tokenizer)
            self._lexicon = lexicon
        return self._lexicon

    def ngram(self):
        """The n-gram model (runtime/ngram.py), read on first use: verified against the manifest's size
        and sha256, from inside the bundle, every array checked; None when the manifest names none.
        A damaged or crafted file is a BundleError (and is read again on the next call)."""
        entry = self.manifest.ngram
        if entry is None:
            return None
        if self._ngram is None:
            raw = verified(read_inside(self.path, entry["file"], MAX_NGRAM_BYTES, "bundle"),
                           entry["file"], entry["size"], entry["sha256"])
            model = NgramModel.from_bytes(raw, entry["file"], self.manifest.vocab_size)
            if model.order != entry["order"]:
                raise BundleInvalid(f"manifest.json ngram.order is {entry['order']} but {entry['file']} holds an "
                                    f"order-{model.order} model; the bundle mixes files from two exports: re-export it")
            self._ngram = model
        return self._ngram

    def model_bytes(self, variant):
        """The variant's file, read once and verified; only these bytes are given to an interpreter."""
        v = self.manifest.variants[variant] if isinstance(variant, str) else variant
        data = read_inside(self.path, v.file, MAX_MODEL_BYTES, f"variant {v.name}")
        return verified(data, v.file, v.size, v.sha256)
