"""nextword-export: turn a trained model folder into a verified bundle."""

import argparse
import logging
import os
import sys

from tqdm import tqdm

from nextword.runtime import cliutil
from nextword.runtime.errors import InputError
from nextword.runtime.limits import MAX_NGRAM_BYTES, MAX_NGRAM_ORDER

from . import ngram
from .bundle_writer import cost_table, parity_table
from .pipeline import ExportFailed, export_bundle
from .variants import CATALOGUE, GATES

PROG = "nextword-export"


def gate_override(text):
    """FAMILY.METRIC=VALUE, e.g. int8.top1_agreement=0.9, or accuracy_slack=0.02."""
    try:
        key, value = text.split("=", 1)
        value = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected FAMILY.METRIC=NUMBER, got {text!r}") from None
    return key, value


def byte_size(text):
    """A size in bytes: digits, optionally followed by K or M (thousands, millions: 2M = 2,000,000)."""
    t = text.strip().upper()
    scale = {"K": 1000, "M": 1000_000}.get(t[-1:], 1)
    digits = t[:-1] if scale > 1 else t
    if not digits.isdigit() or len(digits) > 12 or not 1 <= int(digits) * scale <= MAX_NGRAM_BYTES:
        raise argparse.ArgumentTypeError(f"expected a size from 1 to {MAX_NGRAM_BYTES} bytes (e.g. 2000000, 500K, 2M), "
                                         f"got {text!r}")
    return int(digits) * scale


def parser():
    gates = "; ".join(f"{fam}: " + ", ".join(f"{m} {'<=' if m in ('max_abs_diff', 'mean_kl') else '>='} {v:g}"
                                            for m, v in g.items()) for fam, g in GATES.items())
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Convert a model folder from nextword-train into a bundle of TFLite and ONNX variants, "
                    "check every variant through the real predictor against the Keras model, and write it "
                    "atomically (built beside --out, renamed into place).",
        epilog=f"Variants: {', '.join(CATALOGUE)}. Default gates: {gates}; quantized variants also keep top-1 and "
               "top-3 accuracy within 1 point of Keras'. Exit codes: 0 ok, 1 a variant failed (nothing written), "
               "2 bad input.")
    p.add_argument("model_dir", metavar="MODEL_DIR", help="folder written by nextword-train")
    p.add_argument("--out", metavar="BUNDLE_DIR", help="bundle folder (default: MODEL_DIR with -model replaced by -bundle)")
    p.add_argument("--variants", nargs="+", metavar="NAME", help="variants to build (default: all but tflite-int8, which is built on request: full int8 "
                        "misses its gate on realistic models, see docs/benchmarks.md)")
    p.add_argument("--force", action="store_true", help="replace an existing bundle")
    p.add_argument("--drop-failing", action="store_true",
                   help="leave out variants that fail conversion or their gate (recorded in the manifest) instead of failing")
    p.add_argument("--gate", type=gate_override, action="append", default=[], metavar="FAMILY.METRIC=VALUE",
                   help="override a gate, e.g. int8.top1_agreement=0.9 or accuracy_slack=0.02")
    p.add_argument("--legacy-python", metavar="PYTHON", default=os.environ.get("NEXTWORD_LEGACY_PYTHON"),
                   help="python of an environment with tflite-runtime 2.14 (numpy<2): TFLite variants are also "
                        "checked there (default: $NEXTWORD_LEGACY_PYTHON)")
    p.add_argument("--opset", type=int, metavar="N", help="ONNX opset (13-18; default 17)")
    p.add_argument("--ngram-order", type=int, default=ngram.DEFAULT_ORDER, metavar="N",
                   help=f"order of the bundle's Kneser-Ney n-gram model, 1-{MAX_NGRAM_ORDER} (default {ngram.DEFAULT_ORDER})")
    p.add_argument("--ngram-budget", type=byte_size, default=ngram.DEFAULT_BUDGET, metavar="BYTES",
                   help="largest ngram.npz, e.g. 2000000, 500K or 2M (default 2M); the least useful "
                        "highest-order n-grams are pruned until it fits")
    p.add_argument("--no-ngram", action="store_true", help="build no n-gram model (ngram.npz)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def body(args):
    out = args.out
    if out is None:
        base = os.path.normpath(args.model_dir)
        out = (base[:-len("-model")] if base.endswith("-model") else base) + "-bundle"
    gates = {}
    for key, value in args.gate:
        if key == "accuracy_slack":
            gates["accuracy_slack"] = value
            continue
        family, _, metric = key.partition(".")
        gates.setdefault(family, {})[metric] = value
    for family, metrics in gates.items():
        if family == "accuracy_slack":
            continue
        if family not in GATES or any(m not in ("top1_agreement", "top5_overlap", "max_abs_diff", "mean_kl") for m in metrics):
            raise InputError(f"unknown gate {family}.{','.join(metrics)}; families: {', '.join(GATES)}; metrics: "
                             "top1_agreement, top5_overlap, max_abs_diff, mean_kl")
    bar = None

    def progress(done, total, label):
        nonlocal bar
        if bar is None:   # made on the first step, so bad input never leaves an empty bar behind
            bar = tqdm(total=total, unit="step", file=sys.stderr, dynamic_ncols=True)
        bar.total, bar.n = total, done
        bar.set_description(label, refresh=False)
        bar.refresh()

    def close_bar():   # the bar's last state stays on its own line of stderr; tables go to stdout after it
        if bar is not None:
            bar.close()
    try:
        manifest = export_bundle(args.model_dir, out, args.variants, args.force, args.drop_failing, gates,
                                 args.legacy_python, None if args.quiet else progress, args.opset,
                                 args.ngram_order, args.ngram_budget, not args.no_ngram)
    except BaseException as e:
        close_bar()
        if isinstance(e, ExportFailed):
            print(e.table)
        raise
    close_bar()
    print(parity_table(manifest))
    if manifest.get("preference"):
        print()
        print(cost_table(manifest))
    if manifest["dropped"]:
        print("dropped: " + "; ".join(f"{k}: {v}" for k, v in manifest["dropped"].items()))
    if "ngram" in manifest:
        d = manifest["ngram"]["details"]
        print(f"n-gram: order {manifest['ngram']['order']}, {manifest['ngram']['size']} bytes (budget {d['budget']}), "
              f"pruned {d['pruned'] or 'nothing'}")
    print(f"default variant: {manifest['default_variant']} ({manifest['default_reason']})")
    print(f"bundle written: {os.path.abspath(out)}")


def main(argv=None):
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = parser().parse_args(argv)
    cliutil.exit_with(PROG, lambda: body(args))


if __name__ == "__main__":
    main()
