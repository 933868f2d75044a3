"""Model folder -> bundle: convert each variant in a child process, check each through the real
Predictor on every interpreter it claims, gate, measure what each window variant costs on each
interpreter (cost.py), choose the default from that, write the manifest, rename into place."""

import json
import logging
import os

import numpy as np

from nextword.runtime.backends import available_packages, package_version
from nextword.runtime.errors import BundleError, InputError, NextwordError
from nextword.runtime.limits import MAX_LEXICON_BYTES
from nextword.runtime.predictor import Predictor
from nextword.runtime.session import step_probabilities
from nextword.runtime.tokenizer import Tokenizer
from nextword.runtime.bundle_files import sha256_bytes
from nextword.runtime.ngram import FILE as NGRAM_FILE
from nextword.train import lexicon, train_ids
from nextword.train.atomic import AtomicFolder, check_target
from nextword.train.quiet_tf import import_keras

from . import bundle_writer, cost, ngram, parity
from .mix_fit import fit_lstm_weight
from .children import legacy_probabilities, legacy_version, run_converter
from .onnx_format import ONNX_OPSET, OPSETS
from .progress import Steps, checking_packages, planned_steps, steps_after_conversion
from .variants import CATALOGUE, DEFAULT_VARIANTS

log = logging.getLogger(__name__)
REQUIRED = ("model.keras", "tokenizer.json", "windows.npz", "train-report.json")


class ExportFailed(NextwordError):
    """One or more variants failed conversion or their parity gate; nothing was written."""
    exit_code = 1

    def __init__(self, message, table):
        super().__init__(message)
        self.table = table


def check_model_dir(model_dir):
    if not os.path.isdir(model_dir):
        raise InputError(f"model folder {model_dir} does not exist; train one with nextword-train")
    missing = [f for f in REQUIRED if not os.path.isfile(os.path.join(model_dir, f))]
    if missing:
        raise InputError(f"{model_dir} is not a trained model folder (missing {', '.join(missing)}); "
                         "train one with nextword-train")


def read_lexicon(model_dir, tokenizer):
    """The model folder's lexicon.json (display forms) as bytes, checked against its tokenizer, or None
    when the folder was trained before nextword wrote one (the bundle then has no lexicon entry)."""
    path = os.path.join(model_dir, lexicon.FILE)
    if not os.path.lexists(path):
        return None
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_LEXICON_BYTES + 1)
        if len(raw) > MAX_LEXICON_BYTES:
            raise InputError(f"{path} holds more than {MAX_LEXICON_BYTES:,} bytes; train the model again")
        lexicon.DisplayForms.read(raw, tokenizer)   # the runtime's reader: what passes here loads there
    except OSError as e:
        raise InputError(f"cannot read {path} ({e.strerror or e}); train the model again") from None
    except BundleError as e:
        raise InputError(f"{path} is not a valid lexicon ({e}); train the model again") from None
    return raw


def build_ngram(model_dir, tokenizer, order, budget):
    """(the n-gram model of the training documents (export/ngram.py), the validation documents), or
    (None, []) when the model folder was trained before nextword kept its training ids (a note says
    so; the bundle then has no n-gram)."""
    try:
        ids = train_ids.load(model_dir)
    except ValueError as e:
        raise InputError(f"{e}; train the model again") from None
    if ids is None:
        log.warning("%s has no %s (trained by an older nextword): the bundle gets no n-gram model", model_dir,
                    train_ids.FILE)
        return None, []
    return ngram.build(ids[0], tokenizer.vocab_size, order, budget), ids[1]


def check_variant_names(names):
    unknown = [n for n in names if n not in CATALOGUE]
    if unknown:
        raise InputError(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(CATALOGUE)}")
    if not names:
        raise InputError("no variants requested")
    return list(dict.fromkeys(names))


def export_bundle(model_dir, out, variants=None, force=False, drop_failing=False, gates=None, legacy_python=None,
                  progress=None, opset=None, ngram_order=ngram.DEFAULT_ORDER, ngram_budget=ngram.DEFAULT_BUDGET,
                  with_ngram=True):
    """Build the bundle; returns the manifest dict. Raises ExportFailed with a table when gates fail.
    progress: None or a callable (done, total, label), see Steps. The n-gram model (ngram.npz, order
    `ngram_order`, at most `ngram_budget` bytes) is built from the model folder's train-ids.npz unless
    `with_ngram` is False."""
    ngram.check_order(ngram_order)
    ngram.check_budget(ngram_budget)
    check_model_dir(model_dir)
    names = check_variant_names(variants or DEFAULT_VARIANTS)
    opset = ONNX_OPSET if opset is None else opset
    if opset not in OPSETS:
        raise InputError(f"ONNX opset {opset} is not supported by the converter (tf2onnx 1.17 takes "
                         f"{OPSETS.start}..{OPSETS.stop - 1}); the default is {ONNX_OPSET}")
    check_target(os.path.abspath(out), force)
    if legacy_python and not legacy_version(legacy_python):
        raise InputError(f"--legacy-python {legacy_python} cannot import tflite-runtime")
    try:
        tokenizer = Tokenizer.load(os.path.join(model_dir, "tokenizer.json"))
    except NextwordError as e:
        raise InputError(f"{model_dir}/tokenizer.json is not a valid tokenizer ({e})") from None
    lexicon_raw = read_lexicon(model_dir, tokenizer)
    lexicon_file = lexicon.FILE if lexicon_raw is not None else None
    built, val_docs = build_ngram(model_dir, tokenizer, ngram_order, ngram_budget) if with_ngram else (None, [])
    windows = np.load(os.path.join(model_dir, "windows.npz"), allow_pickle=False)
    x_eval, y_eval = windows["x_eval"], windows["y_eval"]
    with open(os.path.join(model_dir, "train-report.json"), encoding="utf-8") as f:
        report = json.load(f)

    keras = import_keras()
    model = keras.saving.load_model(os.path.join(model_dir, "model.keras"))
    width, window = model.output_shape[-1], model.input_shape[1]
    if width != tokenizer.vocab_size:
        raise InputError(f"the model predicts {width} ids but its tokenizer has {tokenizer.vocab_size}: "
                         "model.keras and tokenizer.json come from different runs")
    reference = np.concatenate([model(x_eval[i:i + 512], training=False).numpy()
                                for i in range(0, len(x_eval), 512)])
    mix = fit_lstm_weight(model, built.model(tokenizer.vocab_size), val_docs, window) if built is not None else None
    here = available_packages()
    legacy = legacy_version(legacy_python) if legacy_python else None
    specs = [CATALOGUE[n] for n in names]
    steps = Steps(progress, planned_steps(specs, here, legacy))
    # nothing machine-specific: the model folder's name only, never its path
    source = {"model_name": os.path.basename(os.path.normpath(model_dir)),
              "corpus_sha256": report["corpus"]["sha256"],
              "eval_windows": int(len(x_eval)), "eval_source": report["eval_windows"]["source"] + " windows"}

    with AtomicFolder(out, force) as tmp:
        tokenizer.save(os.path.join(tmp, "vocab.json"))
        if lexicon_raw is not None:
            with open(os.path.join(tmp, lexicon_file), "wb") as f:
                f.write(lexicon_raw)   # the bytes just checked, not a second read of the model folder
        ngram_entry = None
        if built is not None:
            with open(os.path.join(tmp, NGRAM_FILE), "wb") as f:
                f.write(built.data)
            ngram_entry = ngram.manifest_entry(built, sha256_bytes(built.data))
            if mix is not None:
                ngram_entry["mix"] = mix   # the LSTM's share in suggestions (runtime/mix.py)
        x_path = os.path.join(tmp, ".eval-windows.npy")
        np.save(x_path, x_eval, allow_pickle=False)
        entries, failures = {}, {}
        for spec in specs:
            steps.begin(f"convert {spec.name}")
            meta, why = run_converter(spec, model_dir, tmp, opset)
            steps.end()
            if why:
                failures[spec.name] = f"conversion failed: {why}"
                steps.end(steps_after_conversion(spec, here, legacy))
                continue
            entries[spec.name] = {"file": spec.file, "format": spec.format, "kind": spec.kind,
                                  "quantization": spec.family, "inputs": meta["inputs"], "outputs": meta["outputs"],
                                  "runtimes": {}, "parity": {}, "details": meta["details"]}
        if not entries:
            raise ExportFailed("no variant could be converted", bundle_writer.parity_table(
                {"variants": {}}, failures))
        bundle_writer.write_manifest(tmp, bundle_writer.manifest_dict(
            tokenizer, "vocab.json", tmp, window, entries, next(iter(entries)), {}, source, lexicon_file, ngram_entry))
        for spec in specs:
            if spec.name in entries:
                _check_parity(spec, entries[spec.name], tmp, x_path, reference, y_eval, here, legacy,
                              legacy_python, gates, failures, steps)
        os.unlink(x_path)
        if failures and not drop_failing:
            table = bundle_writer.parity_table(bundle_writer.manifest_dict(
                tokenizer, "vocab.json", tmp, window, entries, next(iter(entries)), {}, source, lexicon_file, ngram_entry), failures)
            raise ExportFailed(f"{len(failures)} variant(s) failed: " + "; ".join(f"{k} ({v})" for k, v in failures.items()),
                               table)
        for name in failures:
            if name in entries:
                os.unlink(os.path.join(tmp, entries.pop(name)["file"]))
                if CATALOGUE[name].kind == "window":   # its cost is not measured
                    steps.end(len(checking_packages(CATALOGUE[name], here, legacy)))
        if not any(e["kind"] == "window" for e in entries.values()):
            raise ExportFailed("every window variant failed", "\n".join(f"{k}: {v}" for k, v in failures.items()))
        # the measure children load the bundle as it now stands (failed variants gone)
        bundle_writer.write_manifest(tmp, bundle_writer.manifest_dict(
            tokenizer, "vocab.json", tmp, window, entries, next(n for n, e in entries.items() if e["kind"] == "window"),
            failures, source, lexicon_file, ngram_entry))
        for spec in specs:
            if spec.name in entries and spec.kind == "window":
                _measure_cost(spec, entries[spec.name], tmp, legacy_python, steps)
        manifest = bundle_writer.manifest_dict(tokenizer, "vocab.json", tmp, window, entries, None, failures, source, lexicon_file, ngram_entry)
        manifest["preference"] = cost.rank(manifest["variants"])
        manifest["default_variant"], manifest["default_reason"] = cost.choose_default(
            manifest["variants"], manifest["preference"])
        with open(os.path.join(tmp, "parity.md"), "w", encoding="utf-8") as f:
            f.write(bundle_writer.parity_markdown(manifest))
        bundle_writer.write_manifest(tmp, manifest)
        steps.finish()
    return manifest


def _check_parity(spec, entry, tmp, x_path, reference, y_eval, here, legacy, legacy_python, gates, failures, steps):
    """Run `spec` through the real Predictor on each interpreter that checks it here; record runtimes,
    parity figures and gate failures in `entry` / `failures`."""
    x_eval = np.load(x_path, allow_pickle=False)
    for pkg in checking_packages(spec, here, legacy):
        steps.begin(f"parity {spec.name} on {pkg}")
        if pkg == "tflite-runtime":
            probs, why = legacy_probabilities(legacy_python, tmp, spec.name, x_path)
            version = legacy
        else:
            try:
                if spec.kind == "step":   # each padded window from the zero state, via an exact-mode session
                    probs, why = step_probabilities(tmp, spec.name, x_eval, backend=pkg), None
                else:
                    probs, why = Predictor.load(tmp, backend=pkg, variant=spec.name).probabilities(x_eval), None
            except NextwordError as e:
                probs, why = None, str(e)
            version = package_version(pkg)
        steps.end()
        if why:
            entry["runtimes"][pkg] = {"ok": False, "version": version, "reason": why}
            continue
        figures = parity.compare(reference, probs, y_eval)
        figures["failures"] = parity.check(spec.family, figures, gates)
        entry["parity"][pkg] = figures
        entry["runtimes"][pkg] = {"ok": True, "version": version, "verified": True}
        if figures["failures"]:
            failures[spec.name] = f"{pkg}: " + "; ".join(figures["failures"])
    if not entry["parity"]:
        failures[spec.name] = "no interpreter could run it: " + "; ".join(
            f"{k}: {r['reason']}" for k, r in entry["runtimes"].items()) if entry["runtimes"] else \
            "no interpreter for it is installed here"


def _measure_cost(spec, entry, tmp, legacy_python, steps):
    """entry["cost"][pkg] for every interpreter that ran the window variant `spec` (cost.py)."""
    for pkg, runtime in entry["runtimes"].items():
        steps.begin(f"cost {spec.name} on {pkg}")
        if runtime["ok"]:
            figures, why = cost.measure(tmp, spec.name, pkg, python=legacy_python if pkg == "tflite-runtime" else None)
            if figures is None:
                log.warning("could not measure %s on %s: %s", spec.name, pkg, why)
            else:
                entry.setdefault("cost", {})[pkg] = figures
        steps.end()
