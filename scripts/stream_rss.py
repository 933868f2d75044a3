#!/usr/bin/env python3
"""Peak memory and speed of the streaming pipeline over a corpus (issue 16: peak RSS at 500 MB within
10% of 50 MB): the vocabulary pass (train.sources.fit_vocabulary), then one full pass of training
batches (train.stream_data.chunk_dataset), optionally with the first --train-steps of them fed to the
sequence model, then optionally the display-form pass (lexicon.build over the streamed documents).
Prints one JSON object: bytes, documents, tokens, vocabulary, seconds and tokens/s per pass, the
resident set after each stage and the peak (getrusage and /proc VmHWM).

    .venv/bin/python scripts/stream_rss.py '/tmp/corpus-50/**/*.txt' --unit paragraph --train-steps 20

Run the sizes one after another, not side by side (they share two cores). Nothing here is a test;
it runs against the installed nextword package."""

import argparse
import json
import platform
import resource
import sys
import time

from nextword.runtime.measure import memory_mib
from nextword.runtime.tokenizer import Tokenizer
from nextword.train import lexicon, sources


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def stage(out, name):
    out["rss_mb"][name] = round(memory_mib("VmRSS"), 1)
    out["peak_rss_mb"][name] = round(peak_mb(), 1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus", nargs="+", help="files, folders or glob patterns (quote the globs)")
    ap.add_argument("--unit", choices=("line", "paragraph"), default="paragraph")
    ap.add_argument("--val-split", type=float, default=0.05)
    ap.add_argument("--test-split", type=float, default=0.05)
    ap.add_argument("--num-words", type=int, default=5000)
    ap.add_argument("--oov-token", default="<unk>")
    ap.add_argument("--sample-bytes", type=int, default=None)
    ap.add_argument("--chunk-length", type=int, default=20)
    ap.add_argument("--chunk-stride", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--shuffle-buffer", type=int, default=None)
    ap.add_argument("--cycle-length", type=int, default=None)
    ap.add_argument("--max-batches", type=int, default=None, help="stop the pass after this many batches")
    ap.add_argument("--train-steps", type=int, default=0, help="feed the first N batches to the sequence model")
    ap.add_argument("--embedding-dim", type=int, default=64)
    ap.add_argument("--units", type=int, default=256)
    ap.add_argument("--lexicon", action="store_true", help="also time the display-form pass")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    out = {"corpus": args.corpus, "unit": args.unit, "rss_mb": {}, "peak_rss_mb": {},
           "python": platform.python_version()}
    stage(out, "start")
    files = sources.expand(args.corpus)
    tok = Tokenizer(num_words=args.num_words, oov_token=args.oov_token)
    t = time.perf_counter()
    stats = sources.fit_vocabulary(files, args.unit, tok, args.val_split, args.test_split, args.sample_bytes)
    seconds = time.perf_counter() - t
    out["vocabulary_pass"] = dict(stats, seconds=round(seconds, 2), words_seen=len(tok.word_counts),
                                  vocab_size=tok.vocab_size, tokens_per_s=round(stats["tokens"] / seconds),
                                  mb_per_s=round(stats["bytes_read"] / seconds / 1e6, 2))
    stage(out, "after_vocabulary")

    from nextword.train.quiet_tf import import_tensorflow
    from nextword.train.stream_data import DEFAULT, chunk_dataset
    import_tensorflow()
    stage(out, "after_tensorflow_import")
    model = None
    if args.train_steps:
        from nextword.train.model import SequenceConfig, build_sequence_model
        model = build_sequence_model(SequenceConfig(tok.vocab_size, args.chunk_length, args.embedding_dim,
                                                    args.units), 2e-3)
    ds = chunk_dataset(files, args.unit, tok, args.chunk_length, args.chunk_stride, args.batch_size,
                       val_split=args.val_split, test_split=args.test_split, seed=args.seed,
                       shuffle_buffer=DEFAULT if args.shuffle_buffer is None else args.shuffle_buffer,
                       cycle_length=DEFAULT if args.cycle_length is None else args.cycle_length)
    if args.max_batches:
        ds = ds.take(args.max_batches)
    batches = chunks = targets = 0
    losses, step_seconds = [], 0.0
    t = time.perf_counter()
    for x, y, w in ds:
        if batches < args.train_steps:
            s = time.perf_counter()
            losses.append(float(model.train_on_batch(x, y, sample_weight=w)[0]))
            step_seconds += time.perf_counter() - s
            if batches + 1 == args.train_steps:
                stage(out, "after_train_steps")
        batches += 1
        chunks += int(x.shape[0])
        targets += int(w.numpy().sum())
    seconds = time.perf_counter() - t
    out["batch_pass"] = {"batches": batches, "chunks": chunks, "targets": targets, "seconds": round(seconds, 2),
                         "targets_per_s": round(targets / seconds), "train_steps": len(losses),
                         "train_step_seconds": round(step_seconds, 2),
                         "loss_first_last": [round(losses[0], 3), round(losses[-1], 3)] if losses else None}
    stage(out, "after_batch_pass")
    if args.lexicon:
        t = time.perf_counter()
        forms = lexicon.build((d for _, _, d in sources.documents_in(
            files, args.unit, ("train", "val"), args.val_split, args.test_split)), tok)
        out["lexicon_pass"] = {"seconds": round(time.perf_counter() - t, 2), "forms": len(forms.forms),
                               "abbreviations": len(forms.abbreviations)}
        stage(out, "after_lexicon")
    out["peak_rss_mb_total"] = round(peak_mb(), 1)
    out["vmhwm_mb"] = round(memory_mib("VmHWM"), 1)
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
