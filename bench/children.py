"""Child processes of the benchmark: long-lived measuring servers (train/bench_protocol.py) and cold starts.

A cold start is one fresh process timed from outside (perf_counter around spawn..exit, in a small
launcher) with its peak resident memory from os.wait4: that child's own ru_maxrss (and that of any
child it waited for), not a running maximum over everything the benchmark ever spawned."""

import importlib.util
import json
import logging
import os
import subprocess
import sys
import tempfile

from nextword.runtime.child import module_argv, readable_argv

log = logging.getLogger(__name__)


def child_env(extra=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    env.update(extra or {})
    return env


def python_has(python, module):
    """Whether `python` can find `module` (without importing it here)."""
    if os.path.abspath(python) == os.path.abspath(sys.executable):  # not realpath: venvs share one binary
        return importlib.util.find_spec(module) is not None
    try:
        proc = subprocess.run([python, "-c", f"import importlib.util,sys; sys.exit(importlib.util.find_spec({module!r}) is None)"],
                              capture_output=True, timeout=60, env=child_env())
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


class ChildError(RuntimeError):
    pass


class Server:
    """A measuring child speaking train.bench_protocol; its stderr goes to a log file."""

    def __init__(self, name, argv, log_path, timeout=600):
        self.name, self.argv, self.timeout = name, argv, timeout
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                                     text=True, bufsize=1, env=child_env())
        self.hello = None

    def wait_ready(self):
        if self.hello is None:
            self.hello = self._read()
        return self.hello

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait(timeout=30)
            raise ChildError(f"{self.name} child exited ({code}): {self._last_error()}")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise ChildError(f"{self.name} child: {reply.get('error')}")
        return reply

    def _last_error(self):
        self._log.flush()
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                lines = [l.strip() for l in f if l.strip()]
        except OSError:
            return "no log"
        return lines[-1] if lines else "no message"

    def ask(self, cmd, **args):
        self.wait_ready()
        self.proc.stdin.write(json.dumps(dict(args, cmd=cmd)) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired, ValueError):
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def keras_server(python, model_dir, windows_path, log_path):
    return Server("keras", module_argv("nextword.train.keras_bench", python=python) + ["--serve", os.path.abspath(model_dir),
                            "--windows", windows_path], log_path)


def runtime_server(python, bundle, variant, package, texts_path, log_path):
    return Server(f"{variant} on {package}", module_argv("nextword.bench.server", python=python) + [os.path.abspath(bundle), variant, package,
                                               texts_path], log_path)


# The launcher: a bare Python (-S -I: no site, ~9 MB) that spawns the measured command, times it and
# reads its rusage from os.wait4. A child's ru_maxrss starts from its launcher's memory at spawn
# (exec keeps the old mm's high-water mark), so launching from the benchmark itself (90 MB with two
# interpreters loaded) would report at least 90 MB for everything.
_LAUNCHER = """
import json, os, sys, time
argv, result = json.loads(sys.argv[1]), sys.argv[2]
t0 = time.perf_counter()
pid = os.posix_spawnp(argv[0], argv, os.environ)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - t0
with open(result, "w") as f:
    json.dump({"wall": wall, "maxrss_kb": usage.ru_maxrss, "code": os.waitstatus_to_exitcode(status)}, f)
"""


def run_once(argv, timeout=600):
    """(wall seconds, peak RSS in MB, exit code, stdout, stderr tail) of one fresh process."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r", suffix=".json") as result:
        try:
            subprocess.run([sys.executable, "-S", "-I", "-c", _LAUNCHER, json.dumps(list(argv)), result.name],
                           stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=child_env(),
                           timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise ChildError(f"{_short(argv[0])} {' '.join(argv[1:4])} did not finish within {timeout} s") from None
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace").strip()
        tail = (err.read().decode("utf-8", "replace").strip().splitlines() or [""])[-1]
        try:
            r = json.load(result)
        except ValueError:
            raise ChildError(f"the launcher failed: {tail}") from None
    return r["wall"], r["maxrss_kb"] / 1024.0, r["code"], stdout, tail  # Linux: ru_maxrss in kilobytes


def cold_start(argv, runs):
    """Median wall time and peak RSS over `runs` fresh processes (the first is kept: nothing is warm
    on purpose, but the OS file cache is after the first run, as it is on a device in use)."""
    walls, rss, answer = [], [], None
    for _ in range(runs):
        wall, peak, code, stdout, tail = run_once(argv)
        if code != 0:
            raise ChildError(f"exit {code}: {tail}")
        walls.append(wall)
        rss.append(peak)
        answer = stdout.splitlines()[-1] if stdout else ""
    walls.sort()
    rss.sort()
    mid = len(walls) // 2
    med = walls[mid] if len(walls) % 2 else (walls[mid - 1] + walls[mid]) / 2
    med_rss = rss[mid] if len(rss) % 2 else (rss[mid - 1] + rss[mid]) / 2
    return {"wall_seconds": {"median": med, "min": walls[0], "max": walls[-1], "runs": walls},
            "peak_rss_mb": {"median": med_rss, "min": rss[0], "max": rss[-1]}, "n": runs, "answer": answer,
            "command": " ".join(_short(a) for a in readable_argv(argv))}


def _short(arg):
    if arg == sys.executable:
        return "python"
    here = os.getcwd()
    if os.path.isabs(arg) and arg.startswith(here + os.sep):
        return os.path.relpath(arg, here)
    return arg if " " not in arg else repr(arg)
