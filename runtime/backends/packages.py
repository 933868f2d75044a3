"""The one table of interpreter packages: which packages run which bundle format, how each is
imported, which pip extra installs it, and which `backend` names a caller may ask for. Interpreter
packages are imported only when a caller asks for one (import_package)."""

import importlib
from importlib import metadata

from ..errors import BackendUnavailable, InputError

# Format -> packages that run it, in preference order: the maintained package first, the legacy one after.
PACKAGES = {"tflite": ("ai-edge-litert", "tflite-runtime"), "onnx": ("onnxruntime",)}
ALL_PACKAGES = tuple(p for pkgs in PACKAGES.values() for p in pkgs)
FORMAT_OF = {p: fmt for fmt, pkgs in PACKAGES.items() for p in pkgs}
BACKENDS = ("auto", *PACKAGES, *ALL_PACKAGES)   # what Predictor.load(backend=...) accepts

_MODULES = {"ai-edge-litert": "ai_edge_litert.interpreter", "tflite-runtime": "tflite_runtime.interpreter",
            "onnxruntime": "onnxruntime"}
# How to get each package: the pyproject extra that installs it.
EXTRAS = {"ai-edge-litert": "nextword[litert]", "onnxruntime": "nextword[onnx]",
          "tflite-runtime": "nextword[legacy]"}
_EXTRA_NOTES = {"tflite-runtime": " (tflite-runtime 2.14 with numpy<2, Python 3.9-3.11)"}


def install_hint(package):
    """The pip command that installs `package`, as users should type it."""
    return f"pip install '{EXTRAS[package]}'{_EXTRA_NOTES.get(package, '')}"


def check_backend(backend):
    """`backend` as given, or InputError listing the names Predictor.load accepts."""
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    return backend


def packages_for(backend, fmt):
    """The packages, in preference order, that `backend` (auto, a format or a package) allows for a
    file of format `fmt`; () when the backend does not run that format."""
    if backend in ("auto", fmt):
        return PACKAGES[fmt]
    return (backend,) if backend in PACKAGES[fmt] else ()


def package_version(package):
    try:
        return metadata.version(package)
    except Exception:
        return "unknown"


def import_package(package):
    """Import an interpreter package or raise BackendUnavailable saying how to install it."""
    try:
        return importlib.import_module(_MODULES[package])
    except ImportError as e:
        raise BackendUnavailable(f"{package} is not installed ({e}); install it with {install_hint(package)}") from None
    except Exception as e:  # e.g. tflite-runtime under numpy 2: AttributeError _ARRAY_API not found
        raise BackendUnavailable(f"{package} is installed but fails to import ({type(e).__name__}: {e}); "
                                 f"reinstall it with {install_hint(package)}") from None


def available_packages():
    """Interpreter packages importable in this process, with versions."""
    found = {}
    for pkg in ALL_PACKAGES:
        try:
            import_package(pkg)
        except BackendUnavailable:
            continue
        found[pkg] = package_version(pkg)
    return found
