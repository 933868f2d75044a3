"""`nextword-train ... --local-workers N`: N worker processes on loopback ports, each the same
nextword-train command with its own TF_CONFIG, waited for and restarted together when one dies.

Why restart them all: MultiWorkerMirroredStrategy cannot take a worker back into a running job; every
worker restores the last backup (train.distributed.Backup) and the job goes on from that step.
The chief (worker 0) writes to this terminal; the others into worker-<i>.log in a folder beside the
model folder (<out>.workers, with workers.json naming the running pids), printed when one fails,
removed when the job completes.

Exit codes: 0 done; 2 bad input (from here or from a worker, never retried); 130 / 143 / 129 when
this launcher was stopped by SIGINT / SIGTERM / SIGHUP (forwarded to the workers, whose backup stays
for the next run); FAILED_EXIT when workers still failed after --max-restarts restarts."""

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

from nextword.runtime.child import module_argv
from nextword.runtime.errors import InputError

from .distributed import config_for

log = logging.getLogger(__name__)

MAX_LOCAL_WORKERS = 8     # two cores here; more processes than that only contend
MAX_RESTARTS = 3          # default restarts of the whole job after a worker died
MAX_RESTARTS_CAP = 100
FAILED_EXIT = 6           # workers kept failing: restarts exhausted
INPUT_EXIT = 2
GRACE_SECONDS = 10.0      # after SIGTERM, before SIGKILL, when the others are stopped
POLL_SECONDS = 0.2
LOG_TAIL_LINES = 20
RESTARTS_ENV = "NEXTWORD_RESTARTS"   # how many restarts came before: recorded in the chief's report
LAUNCHER_FLAGS = {"--local-workers": 1, "--max-restarts": 1}   # removed from the workers' command (flag: values)


def check(workers, max_restarts, batch_size=None):
    """The launcher's flags, before any worker starts (a worker would find a bad batch only after its
    vocabulary pass)."""
    if not 1 <= workers <= MAX_LOCAL_WORKERS:
        raise InputError(f"--local-workers must be from 1 to {MAX_LOCAL_WORKERS}, got {workers}")
    if not 0 <= max_restarts <= MAX_RESTARTS_CAP:
        raise InputError(f"--max-restarts must be from 0 to {MAX_RESTARTS_CAP}, got {max_restarts}")
    if batch_size is not None and batch_size % workers:
        raise InputError(f"--batch-size {batch_size} (the global batch) must be a multiple of the {workers} "
                         "workers: each takes an equal share")


def worker_argv(argv, out):
    """The command line of a worker: `argv` without the launcher's flags, --out made absolute."""
    args, i = [], 0
    while i < len(argv):
        a = argv[i]
        name = a.split("=", 1)[0]
        if name in LAUNCHER_FLAGS:
            i += 1 + (0 if "=" in a else LAUNCHER_FLAGS[name])
            continue
        args.append(a)
        i += 1
    return args + ["--out", os.path.abspath(out)]


def free_ports(n):
    """n distinct free loopback ports (bound to port 0, then released: another program may take one
    before the worker binds it, which then fails and is restarted on new ports)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Outcome:
    code: int            # the launcher's exit code
    restarts: int


class Launcher:
    def __init__(self, argv, out, workers, max_restarts, log_dir=None):
        check(workers, max_restarts)
        self.argv, self.workers, self.max_restarts = worker_argv(argv, out), workers, max_restarts
        self.log_dir = log_dir or os.path.abspath(out) + ".workers"
        self.procs, self.stopped_by = [], None

    def _start(self, attempt):
        addresses = [f"127.0.0.1:{p}" for p in free_ports(self.workers)]
        os.makedirs(self.log_dir, exist_ok=True)
        self.procs, self.logs = [], []
        for i in range(self.workers):
            env = dict(os.environ, TF_CONFIG=config_for(addresses, i), **{RESTARTS_ENV: str(attempt)})
            if i == 0:
                out = None                       # the chief's progress on this terminal
                self.logs.append(None)
            else:
                path = os.path.join(self.log_dir, f"worker-{i}.log")
                out = open(path, "ab")
                self.logs.append(path)
            argv = module_argv("nextword.train.cli", *self.argv, *(["--quiet"] if i else []))
            self.procs.append(subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT if out else None))
            if out is not None:
                out.close()
        tmp = os.path.join(self.log_dir, ".workers.json.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"attempt": attempt, "addresses": addresses, "pids": [p.pid for p in self.procs]}, f)
        os.replace(tmp, os.path.join(self.log_dir, "workers.json"))

    def _forward(self, signum, frame):
        self.stopped_by = signum
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signum)

    def _stop_rest(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        deadline = time.monotonic() + GRACE_SECONDS
        for p in self.procs:
            try:
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def _wait(self):
        """(index, returncode) of the first worker that failed, or None when all exited 0."""
        while True:
            codes = [p.poll() for p in self.procs]
            failed = sorted((c >= 0, i) for i, c in enumerate(codes) if c not in (None, 0))
            if failed:   # a worker killed by a signal first: the others' errors follow from it
                return failed[0][1], codes[failed[0][1]]
            if all(c == 0 for c in codes):
                return None
            time.sleep(POLL_SECONDS)

    def _report(self, index, code):
        what = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit {code}"
        print(f"nextword-train: worker {index} failed ({what})", file=sys.stderr)
        path = self.logs[index] if index < len(self.logs) else None
        if path and os.path.exists(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                tail = f.readlines()[-LOG_TAIL_LINES:]
            print(f"--- last lines of {path}:", file=sys.stderr)
            sys.stderr.write("".join(tail))

    def run(self):
        handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        previous = {s: signal.signal(s, self._forward) for s in handled}
        restarts = 0
        try:
            while True:
                self._start(restarts)
                failed = self._wait()
                if failed is None:
                    shutil.rmtree(self.log_dir, ignore_errors=True)
                    return Outcome(0, restarts)
                self._stop_rest()
                if self.stopped_by is not None:
                    return Outcome(128 + self.stopped_by, restarts)
                self._report(*failed)
                if failed[1] == INPUT_EXIT:
                    return Outcome(INPUT_EXIT, restarts)
                if restarts >= self.max_restarts:
                    print(f"nextword-train: giving up after {restarts} restart(s); the backup stays for the next "
                          "run of the same command", file=sys.stderr)
                    return Outcome(FAILED_EXIT, restarts)
                restarts += 1
                print(f"nextword-train: restarting all {self.workers} workers from the last backup "
                      f"(restart {restarts} of at most {self.max_restarts})", file=sys.stderr)
        finally:
            for p in self.procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            for s, h in previous.items():
                signal.signal(s, h)
