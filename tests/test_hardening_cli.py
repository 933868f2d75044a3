"""Hardening of nextword-predict as a command (issue 12): arguments that ended in a traceback, exit
codes that tell a user's error from a bug of ours, stdin lines of any length (and /dev/zero), a
closed stdin, an ASCII-only stdout, SIGTERM/SIGHUP, a model that answers NaN for some inputs, and
vocabulary words holding terminal control sequences. Every case runs the INSTALLED console script;
crafted bundles are rehashed copies of the demo bundle built here. No TensorFlow: runs in all three
environments."""

import fcntl
import json
import os
import pty
import select
import signal
import subprocess
import sys
import termios
import time

import numpy as np
import pytest

from nextword.runtime import Predictor
from nextword.runtime.limits import (MAX_GENERATE_WORDS, MAX_LINE_BYTES, MAX_SEED, MAX_SKIP_BYTES, MAX_TOP_K,
                                     max_threads)
from nextword.runtime.terminal import UNSAFE, escape
from support import REPO, SEED_BUNDLE, command_path, rehashed_copy, run_cli

try:
    from ai_edge_litert.interpreter import Interpreter
except ImportError:   # the legacy environment
    from tflite_runtime.interpreter import Interpreter

PROG = "nextword-predict"
CLI = command_path(PROG)
TFLITE = "tflite-float32"    # every environment here has a TFLite interpreter (ai-edge-litert or tflite-runtime)


def _one_error_line(r, code, needle=""):
    lines = r.stderr.splitlines()
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert len(lines) == 1 and lines[0].startswith(f"{PROG}: "), r.stderr
    assert needle in lines[0] and "Traceback" not in r.stderr, r.stderr
    return lines[0]


# -- arguments -----------------------------------------------------------------------------------
BAD_ARGUMENTS = [
    ("--temperature", "inf"), ("--temperature", "nan"), ("--temperature", "-1"),
    ("--temperature", "0"), ("--temperature", "1e309"), ("--temperature", "warm"),
    ("--seed", "-1"), ("--seed", str(MAX_SEED + 1)), ("--seed", "1.5"),
    ("--threads", str(2**31)), ("--threads", "0"), ("--threads", str(10**6)), ("--threads", "\u0661"),   # Arabic-Indic 1
    ("--threads", str(max_threads() + 1)),
    ("--generate", str(10**7)), ("--generate", str(MAX_GENERATE_WORDS + 1)), ("--generate", "-1"),
    ("--top-k", "0"), ("--top-k", "-1"), ("--top-k", "9" * 30), ("--top-k", "9" * 5000), ("--top-k", "1_0"),
    ("--top-k", " 3"),
]


@pytest.mark.parametrize("flag,value", BAD_ARGUMENTS)
def test_bad_arguments_are_one_line_exit_2(flag, value):
    r = run_cli(PROG, SEED_BUNDLE, "hello", flag, value, timeout=60)
    line = _one_error_line(r, 2, f"argument {flag}: expected ")
    assert len(line) < 700 and r.stdout == ""


def test_the_bounds_themselves_are_accepted():
    r = run_cli(PROG, SEED_BUNDLE, "hello", "--generate", "2", "--sample", "--temperature", "0.001",
                "--seed", str(MAX_SEED), "--threads", str(max_threads()), timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("hello ") and len(r.stdout.split()) == 3, r.stderr
    r = run_cli(PROG, SEED_BUNDLE, "hello", "--generate", "0", "--top-k", str(MAX_TOP_K), "--temperature", "1000")
    assert r.returncode == 0 and r.stdout.strip() == "hello", r.stderr
    r = run_cli(PROG, SEED_BUNDLE, "hello", "--top-k", str(MAX_TOP_K), "--json")   # every suggestible word
    assert r.returncode == 0 and len(json.loads(r.stdout)["top_k"]) == 10, r.stderr


def test_a_tiny_temperature_is_greedy_sampling_not_an_overflow():
    """--temperature 1e-320 ended in a traceback (logits / T overflowed to inf, then NaN): scores are now
    shifted to max 0 before dividing, so it samples the greedy continuation."""
    greedy = run_cli(PROG, SEED_BUNDLE, "hello", "--generate", "3", timeout=120)
    tiny = run_cli(PROG, SEED_BUNDLE, "hello", "--generate", "3", "--sample", "--temperature", "1e-320", "--seed", "5",
                   timeout=120)
    assert greedy.returncode == 0 and tiny.returncode == 0, tiny.stderr
    assert tiny.stdout == greedy.stdout and len(tiny.stdout.split()) == 4


def test_controls_what_the_bounds_stand_in_front_of():
    """What the unguarded calls did: numpy refuses a negative seed (ValueError, a traceback before),
    a temperature of 1e-320 turns finite logits into infinities, '²' passes str.isdigit and int()
    refuses it, and int() refuses 5000 digits."""
    with pytest.raises(ValueError):
        np.random.default_rng(-1)
    with np.errstate(over="ignore"):
        assert not np.isfinite(np.array([3.0, -2.0]) / 1e-320).all()
    assert "\u00b2".isdigit()
    with pytest.raises(ValueError):
        int("\u00b2")
    with pytest.raises(ValueError):
        int("9" * 5000)


def test_help_documents_every_exit_code():
    r = run_cli(PROG, "--help")
    text = " ".join(r.stdout.split())
    assert r.returncode == 0
    for code in ("0 ok", "1 output failed", "2 bad usage", "3 invalid", "4 no usable", "5 the model", "70 internal",
                 "130 interrupted", "129 hangup", "143 terminated", "NEXTWORD_DEBUG=1"):
        assert code in text, code


# -- a bug of ours is not the user's fault ----------------------------------------------------
def _exit_with(body_source, env=None):
    """nextword's error handling (cliutil.exit_with, as every command uses it) around one body."""
    code = f"from nextword.runtime import cliutil, errors\ncliutil.exit_with('{PROG}', lambda: {body_source})"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, **(env or {})))


def test_a_plain_type_error_is_an_internal_error_70_and_a_typed_one_is_2():
    r = _exit_with("1 + ''")
    line = _one_error_line(r, 70, f"{PROG}: internal error: TypeError")
    assert "bug" in line and "NEXTWORD_DEBUG=1" in line
    r = _exit_with("1 + ''", env={"NEXTWORD_DEBUG": "1"})
    assert r.returncode == 70 and "Traceback" in r.stderr and r.stderr.splitlines()[-1].startswith(f"{PROG}: internal")
    r = _exit_with("errors.check_int('k', '3', 1)")     # ArgumentTypeError: a TypeError on purpose, the user's
    _one_error_line(r, 2, "k must be an int")
    r = _exit_with("(_ for _ in ()).throw(errors.ModelError('bad\\nmodel \\x1b[2J' + 'x' * 5000))")
    line = _one_error_line(r, 5, "bad model \\x1b[2J")
    assert "\x1b" not in line and len(line) <= 700, line


# -- stdin -----------------------------------------------------------------------------------------
def test_a_too_long_line_is_skipped_with_one_error_and_the_session_goes_on():
    exact = b"a" * (MAX_LINE_BYTES - len(b" hello how is")) + b" hello how is"    # exactly MAX_LINE_BYTES: answered
    data = b"hello how is\n" + b"x" * (MAX_LINE_BYTES + 1) + b"\n" + b"y " * (MAX_LINE_BYTES) + b"\n" + exact + b"\nhello how is\n"
    r = subprocess.run([CLI, SEED_BUNDLE], input=data, capture_output=True, timeout=120)
    out, err = r.stdout.decode().splitlines(), r.stderr.decode().splitlines()
    assert out == ["your", "your", "your"], (out, err)
    assert err == [f"{PROG}: error: line 2: longer than {MAX_LINE_BYTES} bytes; skipped",
                   f"{PROG}: error: line 3: longer than {MAX_LINE_BYTES} bytes; skipped"], err
    assert r.returncode == 2


# Runs argv[2:] and writes its peak RSS (KiB) to argv[1]. A child's peak counts the memory it had
# between fork and exec, a copy of its parent's: measured from pytest it would include pytest's.
_WRAP = """import resource, subprocess, sys
code = subprocess.run(sys.argv[2:]).returncode
open(sys.argv[1], "w").write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(code)"""


def _measured(args, stdin_path, tmp_path, timeout=120):
    """(exit status, stdout, stderr, peak RSS in MiB, seconds) of one command."""
    report = tmp_path / "maxrss"
    started = time.monotonic()
    with open(stdin_path, "rb") as stdin:
        r = subprocess.run([sys.executable, "-c", _WRAP, str(report), *args], stdin=stdin, capture_output=True,
                           timeout=timeout, cwd=REPO)
    return r.returncode, r.stdout.decode(), r.stderr.decode(), int(report.read_text()) / 1024, time.monotonic() - started


def test_fifty_megabytes_of_zeros_is_one_skipped_line_in_bounded_memory(tmp_path):
    zeros, small = tmp_path / "zeros", tmp_path / "small"
    with open(zeros, "wb") as f:
        f.truncate(50 << 20)                  # a sparse file: 50 MiB of NUL bytes, no line break
    small.write_bytes(b"hello how is\n")
    code, out, err, base_mib, _ = _measured([CLI, SEED_BUNDLE], small, tmp_path)
    assert code == 0 and out == "your\n", err
    code, out, err, mib, seconds = _measured([CLI, SEED_BUNDLE], zeros, tmp_path)
    assert code == 2 and out == "" and err == f"{PROG}: error: line 1: longer than {MAX_LINE_BYTES} bytes; skipped\n"
    assert mib < base_mib + 32, (mib, base_mib)
    # control: reading that line whole (as `readline()` did) costs its 50 MiB, which this measure sees
    _, _, _, whole_mib, _ = _measured([sys.executable, "-c", "import sys; sys.stdin.buffer.readline()"], zeros, tmp_path)
    _, _, _, idle_mib, _ = _measured([sys.executable, "-c", "import sys"], small, tmp_path)
    assert whole_mib > idle_mib + 45, (whole_mib, idle_mib)


def test_dev_zero_stops_with_one_line_exit_2_in_bounded_time_and_memory(tmp_path):
    """/dev/zero never ends and has no line break: after MAX_SKIP_BYTES of one line the input is not
    text lines, and the command stops (it used to end in a MemoryError traceback)."""
    small = tmp_path / "small"
    small.write_bytes(b"hello\n")
    _, _, _, base_mib, _ = _measured([CLI, SEED_BUNDLE], small, tmp_path)
    code, out, err, mib, seconds = _measured([CLI, SEED_BUNDLE], "/dev/zero", tmp_path, timeout=60)
    assert code == 2 and out == "", err
    assert err == f"{PROG}: error: line 1: no line break in {MAX_SKIP_BYTES} bytes: the input is not lines of text; stopped\n"
    assert mib < base_mib + 32 and seconds < 60, (mib, base_mib, seconds)


def _shell(script, timeout=120):
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=timeout, cwd=REPO)


def test_closed_stdin_is_one_line_exit_2_unless_text_is_given():
    r = _shell(f"'{CLI}' '{SEED_BUNDLE}' <&-")
    _one_error_line(r, 2, "stdin is closed")
    r = _shell(f"'{CLI}' '{SEED_BUNDLE}' 'hello how is' <&-")
    assert r.returncode == 0 and r.stdout == "your\n", r.stderr
    r = _shell(f"'{CLI}' '{SEED_BUNDLE}' 'hello how' --stream --top-k 1 <&-")    # TEXT, then no more lines
    assert r.returncode == 0 and len(r.stdout.split()) == 2, r.stderr


def test_closed_stdout_is_one_line_exit_1():
    r = _shell(f"'{CLI}' '{SEED_BUNDLE}' 'hello how is' >&-")
    _one_error_line(r, 1, "stdout is closed")


# -- encodings -------------------------------------------------------------------------------------
def test_an_ascii_only_stdout_gets_valid_json_and_escaped_text():
    env = {"PYTHONIOENCODING": "ascii"}
    r = run_cli(PROG, SEED_BUNDLE, "café hello how is", "--json", env=env)
    assert r.returncode == 0 and r.stdout.isascii(), r.stderr
    assert json.loads(r.stdout) == {"text": "café hello how is", "next": "your"}
    r = run_cli(PROG, SEED_BUNDLE, "café hello", "--generate", "1", env=env)
    assert r.returncode == 0 and r.stdout.startswith("caf\\xe9 hello "), (r.stdout, r.stderr)
    r = run_cli(PROG, SEED_BUNDLE, "--stream", "--json", env=env, stdin="東京 hello\n")
    assert r.returncode == 0 and json.loads(r.stdout)["text"] == "東京 hello", r.stderr
    r = run_cli(PROG, SEED_BUNDLE, "--info", env=env)
    assert r.returncode == 0 and json.loads(r.stdout)["window"] > 0, r.stderr


# -- crafted bundles -------------------------------------------------------------------------------
HOSTILE = {"how": "\x1b[2Jhow", "what": "wh\x9bat\u202e", "are": "are\r\x07", "you": "\u2028you\x7f",
           "your": "your\u2066"}    # a bidi isolate (lone surrogates are refused at load: test_hardening_bundle)


@pytest.fixture(scope="module")
def hostile_bundle(tmp_path_factory):
    vocab = json.loads(open(os.path.join(SEED_BUNDLE, "vocab.json"), encoding="utf-8").read())
    vocab["word_counts"] = [[HOSTILE.get(w, w), n] for w, n in vocab["word_counts"]]
    return rehashed_copy(tmp_path_factory.mktemp("hostile") / "b", vocab=vocab)


def _no_controls(text):
    """No character that can drive a terminal, other than the line breaks between lines."""
    return not UNSAFE.search(text.replace("\n", ""))


def test_control_characters_in_words_are_escaped_on_plain_output(hostile_bundle):
    r = run_cli(PROG, hostile_bundle, "hello", "--top-k", "10")
    assert r.returncode == 0 and _no_controls(r.stdout), repr(r.stdout)
    for word in HOSTILE.values():
        assert escape(word) in r.stdout, (escape(word), r.stdout)
    assert "\\x1b[2Jhow" in r.stdout and "wh\\x9bat\\u202e" in r.stdout and "are\\r\\x07" in r.stdout
    r = run_cli(PROG, hostile_bundle, "hello", "--generate", "3")
    assert r.returncode == 0 and _no_controls(r.stdout) and r.stdout.count("\n") == 1, repr(r.stdout)
    r = run_cli(PROG, hostile_bundle, "--stream", stdin="hello\n/undo\n")
    assert r.returncode == 0 and _no_controls(r.stdout) and r.stdout.count("\n") == 2, repr(r.stdout)
    # control: the raw words do hold what the escaping removed
    assert all(UNSAFE.search(w) for w in HOSTILE.values())


def test_control_characters_in_words_round_trip_through_valid_json(hostile_bundle):
    r = run_cli(PROG, hostile_bundle, "hello", "--top-k", "10", "--json")
    assert r.returncode == 0 and _no_controls(r.stdout), repr(r.stdout)
    words = {w for w, _ in json.loads(r.stdout)["top_k"]}
    assert set(HOSTILE.values()) <= words
    r = run_cli(PROG, hostile_bundle, "--stream", "--json", stdin="hello\n")
    assert r.returncode == 0 and _no_controls(r.stdout) and json.loads(r.stdout)["top_k"], repr(r.stdout)


def test_echoed_input_and_bundle_content_in_error_lines_are_escaped(tmp_path, hostile_bundle):
    r = run_cli(PROG, SEED_BUNDLE, "--stream", stdin="hello\n/undo \x1b[2J\u202e\n/undo \u00b2\n/undo 99999999999999999999\n")
    lines = r.stderr.splitlines()
    assert r.returncode == 2 and len(lines) == 3 and _no_controls(r.stderr), r.stderr
    assert all(line.startswith(f"{PROG}: error: line ") and "expected /undo or /undo N" in line for line in lines)
    assert len(r.stdout.splitlines()) == 1          # the session went on
    r = run_cli(PROG, SEED_BUNDLE, "x", "--variant", "\x1b]0;owned\x07")
    _one_error_line(r, 2, "unknown variant")
    assert _no_controls(r.stderr)
    bad = rehashed_copy(tmp_path / "b", edit=lambda m: m.update(default_variant="\x1b[2J\u009b\u202enope"))
    r = run_cli(PROG, bad, "hello")
    _one_error_line(r, 3)
    assert _no_controls(r.stderr), repr(r.stderr)
    r = run_cli(PROG, hostile_bundle, "--info", "--verbose")
    assert r.returncode == 0 and _no_controls(r.stdout) and _no_controls(r.stderr) and json.loads(r.stdout)


# -- a model that answers NaN for some inputs -------------------------------------------------
@pytest.fixture(scope="module")
def nan_bundle(tmp_path_factory):
    """The demo bundle with the embedding row of 'what' set to NaN in the float32 TFLite file
    (rehashed): every text holding 'what' gets NaN scores, the others are answered normally."""
    path = os.path.join(SEED_BUNDLE, "float32.tflite")
    data = bytearray(open(path, "rb").read())
    interp = Interpreter(model_path=path)
    interp.allocate_tensors()
    vocab = Predictor.load(SEED_BUNDLE, variant=TFLITE).vocab_size
    tables = [d for d in interp.get_tensor_details()
              if "embedding" in d["name"] and len(d["shape"]) == 2 and d["shape"][0] == vocab and d["dtype"] == np.float32]
    assert len(tables) == 1, [d["name"] for d in tables]
    table = interp.get_tensor(tables[0]["index"])
    at = bytes(data).find(table.tobytes())
    assert at >= 0 and bytes(data).count(table.tobytes()) == 1
    word = Predictor.load(SEED_BUNDLE, variant=TFLITE).ids("what")[0]
    row = table.shape[1] * 4
    data[at + word * row:at + (word + 1) * row] = np.full(table.shape[1], np.nan, dtype=np.float32).tobytes()
    return rehashed_copy(tmp_path_factory.mktemp("nan") / "b", files={TFLITE: bytes(data)})


@pytest.mark.parametrize("mode", [["--top-k", "3", "--json"], ["--top-k", "3"], ["--json"], [], ["--generate", "2"]])
def test_a_line_the_model_fails_on_gets_one_error_and_exit_5_at_the_end(nan_bundle, mode):
    r = run_cli(PROG, nan_bundle, "--variant", TFLITE, *mode, stdin="hello how is\nhello what\nhello how is\n", timeout=120)
    lines = r.stderr.splitlines()
    assert r.returncode == 5, (r.returncode, r.stdout, r.stderr)
    assert len(lines) == 1 and lines[0].startswith(f"{PROG}: error: line 2: ") and "Traceback" not in r.stderr, r.stderr
    out = r.stdout.splitlines()
    assert len(out) == 2 and "nan" not in r.stdout.lower(), r.stdout
    if "--json" in mode:
        assert all(json.loads(line)["text"] == "hello how is" for line in out)
    r = run_cli(PROG, nan_bundle, "hello what", "--variant", TFLITE, *mode, timeout=120)
    _one_error_line(r, 5)
    assert r.stdout == ""


def test_the_nan_bundle_really_gives_nan(nan_bundle):
    """Control: the crafted model does answer NaN for 'what' and finite scores otherwise, seen through
    the raw interpreter (the CLI's exit 5 is not invented)."""
    with open(os.path.join(nan_bundle, "float32.tflite"), "rb") as f:
        interp = Interpreter(model_content=f.read())
    interp.allocate_tensors()
    ids, = interp.get_input_details()
    logits, = interp.get_output_details()
    p = Predictor.load(SEED_BUNDLE, variant=TFLITE)
    scores = {}
    for text in ("hello what", "hello how"):
        interp.set_tensor(ids["index"], p.window_for(text)[None].astype(ids["dtype"]))
        interp.invoke()
        scores[text] = interp.get_tensor(logits["index"])
    assert np.isnan(scores["hello what"]).all() and np.isfinite(scores["hello how"]).all()


# -- signals -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("signum,code,word", [(signal.SIGTERM, 143, "terminated"), (signal.SIGHUP, 129, "hangup")])
@pytest.mark.parametrize("stream", [False, True])
def test_sigterm_and_sighup_end_a_stdin_session_cleanly(signum, code, word, stream):
    proc = subprocess.Popen([CLI, SEED_BUNDLE] + (["--stream"] if stream else []), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    try:
        proc.stdin.write(b"hello how is\n")
        proc.stdin.flush()
        first = proc.stdout.readline()       # answered: the session now waits for the next line
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert first.strip(), err
    assert proc.returncode == code, (proc.returncode, err)
    assert err.decode() == f"{PROG}: {word}\n" and out == b""


def _on_terminal(args):
    master, slave = pty.openpty()

    def own_terminal():
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, cwd=REPO, start_new_session=True,
                            preexec_fn=own_terminal, close_fds=True)
    os.close(slave)
    return proc, master


def _read_until(fd, needle, buf=b"", timeout=60):
    end = time.time() + timeout
    while needle not in buf:
        ready, _, _ = select.select([fd], [], [], max(0.0, end - time.time()))
        if not ready:
            raise AssertionError(f"timed out waiting for {needle!r}, got {buf!r}")
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            chunk = b""
        if not chunk:
            raise AssertionError(f"terminal closed waiting for {needle!r}, got {buf!r}")
        buf += chunk
    return buf


@pytest.mark.parametrize("how", ["SIGTERM", "SIGHUP", "terminal hung up"])
def test_an_interactive_session_ends_cleanly_on_sigterm_and_hangup(how):
    proc, fd = _on_terminal([CLI, SEED_BUNDLE])
    try:
        buf = _read_until(fd, b"> ")
        os.write(fd, b"hello how is\n")
        buf = _read_until(fd, b"> ", _read_until(fd, b"your", buf))
        if how == "terminal hung up":
            os.close(fd)                        # the kernel sends SIGHUP to the session; writes now fail
            fd = None
        else:
            proc.send_signal(getattr(signal, how))
            end = time.time() + 30
            while proc.poll() is None and time.time() < end:
                ready, _, _ = select.select([fd], [], [], 0.5)
                if ready:
                    try:
                        buf += os.read(fd, 4096)
                    except OSError:
                        break
        status = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if fd is not None:
            os.close(fd)
    assert status == (143 if how == "SIGTERM" else 129), status
    text = buf.decode("utf-8", "replace")
    assert "Traceback" not in text
    if how != "terminal hung up":
        assert text.rstrip().endswith(f"{PROG}: {'terminated' if how == 'SIGTERM' else 'hangup'}"), text
