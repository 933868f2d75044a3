"""nextword-train: fit the next-word LSTM on a corpus and write a model folder."""

import argparse
import logging
import os
import sys

from nextword.runtime import cliutil
from nextword.runtime.errors import InputError
from nextword.runtime.windowing import pad_windows

from . import distributed, workers
from .corpus import corpus_name
from .fit import TrainConfig, train


PROG = "nextword-train"


def positive_int(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def number(text):
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def parser():
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Train the next-word model (Embedding -> LSTM -> Dense softmax). With no --corpus it "
                    "trains on the seed notebook's four lines with its settings and should predict 'your' "
                    "after 'hello how is'.",
        epilog="Writes model.keras, tokenizer.json, train-report.json, curves.png and windows.npz into --out, "
               "built in a temporary folder and renamed into place. Ctrl-C (or SIGTERM, SIGHUP) during training stops "
               "at the next batch and still writes the folder with the best weights of the finished epochs, marked "
               "\"interrupted\": true (exit 0); --resume goes on from there. A second Ctrl-C ends at once. "
               "Exit codes: 0 ok (also interrupted after an epoch), 2 bad input, 130/143/129 stopped before the "
               "first epoch ended. Multi-worker: with TF_CONFIG set (every worker runs the same command) or "
               f"--local-workers N, the sequence objective trains under MultiWorkerMirroredStrategy; worker 0 writes "
               f"--out; a backup in <out>.backup (every --backup-every steps and each epoch end) is restored on the "
               f"next start and removed when the run completes; {workers.FAILED_EXIT}: workers kept failing after "
               "--max-restarts restarts.")
    p.add_argument("--corpus", nargs="+", metavar="PATH", default=[],
                   help="text file(s), folder(s) of .txt files (UTF-8) or quoted glob patterns such as 'books/**/*.txt'; "
                        "default: the four seed lines")
    p.add_argument("--unit", choices=("line", "paragraph"), default="line",
                   help="what a document is: each line (the seed's way) or each blank-line paragraph "
                        "(hard-wrapped prose); windows never cross documents (default: line)")
    p.add_argument("--out", metavar="DIR", help="model folder (default: artifacts/<corpus name>-model)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--objective", choices=("prefix", "sequence"),
                   help="what a training example is. prefix: one window of up to --window words and its next "
                        "word (the seed notebook's way); sequence: chunks of --chunk-length+1 words with a target "
                        "at every position, padding masked out (many times faster an epoch). Default: sequence "
                        "with --corpus, prefix for the seed lines")
    p.add_argument("--window", type=positive_int, help="context length of the exported model (and the prefix "
                   "objective's window cap). Default: chosen from the corpus (20 for prose); seed: longest line - 1")
    p.add_argument("--chunk-length", type=positive_int, help="sequence objective: inputs per chunk (default: the window)")
    p.add_argument("--chunk-stride", type=positive_int, help="sequence objective: a chunk every N tokens "
                   "(default: half the chunk length)")
    p.add_argument("--embedding-dim", type=positive_int, help="embedding size (default: from the corpus; seed 10)")
    p.add_argument("--units", type=positive_int, help="LSTM units (default: from the corpus; seed 50)")
    p.add_argument("--dropout", type=number, help="sequence objective: dropout on the embedding and LSTM outputs "
                   "(default: from the corpus; seed 0)")
    p.add_argument("--recurrent-dropout", type=number, help="sequence objective: dropout on the LSTM's recurrent "
                   "state (default 0: measured in docs/benchmarks.md)")
    p.add_argument("--tie", action=argparse.BooleanOptionalAction, default=None,
                   help="sequence objective: tie the output layer to the input embedding through a projection "
                        "(default: on with --corpus)")
    p.add_argument("--epochs", type=positive_int, help="epoch budget; early stopping may end sooner "
                   "(default: from the corpus size; seed 200)")
    p.add_argument("--batch-size", type=positive_int, help="batch size (default 32)")
    p.add_argument("--learning-rate", type=number, help="Adam learning rate (default: 0.003 with --corpus; seed 0.001)")
    p.add_argument("--lr-decay", type=number, help="multiply the learning rate by this after an epoch without "
                   "a lower validation loss (default 0.3 with --corpus; seed 1: constant)")
    p.add_argument("--stop-on", choices=("loss", "accuracy"), help="what early stopping watches on the "
                   "validation documents: loss, or top-1 accuracy (default: accuracy with --corpus)")
    p.add_argument("--test-split", type=number, help="fraction of documents, taken from the end of the corpus, "
                   "never trained on nor used for stopping: the held-out figures (default 0.1 with --corpus; seed 0)")
    p.add_argument("--val-split", type=number, help="fraction of the remaining documents, from their end, whose "
                   "loss decides early stopping (default 0.1 with --corpus; seed 0)")
    p.add_argument("--patience", type=positive_int,
                   help="early stopping after N epochs without a lower validation loss, best weights kept "
                        "(default 2 with --corpus; seed 0: off)")
    p.add_argument("--num-words", type=positive_int, help="vocabulary cap (ids >= N become the OOV token or are dropped)")
    p.add_argument("--oov-token", help="token for words outside the vocabulary (e.g. '<oov>')")
    p.add_argument("--seed", type=positive_int, default=0, help="random seed: a run is repeatable on one machine (default 0)")
    p.add_argument("--predict", metavar="TEXT", help="print the next word for TEXT after training "
                   "(default with the seed corpus: 'hello how is')")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from its last finished epoch, kept in <out>.resume (written "
                        "after every epoch, removed when a run completes). Give the same corpus and flags; "
                        "--epochs may be raised. Replaces the interrupted model folder at --out without --force")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--local-workers", type=positive_int, metavar="N",
                   help=f"start N worker processes (1..{workers.MAX_LOCAL_WORKERS}) on loopback ports, each with its "
                        "TF_CONFIG; --batch-size is the global batch, split evenly; the others' logs go to "
                        "<out>.workers/ (shown if one fails)")
    p.add_argument("--max-restarts", type=positive_int, default=workers.MAX_RESTARTS, metavar="N",
                   help=f"--local-workers: restart all workers from the last backup at most N times after one dies "
                        f"(default {workers.MAX_RESTARTS}; a bad-input exit 2 is never retried)")
    p.add_argument("--backup-dir", metavar="DIR", help="multi-worker backup folder (default: <out>.backup)")
    p.add_argument("--backup-every", type=positive_int, default=distributed.BACKUP_EVERY, metavar="STEPS",
                   help=f"multi-worker: back up every STEPS steps as well as at each epoch end (default "
                        f"{distributed.BACKUP_EVERY}; 0: epoch ends only)")
    return p


def print_defaults(chosen):
    """The corpus-aware choices, one line each, before training starts."""
    stats = chosen.get("stats")
    if stats:
        print(f"corpus-aware defaults (training part: {stats['tokens']:,} tokens, {stats['distinct']:,} distinct "
              f"words, {stats['documents']:,} documents; any flag overrides):")
    for name, v in chosen.items():
        if name != "stats":
            print(f"  {name:<17} {v['value']!s:<8} {v['why']}")


def body(args, argv):
    cfg = TrainConfig(corpus=args.corpus, unit=args.unit, objective=args.objective, window=args.window,
                      embedding_dim=args.embedding_dim, units=args.units, epochs=args.epochs,
                      batch_size=args.batch_size, learning_rate=args.learning_rate, val_split=args.val_split,
                      test_split=args.test_split, patience=args.patience, num_words=args.num_words,
                      oov_token=args.oov_token, chunk_length=args.chunk_length, chunk_stride=args.chunk_stride,
                      dropout=args.dropout, recurrent_dropout=args.recurrent_dropout, tie=args.tie, lr_decay=args.lr_decay, stop_on=args.stop_on,
                      seed=args.seed).validate()
    if args.out is None:
        args.out = os.path.join("artifacts", f"{corpus_name(args.corpus)}-model")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.local_workers is not None:
        if not args.corpus or args.resume:
            raise InputError("--local-workers needs --corpus and takes no --resume (a backup is restored by itself)")
        workers.check(args.local_workers, args.max_restarts, args.batch_size)
        return workers.Launcher(argv, args.out, args.local_workers, args.max_restarts).run().code
    cluster = distributed.from_env()
    if cluster is not None:
        if args.resume:
            raise InputError("--resume is for one-process runs; with TF_CONFIG a backup is restored by itself")
        done = distributed.train(cfg, args.out, cluster, force=args.force, progress=not args.quiet,
                                 on_defaults=print_defaults, backup_dir=args.backup_dir, backup_every=args.backup_every,
                                 restarts=int(os.environ.get(workers.RESTARTS_ENV, "0") or 0))
        if done is None:
            return 0   # not the chief: it writes nothing
        model, tokenizer, report = done
    else:
        model, tokenizer, report = train(cfg, args.out, force=args.force, progress=not args.quiet,
                                         on_defaults=print_defaults, resume=args.resume)
    model.summary(print_fn=lambda line, **_: print(line))
    c, acc = report["corpus"], report["train_accuracy"]
    docs = sum(c["documents"].values()) if isinstance(c["documents"], dict) else c["documents"]
    print(f"corpus      {c['name']} ({c['bytes']:,} bytes, {docs:,} {c['unit']}s, sha256 {c['sha256'][:12]}…)")
    examples = (f"{report['windows']:,} windows of {report['window']}" if report["windows"] is not None else
                f"{report['examples']:,} chunks of {report['config']['chunk_length']}, window {report['window']}")
    print(f"vocabulary  {report['vocab_size']:,} ids (of {report['words_seen']:,} words seen); {examples}")
    if report.get("distributed"):
        d = report["distributed"]
        print(f"workers     {d['workers']} ({d['strategy']}), global batch {d['global_batch']} = {d['per_worker_batch']} "
              f"a worker, {d['tokens_per_second'] or 0:,.0f} tokens/s, {d['restarts']} restart(s)")
    print(f"objective   {report['config']['objective']}; {report['params']:,} parameters in the saved model")
    print(f"training    {report['epochs_run']} epochs (best {report['best_epoch']}) in {report['fit_seconds']:.1f} s; loss {report['history']['loss'][-1]:.4f}; "
          f"top-1 {acc['top1']:.1%} / top-3 {acc['top3']:.1%} on {acc['windows']:,} training windows")
    if report["heldout"]:
        h = report["heldout"]
        print(f"held out    {h['windows']:,} {h.get('source', '')} windows: top-1 {h['top1']:.1%}, top-3 {h['top3']:.1%}, perplexity {h['perplexity']:.1f}")
    if report.get("interrupted"):
        print(f"interrupted by {report['stopped_by']}: kept the weights of epoch {report['best_epoch']} of "
              f"{report['epochs_run']} finished (train-report.json: \"interrupted\": true); to go on, run the same "
              "command with --resume")
    print(f"resources   wall {report['wall_seconds']:.1f} s, peak RSS {report['peak_rss_mb']:.0f} MB")
    print(f"written     {os.path.abspath(args.out)}")
    text = args.predict if args.predict is not None else (None if args.corpus else "hello how is")
    if text is not None:
        x = pad_windows([tokenizer.text_to_ids(text)], report["window"])
        probs = model(x, training=False).numpy()[0]
        probs[0] = -1
        print(f"next word   {text!r} -> {tokenizer.index_word.get(int(probs.argmax()), '?')!r} (Keras model)")


def main(argv=None):
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser().parse_args(argv)
    cliutil.exit_with(PROG, lambda: body(args, argv))


if __name__ == "__main__":
    main()
