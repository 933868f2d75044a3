"""Writing the bundle's manifest and parity report (the schema itself lives in runtime/bundle.py,
which reads what this writes)."""

import datetime
import json
import os
import platform

from nextword.runtime.bundle import FORMAT_VERSION, MANIFEST, sha256_file

from .cost import SCORE_RULE


def producer_versions():
    from importlib.metadata import PackageNotFoundError, version
    out = {"python": platform.python_version()}
    for dist in ("nextword", "tensorflow-cpu", "tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime",
                 "ai-edge-litert", "numpy"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return out


def manifest_dict(tokenizer, vocab_file, folder, window, variants, default_variant, dropped, source,
                  lexicon_file=None, ngram_entry=None):
    """variants: {name: entry} with file, format, kind, quantization, inputs, outputs, runtimes, parity, details.
    lexicon_file: the display forms' file in `folder` (the optional top-level "lexicon" entry), or None.
    ngram_entry: the optional top-level "ngram" entry (export/ngram.py manifest_entry), or None."""
    entries = {}
    for name, v in variants.items():
        path = os.path.join(folder, v["file"])
        entries[name] = dict(v, sha256=sha256_file(path), size=os.path.getsize(path))
    manifest = {
        "format_version": FORMAT_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "producer": producer_versions(),
        "source": source,
        "tokenizer": dict(tokenizer.config(), file=vocab_file, sha256=sha256_file(os.path.join(folder, vocab_file)),
                          size=os.path.getsize(os.path.join(folder, vocab_file))),
        "vocab_size": tokenizer.vocab_size,
        "window": window,
        "padding": "pre",
        "truncating": "pre",
        "output": "logits",
        "default_variant": default_variant,
        "variants": entries,
        "dropped": dropped,
    }
    if lexicon_file is not None:
        path = os.path.join(folder, lexicon_file)
        manifest["lexicon"] = {"file": lexicon_file, "sha256": sha256_file(path), "size": os.path.getsize(path)}
    if ngram_entry is not None:
        manifest["ngram"] = ngram_entry
    return manifest


def write_manifest(folder, manifest):
    with open(os.path.join(folder, MANIFEST), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, ensure_ascii=False)


def parity_table(manifest, failures=None):
    """Markdown: one row per variant x runtime with size, ratio to float32 and the four figures."""
    variants = manifest["variants"]
    base = {v["format"]: v["size"] for v in variants.values() if v["quantization"] == "float32" and v["kind"] == "window"}
    rows = ["| variant | kind | size | vs float32 | runtime | top-1 agree | top-5 overlap | max abs diff | mean KL | top-1 / top-3 acc (Keras) | gate |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, v in variants.items():
        ref = base.get(v["format"])
        ratio = f"{v['size'] / ref:.0%}" if ref else "–"
        for pkg, fig in v["parity"].items():
            acc = (f"{fig['top1_accuracy']:.1%} / {fig['top3_accuracy']:.1%} ({fig['keras_top1_accuracy']:.1%} / "
                   f"{fig['keras_top3_accuracy']:.1%})") if "top1_accuracy" in fig else "–"
            gate = "pass" if not fig.get("failures") else "FAIL: " + "; ".join(fig["failures"])
            rows.append(f"| {name} | {v['kind']} | {v['size'] / 1024:.1f} KB | {ratio} | {pkg} | {fig['top1_agreement']:.2%} | "
                        f"{fig['top5_overlap']:.2%} | {fig['max_abs_diff']:.2e} | {fig['mean_kl']:.2e} | {acc} | {gate} |")
        for pkg, r in v["runtimes"].items():
            if not r.get("ok"):
                rows.append(f"| {name} | {v['kind']} | {v['size'] / 1024:.1f} KB | {ratio} | {pkg} | – | – | – | – | – | not runnable: {r.get('reason', '')} |")
    for name, reason in (failures or {}).items():
        rows.append(f"| {name} | | | | | | | | | | FAILED: {reason} |")
    return "\n".join(rows)


def cost_table(manifest):
    """Markdown: what each window variant cost on each interpreter where it was built, best first."""
    rows = ["| variant | interpreter | cold start | peak RSS | per call | score |",
            "| --- | --- | --- | --- | --- | --- |"]
    for p in manifest.get("preference", []):
        c = manifest["variants"][p["variant"]]["cost"][p["package"]]
        rows.append(f"| {p['variant']} | {p['package']} | {c['cold_start_ms']:.0f} ms | {c['peak_rss_mib']:.1f} MiB | "
                    f"{c['call_us']:.0f} us | {p['score']:.3f} |")
    return "\n".join(rows)


def parity_markdown(manifest):
    src = manifest.get("source", {})
    lines = ["# Parity report", "",
             f"Each variant run through the nextword Predictor on its interpreter(s), against the Keras model, on "
             f"{src.get('eval_windows', '?')} evaluation windows ({src.get('eval_source', '?')}). Default variant: "
             f"`{manifest['default_variant']}`: {manifest.get('default_reason', '')}.", "", parity_table(manifest)]
    if manifest.get("preference"):
        lines += ["", "## Cost on the exporting machine", "",
                  "Medians of separate processes (`python -m nextword.runtime.measure`), preference order. "
                  f"The score: {SCORE_RULE}.", "", cost_table(manifest)]
    if manifest.get("dropped"):
        lines += ["", "Dropped (--drop-failing):", ""] + [f"- `{k}`: {v}" for k, v in manifest["dropped"].items()]
    return "\n".join(lines) + "\n"
