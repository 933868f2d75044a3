"""One benchmark run: latency, throughput, cold start, memory, size and quality of every variant ×
backend of a bundle, against the Keras model (in a TensorFlow child process) and an n-gram baseline.

This process never imports TensorFlow: Keras figures come from `python -m nextword.train.keras_bench`
children over the line protocol (train/bench_protocol.py); interpreters living in another environment (tflite-runtime 2.14)
from `python -m nextword.bench.server` children. See bench/cli.py for the options."""

import datetime
import json
import logging
import os
import sys
import tempfile
from dataclasses import dataclass

import numpy as np

from nextword.runtime.backends import available_packages
from nextword.runtime.bundle import FORMATS, Bundle
from nextword.runtime.child import module_argv
from nextword.runtime.errors import BackendUnavailable, InputError, NextwordError
from nextword.runtime.predictor import Predictor
from nextword.runtime.windowing import pad_windows

from . import charts as charts_mod, children, goals, ksr_bench, learning_bench, machine, quality, report, scaling, timing
from .streaming import streaming_costs, streaming_quality

log = logging.getLogger(__name__)


@dataclass
class Options:
    bundle: str
    out: str
    keras: str = None
    keras_python: str = sys.executable
    legacy_python: str = None
    corpus: list = None
    heldout_fraction: float = None
    unit: str = None
    max_eval: int = 3000
    rounds: int = 10
    block_seconds: float = 0.1
    keras_min_calls: int = 5
    max_calls: int = 5000
    cold_runs: int = 5
    quick: bool = False
    scaling: bool = False
    scaling_cache: str = None
    charts: bool = True
    command: str = ""
    ksr: bool = True
    ksr_words: int = 0          # cap on the held-out words typed by the KSR simulation (0: all)
    learn_text: str = None      # a second text for the learning section (bench/learning_bench.py)


def _eval_data(opt, bundle, report_):
    m, tok = bundle.manifest, bundle.tokenizer
    cfg = (report_ or {}).get("config", {})
    if opt.corpus:
        unit = opt.unit or cfg.get("unit") or "line"
        fraction = opt.heldout_fraction if opt.heldout_fraction is not None else (quality.heldout_fraction(cfg) or 0.1)
        return quality.from_corpus(opt.corpus, unit, fraction, tok, m.window, opt.max_eval, m.raw.get("source", {}), report_)
    if opt.keras and os.path.isfile(os.path.join(opt.keras, "windows.npz")):
        return quality.from_model_windows(opt.keras, tok, m.window, opt.max_eval, report_)
    return None


def _candidates(opt, bundle, texts, tmp, tick):
    """In-process predictors for every window variant × importable package; a bench.server child
    for tflite-runtime when it only lives in --legacy-python's environment."""
    here = available_packages()
    cands, predictors, servers, skipped = [], {}, [], []
    legacy_ok = bool(opt.legacy_python) and children.python_has(opt.legacy_python, "tflite_runtime")
    texts_path = os.path.join(tmp, "texts.json")
    with open(texts_path, "w", encoding="utf-8") as f:
        json.dump(texts, f)
    for name, v in bundle.manifest.variants.items():
        if v.kind != "window":
            continue
        for pkg in FORMATS[v.format]:
            ok, why = v.runnable_on(pkg)
            key = f"{name}@{pkg}"
            if not ok:
                skipped.append(f"{key}: {why}")
                continue
            if pkg in here:
                try:
                    p = Predictor.load(bundle.path, backend=pkg, variant=name)
                except NextwordError as e:
                    skipped.append(f"{key}: {e}")
                    continue
                predictors[key] = p
                cands.append(timing.local_candidate(key, p, texts))
            elif pkg == "tflite-runtime" and legacy_ok:
                s = children.runtime_server(opt.legacy_python, bundle.path, name, pkg, texts_path,
                                            os.path.join(opt.out, "children.log"))
                servers.append(s)
                cands.append(timing.server_candidate(key, s, name, pkg))
            else:
                skipped.append(f"{key}: {pkg} not installed here" + ("" if pkg != "tflite-runtime" else
                                                                     " (give --legacy-python)"))
    return cands, predictors, servers, skipped


def _sizes(bundle, keras_dir):
    m = bundle.manifest
    by_file = {v.file: v for v in m.variants.values()}
    floats = {(v.format, v.kind): v.size for v in m.variants.values() if v.quantization == "float32"}
    files = []
    for fname in sorted(os.listdir(bundle.path)):
        full = os.path.join(bundle.path, fname)
        if not os.path.isfile(full):
            continue
        entry = {"file": fname, "bytes": os.path.getsize(full)}
        v = by_file.get(fname)
        if v is not None:
            base = floats.get((v.format, v.kind))
            entry.update(variant=v.name, format=v.format, kind=v.kind, quantization=v.quantization,
                         vs_float32=v.size / base if base else None)
        files.append(entry)
    out = {"files": files, "total_bytes": sum(f["bytes"] for f in files)}
    if keras_dir and os.path.isfile(os.path.join(keras_dir, "model.keras")):
        out["keras_model_bytes"] = os.path.getsize(os.path.join(keras_dir, "model.keras"))
    return out


def _cold_starts(opt, bundle, here, legacy_ok, text, keras_ok, tick):
    m = bundle.manifest
    runs = opt.cold_runs
    script = os.path.join(os.path.dirname(sys.executable), "nextword-predict")
    predict = [script] if os.path.isfile(script) else module_argv("nextword.runtime.cli")
    jobs = {"python (empty process)": [sys.executable, "-c", "pass"]}
    for pkg in ("ai-edge-litert", "onnxruntime", "tflite-runtime"):
        fmt = next(f for f, pkgs in FORMATS.items() if pkg in pkgs)
        cands = [v for v in m.variants.values() if v.kind == "window" and v.format == fmt and v.runnable_on(pkg)[0]]
        if not cands:
            continue
        v = next((c for c in cands if c.name == m.default_variant), min(cands, key=lambda c: c.size))
        if pkg in here:
            jobs[f"nextword-predict@{pkg}"] = (predict + [bundle.path, text, "--backend", pkg, "--variant", v.name], v.name)
        elif pkg == "tflite-runtime" and legacy_ok:
            jobs[f"nextword-predict@{pkg}"] = (module_argv("nextword.runtime.cli", python=opt.legacy_python) + [bundle.path, text, "--backend", pkg,
                                               "--variant", v.name], v.name)
    if keras_ok:
        jobs["tensorflow"] = module_argv("nextword.train.keras_bench", python=opt.keras_python) + ["--cold", os.path.abspath(opt.keras), "--text", text]
    out = {}
    for name, job in jobs.items():
        argv, variant = job if isinstance(job, tuple) else (job, None)
        try:
            r = children.cold_start(argv, runs)
        except children.ChildError as e:
            log.warning("cold start %s failed: %s", name, e)
            out[name] = {"error": str(e)}
            continue
        finally:
            tick(f"cold start {name}")
        if variant:
            r.update(variant=variant, backend=name.split("@", 1)[1])
        out[name] = r
    return {k: v for k, v in out.items() if "error" not in v}, {k: v["error"] for k, v in out.items() if "error" in v}


def _streaming(opt, bundle, ev, tick):
    """Streaming figures for bundles with step variants, from bench/streaming.py: per-word cost of a session against re-running the window (every step variant;
    --quick: the default one) and held-out accuracy of stream vs exact mode (the default one)."""
    m = bundle.manifest
    steps = [n for n, v in m.variants.items() if v.kind == "step"]
    if not steps:
        return None
    here = available_packages()
    backend = {"tflite": "ai-edge-litert", "onnx": "onnxruntime"}
    result = {"status": "ok", "step_variants": steps, "costs": {}, "failed": {}}
    try:
        default = Predictor.load(bundle.path)
    except NextwordError as e:
        return {"status": f"no predictor for the streaming figures: {e}", "step_variants": steps}
    default_step = default.step_model().variant.name
    todo = {default_step: default}
    if not opt.quick:
        for name in steps:
            sv = m.variants[name]
            windows = [v for v in m.variants.values() if v.kind == "window" and v.format == sv.format]
            win = next((v for v in windows if v.quantization == sv.quantization), None) or \
                next((v for v in windows if v.quantization == "float32"), None)
            if name in todo or win is None or backend[sv.format] not in here:
                continue
            try:
                todo[name] = Predictor.load(bundle.path, backend=backend[sv.format], variant=win.name, step_variant=name)
            except NextwordError as e:
                result["failed"][name] = str(e)
    for name, p in todo.items():
        try:
            result["costs"][name] = streaming_costs(p, repeats=30 if opt.quick else 200)
        except Exception as e:  # a streaming failure must not lose the rest of the benchmark
            log.warning("streaming_costs(%s) failed: %s", name, e)
            result["failed"][name] = f"{type(e).__name__}: {e}"
        tick(f"streaming costs {name}")
    result["default_step_variant"] = default_step
    if ev is not None and ev.heldout_ids:
        try:
            result["quality"] = streaming_quality(default, ev.heldout_ids, max_targets=opt.max_eval or None)
        except Exception as e:
            log.warning("streaming_quality failed: %s", e)
            result["failed"]["quality"] = f"{type(e).__name__}: {e}"
        tick("streaming quality")
    else:
        result["quality_skipped"] = "no held-out documents (give --corpus)"
    return result


def run(opt, tick=lambda label: None):
    """The whole benchmark; returns the result dict (also written to opt.out as bench.json)."""
    bundle = Bundle.open(opt.bundle)
    os.makedirs(opt.out, exist_ok=True)
    m = bundle.manifest
    res = {"format": "nextword-bench", "format_version": 1,
           "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "command": opt.command, "machine": machine.describe(),
           "settings": {"rounds": opt.rounds, "block_seconds": opt.block_seconds, "keras_min_calls": opt.keras_min_calls,
                        "max_calls": opt.max_calls, "cold_runs": opt.cold_runs, "max_eval": opt.max_eval,
                        "quick": opt.quick, "threads": 1, "ksr": opt.ksr, "ksr_words": opt.ksr_words},
           "bundle": {"path": os.path.abspath(bundle.path), "name": os.path.basename(os.path.normpath(bundle.path)),
                      "vocab_size": m.vocab_size, "window": m.window, "default_variant": m.default_variant,
                      "variants": [n for n, v in m.variants.items() if v.kind == "window"],
                      "step_variants": [n for n, v in m.variants.items() if v.kind == "step"]},
           "notes": []}
    model_dir = opt.keras   # the manifest names no folder of the machine that built it
    report_ = quality.read_report(model_dir)
    ev = _eval_data(opt, bundle, report_)
    texts = (ev.texts if ev and ev.texts else None) or quality.synthetic_texts(bundle.tokenizer, m.window)
    res["texts"] = {"count": len(texts), "source": "held-out or training documents" if ev and ev.texts else
                    "random vocabulary words", "examples": texts[:3]}
    keras_ok = False
    if opt.keras:
        if not os.path.isfile(os.path.join(opt.keras, "model.keras")):
            raise InputError(f"--keras {opt.keras}: no model.keras there (expected a folder from nextword-train)")
        keras_ok = children.python_has(opt.keras_python, "tensorflow")
        res["keras"] = {"model_dir": os.path.abspath(opt.keras), "status": "ok" if keras_ok else
                        f"TensorFlow is not importable by {opt.keras_python}"}
    with tempfile.TemporaryDirectory(prefix="nextword-bench-") as tmp:
        x_time = pad_windows([bundle.tokenizer.text_to_ids(t) for t in texts], m.window)
        np.save(os.path.join(tmp, "windows.npy"), x_time, allow_pickle=False)
        keras = None
        if keras_ok:
            keras = children.keras_server(opt.keras_python, opt.keras, os.path.join(tmp, "windows.npy"),
                                          os.path.join(opt.out, "children.log"))
        cands, predictors, servers, skipped = _candidates(opt, bundle, texts, tmp, tick)
        res["skipped"] = skipped
        if not cands:
            raise BackendUnavailable("no variant of the bundle can run here: " + "; ".join(skipped))
        try:
            if keras is not None:
                hello = keras.wait_ready()
                res["keras"].update(versions=hello["versions"], params=hello["params"], load_seconds=hello["load_seconds"])
                cands.append(timing.keras_candidate(keras, opt.keras_min_calls))
            for s in servers:
                s.wait_ready()
            for c in cands:
                timing.calibrate(c, opt.block_seconds, opt.max_calls)
                tick(f"calibrated {c.key}")
            timing.run_rounds(cands, opt.rounds, lambda key: tick(f"round: {key}"))
            res["latency"] = {}
            for c in cands:
                entry = timing.summarize(c)
                entry.update({k: v for k, v in c.info.items() if k != "server"})
                res["latency"][c.key] = entry
            goals.add_ratios(res)
            if ev is not None:
                res["quality"] = {"data": {"source": ev.source, "description": ev.description,
                                           "windows_scored": int(len(ev.y)), "windows_total": ev.total_windows,
                                           "split": ev.split}, "columns": {},
                                  "training": quality.training_summary(report_)}
                cols = res["quality"]["columns"]
                if keras is not None:
                    xp, pp = os.path.join(tmp, "eval-x.npy"), os.path.join(tmp, "eval-p.npy")
                    np.save(xp, ev.x, allow_pickle=False)
                    keras.ask("probs", x_path=xp, out_path=pp)
                    cols["keras"] = dict(quality.score_probs(np.load(pp), ev.y), quantization="float32", format="keras",
                                         size_bytes=os.path.getsize(os.path.join(opt.keras, "model.keras")))
                    os.unlink(pp)
                    tick("quality keras")
                done = set()
                for key, p in predictors.items():
                    if p.variant.name in done:
                        continue
                    done.add(p.variant.name)
                    cols[p.variant.name] = dict(quality.score_predictor(p, ev.x, ev.y), backend=p.package,
                                                quantization=p.variant.quantization, format=p.variant.format,
                                                size_bytes=p.variant.size)
                    tick(f"quality {p.variant.name}")
                default = next((p for p in predictors.values() if p.variant.name == m.default_variant), None)
                if default is not None:
                    cols.update(quality.score_hybrid(default, ev.x, ev.y))
                    tick("quality mixture")
                if ev.train_ids is not None:
                    cols["ngram-kn3"] = dict(quality.ngram_baseline(ev.train_ids, m.vocab_size, ev.x, ev.y),
                                             quantization="counts", format="numpy")
                    tick("quality n-gram")
            else:
                res["quality"] = {"skipped": "no --corpus and no --keras model windows"}
        finally:
            if keras is not None:
                keras.close()
            for s in servers:
                s.close()
    if opt.ksr:
        res["ksr"] = ksr_bench.measure(bundle, ev, opt.ksr_words, tick=tick)
    if opt.learn_text:
        unit = opt.unit or ((report_ or {}).get("config", {}).get("unit")) or "line"
        res["learning"] = learning_bench.measure(bundle.path, opt.learn_text, unit, ev.train_words if ev else None,
                                                 tick=tick)
    here = available_packages()
    legacy_ok = bool(opt.legacy_python) and children.python_has(opt.legacy_python, "tflite_runtime")
    res["cold_start"], failed = _cold_starts(opt, bundle, here, legacy_ok, texts[0], keras_ok, tick)
    if failed:
        res["notes"].append("cold start failed: " + "; ".join(f"{k}: {v}" for k, v in failed.items()))
    res["sizes"] = _sizes(bundle, opt.keras)
    res["streaming"] = _streaming(opt, bundle, ev, tick)
    if opt.scaling:
        if not children.python_has(opt.keras_python, "tensorflow"):
            res["scaling"] = None
            res["notes"].append(f"--scaling needs TensorFlow in {opt.keras_python} to build models: skipped")
        else:
            res["scaling"] = scaling.run(opt.scaling_cache, opt.keras_python, max(3, opt.rounds // 2),
                                         opt.block_seconds, opt.max_calls, tick=tick)
    res["goals"] = goals.goals(res)
    res["load_average_end"] = machine.load_average()
    res["tensorflow_imported"] = any(name in sys.modules for name in ("tensorflow", "keras"))
    charts = []
    if opt.charts:
        charts = charts_mod.write_all(res, opt.out)
    res["charts"] = charts
    with open(os.path.join(opt.out, "bench.json"), "w", encoding="utf-8") as f:
        json.dump(res, f, indent=1, ensure_ascii=False, default=_plain)
    with open(os.path.join(opt.out, "bench.md"), "w", encoding="utf-8") as f:
        f.write(report.markdown(res, charts))
    return res


def _plain(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")
