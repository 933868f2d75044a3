"""Cost against vocabulary size and window length, on random-weight models of the default architecture.

Model folders come from a TensorFlow child (`python -m nextword.train.keras_bench --scaling`), bundles from
`python -m nextword.export.cli` children with relaxed gates (random weights give flat distributions, where
int8 top-1 agreement means little); both are cached in `cache_dir`, so a second run only measures.
The measuring happens here, TensorFlow-free, in interleaved rounds over every point."""

import json
import logging
import os
import subprocess

from nextword.runtime.bundle import Bundle
from nextword.runtime.errors import NextwordError
from nextword.runtime.predictor import Predictor

from . import timing
from nextword.runtime.child import module_argv

from .children import child_env
from .quality import synthetic_texts

log = logging.getLogger(__name__)
VARIANTS = ("tflite-float32", "tflite-dynamic-int8", "onnx-float32")
RELAXED = ("float32.top1_agreement=0.9", "float32.max_abs_diff=1e-4", "dynamic-int8.top1_agreement=0",
           "dynamic-int8.top5_overlap=0", "accuracy_slack=1")
BACKEND = {"tflite": "ai-edge-litert", "onnx": "onnxruntime"}


def points(vocabs, windows, base_vocab, base_window):
    """[(vocab, window, axis)]: vocabulary swept at the base window, window swept at the base vocabulary."""
    out = {}
    for v in vocabs:
        out[(v, base_window)] = "vocab"
    for t in windows:
        out[(base_vocab, t)] = "both" if (base_vocab, t) in out else "window"
    return [(v, t, a) for (v, t), a in out.items()]


def build(cache_dir, tf_python, pts, embedding_dim, units, tick=None):
    """Model folders and bundles for every point; returns ({(v, t): bundle dir}, [failures])."""
    os.makedirs(cache_dir, exist_ok=True)
    configs = [f"{v}:{t}" for v, t, _ in pts]
    proc = subprocess.run(module_argv("nextword.train.keras_bench", python=tf_python) + ["--scaling", os.path.abspath(cache_dir),
                           "--embedding-dim", str(embedding_dim), "--units", str(units), "--configs", *configs],
                          capture_output=True, text=True, env=child_env(), timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"building the scaling models failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    models = json.loads(proc.stdout.strip().splitlines()[-1])["models"]
    bundles, failed = {}, []
    for m in models:
        bundle = m["model_dir"][:-len("-model")] + "-bundle"
        if not os.path.isfile(os.path.join(bundle, "manifest.json")):
            if tick:
                tick(f"exporting v{m['vocab_size']} t{m['window']}")
            args = module_argv("nextword.export.cli", python=tf_python) + [m["model_dir"], "--out", bundle, "--force", "--quiet",
                    "--drop-failing", "--variants", *VARIANTS]
            for g in RELAXED:
                args += ["--gate", g]
            p = subprocess.run(args, capture_output=True, text=True, env=child_env(), timeout=3600)
            if p.returncode != 0:
                failed.append(f"v{m['vocab_size']} t{m['window']}: {(p.stderr.strip().splitlines() or ['?'])[-1]}")
                continue
        bundles[(m["vocab_size"], m["window"])] = bundle
    return bundles, failed


def measure(bundles, pts, rounds, block_seconds, max_calls, tick=None):
    """Interleaved e2e and bare latency for every variant of every point."""
    cands, meta = [], {}
    for v, t, axis in pts:
        path = bundles.get((v, t))
        if not path:
            continue
        b = Bundle.open(path)
        texts = synthetic_texts(b.tokenizer, t)
        float_size = {x.format: x.size for x in b.manifest.variants.values() if x.quantization == "float32"}
        for name, var in b.manifest.variants.items():
            if var.kind != "window":
                continue
            try:
                p = Predictor.load(path, backend=BACKEND[var.format], variant=name)
            except NextwordError as e:
                log.warning("scaling: %s of %s not loadable: %s", name, path, e)
                continue
            fns = timing.handlers(p, texts)
            key = f"v{v}-t{t}:{name}"
            c = timing.Candidate(key, "runtime", {"e2e": lambda n, f=fns: f["e2e"](n=n)["samples"],
                                                  "bare": lambda n, f=fns: f["bare"](n=n)["samples"]})
            cands.append(c)
            meta[key] = (v, t, name, p.package, var.size, var.size / float_size[var.format] if var.format in float_size else None)
    for c in cands:
        timing.calibrate(c, block_seconds, max_calls)
    if cands:
        timing.run_rounds(cands, rounds, tick)
    result = {}
    for c in cands:
        v, t, name, pkg, nbytes, frac = meta[c.key]
        s = timing.summarize(c)
        result.setdefault((v, t), {})[name] = {"backend": pkg, "e2e": s["e2e"]["median"], "bare": s["bare"]["median"],
                                               "e2e_p95": s["e2e"]["p95"], "bare_p95": s["bare"]["p95"],
                                               "bytes": nbytes, "vs_float32": frac}
    return [{"vocab_size": v, "window": t, "axis": a, "bundle": bundles.get((v, t)), "variants": result.get((v, t), {})}
            for v, t, a in pts]


def run(cache_dir, tf_python, rounds, block_seconds, max_calls, vocabs=(1000, 5000, 20000), windows=(5, 20, 50),
        base_vocab=5000, base_window=20, embedding_dim=10, units=50, tick=None):
    pts = points(vocabs, windows, base_vocab, base_window)
    bundles, failed = build(cache_dir, tf_python, pts, embedding_dim, units, tick)
    return {"embedding_dim": embedding_dim, "units": units, "variants": list(VARIANTS), "gates": list(RELAXED),
            "cache_dir": os.path.abspath(cache_dir), "points": measure(bundles, pts, rounds, block_seconds, max_calls, tick),
            "failed": failed}
