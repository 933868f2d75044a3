"""Interpreter adapters behind one small interface, `run(list of arrays) -> list of arrays` in the
manifest's input and output order, and the fallback chain that picks one. One module per job:
packages (the package table), tflite / onnx (the adapters), tensors (what both check at load),
probe / probe_child (the child-process guard), chain (open_backend, open_first)."""

from .chain import open_backend, open_first
from .packages import (ALL_PACKAGES, BACKENDS, EXTRAS, FORMAT_OF, PACKAGES, available_packages, check_backend,
                       import_package, install_hint, package_version, packages_for)
from .probe import probe_in_child

__all__ = ["ALL_PACKAGES", "BACKENDS", "EXTRAS", "FORMAT_OF", "PACKAGES", "available_packages", "check_backend",
           "import_package", "install_hint", "open_backend", "open_first", "package_version", "packages_for",
           "probe_in_child"]
