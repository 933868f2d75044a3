"""The line protocol between the benchmark and its measuring child processes (stdlib only).

The benchmark keeps long-lived children — the Keras model in a TensorFlow process
(`python -m nextword.train.keras_bench --serve`), an interpreter that lives in another environment
(`python -m nextword.bench.server`, e.g. tflite-runtime 2.14 with numpy<2) — and alternates rounds between
them and the in-process predictors, so machine drift hits every column alike.

One JSON object a line each way. Request: {"cmd": NAME, ...arguments}. Reply: {"ok": true, ...}
or {"ok": false, "error": "one line"}. The child announces itself with a first line
{"ok": true, "ready": true, ...} once its model is loaded, and leaves on {"cmd": "quit"} or EOF.
Timings travel as per-call durations in seconds ("samples"), measured inside the child.
"""

import json
import os
import sys
import time


def timed(fn, n):
    """Call fn(i) n times; per-call durations in seconds (perf_counter around each call)."""
    clock = time.perf_counter
    out = [0.0] * n
    for i in range(n):
        t0 = clock()
        fn(i)
        out[i] = clock() - t0
    return out


def protocol_stream():
    """A private copy of stdout for the protocol; fd 1 then points at stderr, so stray prints from
    libraries (TensorFlow logs, progress bars) can never corrupt a reply."""
    fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(fd, "w", buffering=1, encoding="utf-8")


def serve(handlers, hello, out=None, inp=None):
    """Answer requests from `inp` (default stdin) with handlers[cmd](**arguments) -> dict."""
    out = out or protocol_stream()
    inp = inp or sys.stdin
    out.write(json.dumps(dict({"ok": True, "ready": True}, **hello)) + "\n")
    out.flush()
    for line in inp:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            cmd = req.pop("cmd")
            if cmd == "quit":
                out.write(json.dumps({"ok": True, "bye": True}) + "\n")
                out.flush()
                return
            reply = dict({"ok": True}, **handlers[cmd](**req))
        except KeyError as e:
            reply = {"ok": False, "error": f"unknown command or argument {e}"}
        except Exception as e:  # one line back to the parent; the child keeps serving
            reply = {"ok": False, "error": f"{type(e).__name__}: {' '.join(str(e).split())[:400]}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()
