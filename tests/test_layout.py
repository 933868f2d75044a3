"""The house rules, read statically from the installed package's source: dependencies flow
runtime <- train <- export <- bench, the runtime never imports the training stack, no module of the
project imports another inside a function (the way cycles get hidden), and there is no import cycle
anywhere, inside a package or across them."""

import ast
import os

import pytest

import nextword

ROOT = os.path.dirname(nextword.__file__)
TRAINING_STACK = ("tensorflow", "keras", "tf_keras", "tf2onnx")
MAY_NOT_IMPORT = {
    "runtime": ("nextword.train", "nextword.export", "nextword.bench") + TRAINING_STACK,
    "train": ("nextword.export", "nextword.bench", "tf_keras"),
    "export": ("nextword.bench",),
    "bench": TRAINING_STACK,   # Keras figures come from `python -m nextword.train.keras_bench` children
}


def _modules():
    out = {}
    for folder, _, files in os.walk(ROOT):
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(folder, f), ROOT)[:-3].replace(os.sep, ".")
                name = ("nextword." + rel).removesuffix(".__init__") if rel != "__init__" else "nextword"
                out[name] = os.path.join(folder, f)
    return out


MODULES = _modules()


def _imports(name, path):
    """(every module `name` imports, the project modules it imports inside a function)."""
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    tree = ast.parse(open(path, encoding="utf-8").read())
    found, nested = set(), set()

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            targets = set()
            if isinstance(child, ast.Import):
                targets = {a.name for a in child.names}
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    parts = package.split(".")
                    base = ".".join(parts[:len(parts) - child.level + 1] + ([child.module] if child.module else []))
                else:
                    base = child.module
                subs = {f"{base}.{a.name}" for a in child.names} & set(MODULES)
                # `from . import name` runs the package's __init__ too: a cycle through it is a cycle
                targets = subs | {base} if subs and child.module is None else subs or {base}
            found.update(targets)
            if inner:
                nested.update(t for t in targets if t.startswith("nextword"))
            visit(child, inner)
    visit(tree, False)
    return found, nested


GRAPH, NESTED = {}, {}
for _name, _path in MODULES.items():
    GRAPH[_name], NESTED[_name] = _imports(_name, _path)


def test_every_part_is_read():
    assert {m.split(".")[1] for m in MODULES if m.count(".")} >= set(MAY_NOT_IMPORT)
    assert len(MODULES) > 50


@pytest.mark.parametrize("part", sorted(MAY_NOT_IMPORT))
def test_dependencies_flow_one_way(part):
    bad = {m: sorted(t for t in GRAPH[m] if t.startswith(MAY_NOT_IMPORT[part]))
           for m in MODULES if m.startswith(f"nextword.{part}.") or m == f"nextword.{part}"}
    assert {m: t for m, t in bad.items() if t} == {}


def test_no_project_import_inside_a_function():
    assert {m: sorted(t) for m, t in NESTED.items() if t} == {}


def test_no_import_cycle():
    project = {m: {t for t in GRAPH[m] if t in MODULES and t != m} for m in MODULES}

    def reaches_itself(start):
        seen, todo = set(), list(project[start])
        while todo:
            m = todo.pop()
            if m == start:
                return True
            if m not in seen:
                seen.add(m)
                todo.extend(project[m])
        return False
    assert sorted(m for m in project if reaches_itself(m)) == []
