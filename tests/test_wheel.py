"""The installed wheel, not the checkout: one top-level package, and every command (children
included) works from a folder full of modules that shadow the project's old top-level names.

scripts/test.sh builds the wheel once and passes it in NEXTWORD_WHEEL; without it, these tests
build one from the checkout into a temporary folder."""

import glob
import importlib.metadata
import os
import re
import subprocess
import sys
import zipfile

import pytest

from support import REPO, SEED_BUNDLE, command_path, run_cli

SHADOWS = ("train", "export", "runtime", "bench", "nextword")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    given = os.environ.get("NEXTWORD_WHEEL")
    if given:
        return given
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), REPO], check=True,
                   capture_output=True, timeout=600)
    return glob.glob(str(out / "nextword-*.whl"))[0]


@pytest.fixture
def poisoned_cwd(tmp_path):
    """A working directory whose train.py, export.py, runtime.py, bench.py and nextword.py raise on import."""
    for name in SHADOWS:
        (tmp_path / f"{name}.py").write_text(f"raise ImportError('the {name}.py of the working directory was imported')\n")
    return tmp_path


def test_the_wheel_holds_one_top_level_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"nextword"}
    # every module of the checkout's four parts ships (pyproject lists the packages one by one)
    source = {os.path.relpath(path, REPO).replace(os.sep, "/")
              for part in ("runtime", "train", "export", "bench")
              for path in glob.glob(os.path.join(REPO, part, "**", "*.py"), recursive=True)}
    assert len(source) > 20 and {f"nextword/{rel}" for rel in source} <= set(names), \
        sorted(f"nextword/{rel}" for rel in source if f"nextword/{rel}" not in names)
    assert not [n for n in names if n.startswith("nextword/tests/") or n.startswith("nextword/scripts/")]


def test_tests_import_the_installed_package_not_the_checkout():
    import nextword.runtime
    here = os.path.realpath(os.path.dirname(nextword.runtime.__file__))
    assert here != os.path.realpath(os.path.join(REPO, "runtime")), here
    assert os.path.basename(os.path.dirname(os.path.dirname(here))) == "site-packages", here


def test_predict_from_a_poisoned_working_directory(poisoned_cwd):
    r = run_cli("nextword-predict", SEED_BUNDLE, "hello how is", cwd=poisoned_cwd)
    assert (r.returncode, r.stdout, r.stderr) == (0, "your\n", "")


@pytest.mark.tf
@pytest.mark.slow
def test_export_and_bench_with_children_from_a_poisoned_working_directory(tiny_model_dir, poisoned_cwd):
    """nextword-export runs its converters in child processes, nextword-bench its measuring servers
    and cold starts: all of them must find the installed package, not the working directory's files."""
    bundle = poisoned_cwd / "bundle"
    r = run_cli("nextword-export", tiny_model_dir, "--out", bundle, "--variants", "tflite-float32", "onnx-float32",
                "tflite-step-float32", "--quiet", cwd=poisoned_cwd)
    assert r.returncode == 0, r.stderr
    assert "was imported" not in r.stderr
    r = run_cli("nextword-bench", bundle, "--keras", tiny_model_dir, "--quick", "--no-charts", "--quiet",
                "--out", poisoned_cwd / "bench", cwd=poisoned_cwd, timeout=900)
    assert r.returncode == 0, r.stderr
    assert "was imported" not in r.stderr
    assert (poisoned_cwd / "bench" / "bench.json").is_file()


@pytest.mark.slow
@pytest.mark.fresh_venv
@pytest.mark.parametrize("extra,interpreter,absent", [
    ("litert", "ai_edge_litert", ("onnxruntime", "tensorflow", "tflite_runtime")),
    ("onnx", "onnxruntime", ("ai_edge_litert", "tensorflow", "tflite_runtime")),
])
def test_fresh_venv_with_one_interpreter(wheel, extra, interpreter, absent, tmp_path, poisoned_cwd):
    """pip install 'nextword[EXTRA]' into a new environment (one interpreter, no TensorFlow), then the
    seed bundle's answer from another directory: `your` and nothing else."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = str(venv / "bin" / "python")
    pip = subprocess.run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", f"{wheel}[{extra}]"],
                         capture_output=True, text=True, timeout=900)
    assert pip.returncode == 0, pip.stderr[-2000:]
    probe = subprocess.run([py, "-c", "import importlib.util as u, sys; print(' '.join(m for m in sys.argv[1:] "
                            "if u.find_spec(m)))", interpreter, *absent], capture_output=True, text=True, timeout=120)
    assert probe.stdout.split() == [interpreter]
    r = subprocess.run([command_path("nextword-predict", python=py), SEED_BUNDLE, "hello how is"], cwd=poisoned_cwd,
                       capture_output=True, text=True, timeout=300)
    assert (r.returncode, r.stdout, r.stderr) == (0, "your\n", "")


def test_children_skip_the_working_directory_even_on_pythonpath(poisoned_cwd):
    """module_argv's launcher drops the working directory from sys.path (python -m would import the
    folder's nextword.py first), also when PYTHONPATH names it; readable_argv shows it as -m."""
    from nextword.runtime.child import module_argv, readable_argv
    argv = module_argv("nextword.runtime.cli", SEED_BUNDLE, "hello how is")
    r = subprocess.run(argv, cwd=poisoned_cwd, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHONPATH=str(poisoned_cwd)))
    assert (r.returncode, r.stdout, r.stderr) == (0, "your\n", "")
    plain = subprocess.run([sys.executable, "-m", "nextword.runtime.cli", SEED_BUNDLE, "hello how is"],
                           cwd=poisoned_cwd, capture_output=True, text=True, timeout=300)
    assert plain.returncode != 0 and "was imported" in plain.stderr   # what the launcher is for
    assert readable_argv(argv) == [sys.executable, "-m", "nextword.runtime.cli", SEED_BUNDLE, "hello how is"]
    with pytest.raises(ValueError):
        module_argv("os")


def _extra(name):
    """{project: requirement} of one extra of the installed nextword, from its metadata."""
    out = {}
    for req in importlib.metadata.requires("nextword") or []:
        spec, _, marker = req.partition(";")
        if re.search(r"extra\s*==\s*[\"']" + re.escape(name) + r"[\"']", marker):
            out[re.split(r"[\[<>=!~ ]", spec.strip(), maxsplit=1)[0].lower()] = spec.strip()
    return out


def test_the_gpu_extra_is_the_train_extra_with_tensorflows_cuda_build():
    """train-gpu must train exactly what train trains: the same pins, TensorFlow's CUDA build for its CPU one
    (same version: tensorflow and tensorflow-cpu are one module)."""
    cpu, gpu = _extra("train"), _extra("train-gpu")
    assert cpu and gpu, (cpu, gpu)
    tf_cpu, tf_gpu = cpu.pop("tensorflow-cpu"), gpu.pop("tensorflow")
    assert tf_gpu.startswith("tensorflow[and-cuda]") and tf_gpu.split("==")[1] == tf_cpu.split("==")[1]
    assert cpu == gpu
