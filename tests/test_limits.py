"""Limits live in one place: every bound the runtime enforces is a named constant of
nextword.runtime.limits, and each is documented in docs/reliability.md (issue 12)."""

import ast
import os

import pytest

from nextword.runtime import limits
from support import REPO

RUNTIME = os.path.join(REPO, "runtime")
LIMIT_PREFIXES = ("MAX_", "MIN_", "TFLITE_MAX_", "PROBE_")
CONSTANTS = sorted(n for n in vars(limits) if n.isupper() and not n.startswith("_"))


def _module_constants(path):
    """Names a module assigns at its top level (imports excluded)."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    names = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def test_limits_module_has_the_bounds_the_issue_names():
    for name in ("MAX_VARIANTS", "MAX_LINE_BYTES", "MAX_HISTORY", "MAX_GENERATE_WORDS", "MAX_ERROR_CHARS",
                 "THREADS_PER_CORE", "MAX_SPLIT_CHARS", "MAX_MODEL_BYTES"):
        assert isinstance(getattr(limits, name), int) and getattr(limits, name) > 0, name
    assert limits.max_threads() == limits.THREADS_PER_CORE * (os.cpu_count() or 1)


@pytest.mark.parametrize("name", CONSTANTS)
def test_every_limit_is_documented_in_reliability_md(name):
    with open(os.path.join(REPO, "docs", "reliability.md"), encoding="utf-8") as f:
        assert f"`{name}`" in f.read(), f"{name} is not in docs/reliability.md's table of limits"


def test_no_other_runtime_module_defines_a_limit():
    found = []
    for folder, _, files in os.walk(RUNTIME):
        for name in files:
            path = os.path.join(folder, name)
            if name.endswith(".py") and name != "limits.py":
                found += [f"{os.path.relpath(path, REPO)}: {c}" for c in _module_constants(path)
                          if c.startswith(LIMIT_PREFIXES)]
    assert not found, "limits belong in runtime/limits.py: " + ", ".join(found)
