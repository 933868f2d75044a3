"""A description of the machine and software a benchmark ran on (stdlib only)."""

import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version

PACKAGES = ("nextword", "numpy", "ai-edge-litert", "tflite-runtime", "onnxruntime", "tensorflow-cpu", "tensorflow",
            "keras", "matplotlib", "tqdm")


def _cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_total_mb():
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return None


def load_average():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def versions():
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def describe():
    cores = os.cpu_count()
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = cores
    return {"cpu": _cpu_model(), "cores": cores, "usable_cores": usable, "machine": platform.machine(),
            "system": f"{platform.system()} {platform.release()}", "memory_mb": _mem_total_mb(),
            "python": sys.version.split()[0], "python_executable": sys.executable, "versions": versions(),
            "load_average_start": load_average()}
