#!/usr/bin/env python3
"""Write a corpus of about --mb megabytes of UTF-8 text as --files files in nested folders, made of a
source text's paragraphs (blank-line separated, their line wraps kept) drawn in a shuffled order with
--seed, round after round until the size is reached: the 50 MB / 500 MB corpora of the streaming
measurements (docs/scale figures; never committed).

    python scripts/make_corpus.py pride-and-prejudice.txt corpus-50 --mb 50

Memory: the source's paragraphs plus one paragraph being written; each file is written through a
temporary name and renamed, so a corpus folder never holds a half-written .txt."""

import argparse
import json
import os
import random
import sys


def paragraphs(text):
    out, current = [], []
    for line in text.splitlines():
        if line.strip():
            current.append(line.rstrip())
        elif current:
            out.append("\n".join(current))
            current = []
    if current:
        out.append("\n".join(current))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", help="a UTF-8 text file whose paragraphs are drawn")
    ap.add_argument("out", help="the folder to write (must not exist)")
    ap.add_argument("--mb", type=float, required=True, help="corpus size in megabytes (10^6 bytes)")
    ap.add_argument("--files", type=int, default=40, help="number of files (default 40)")
    ap.add_argument("--per-folder", type=int, default=10, help="files per sub-folder (default 10)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.mb <= 0 or args.files < 1 or args.per_folder < 1:
        ap.error("--mb must be > 0, --files and --per-folder at least 1")
    if os.path.exists(args.out):
        ap.error(f"{args.out} exists; choose a new folder")
    with open(args.source, encoding="utf-8") as f:
        pool = paragraphs(f.read().lstrip("\ufeff"))
    if not pool:
        ap.error(f"{args.source} holds no paragraph")
    rng = random.Random(args.seed)
    total = int(args.mb * 1_000_000)
    per_file = -(-total // args.files)
    order, taken = [], 0
    written, paras = 0, 0
    for k in range(args.files):
        folder = os.path.join(args.out, f"part-{k // args.per_folder:03d}")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"file-{k:04d}.txt")
        size = 0
        with open(path + ".tmp", "w", encoding="utf-8", newline="\n") as f:
            while size < per_file and written + size < total:
                if taken == len(order):
                    order, taken = list(range(len(pool))), 0
                    rng.shuffle(order)
                data = pool[order[taken]] + "\n\n"
                taken += 1
                f.write(data)
                size += len(data.encode("utf-8"))
                paras += 1
        os.replace(path + ".tmp", path)
        written += size
    json.dump({"out": args.out, "bytes": written, "files": args.files, "paragraphs": paras,
               "source_paragraphs": len(pool), "seed": args.seed}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
