"""The package's imports, read from its source (a small AST pass, nothing imported): no module imports itself back
through others, and no module imports a layer above its own, so values flow one way and every module can be read
without the ones that use it.

The layers, lowest first (:data:`LAYERS`; a module may import its own layer and those below):

1. ``constants`` (version, resources, ImageNet statistics, script names), ``utils``
2. ``runtime``, ``kernels``, ``profile``: how MindSpore runs here, our own CPU kernels, counting MACs
3. ``models``: networks and their default configs; they know nothing of data sets, recipes or command lines
4. ``data``: data sets, transforms, loaders and the preprocessing resolver (the model's config comes in as an argument)
5. ``engine``: training, checkpoints and run folders, data parallel and the launchers' environment
6. ``inference``: loading for evaluation, validation, prediction, export
7. ``cli``: the option table and the parser; it only parses, and hands plain values down
8. the commands: the package root (its public names), ``convert``, ``summary``, ``doctor``, ``plot``, ``launch``
   (and, outside the package, ``train.py``, ``validate.py``, ``infer.py``, ``export.py``, ``benchmark.py``)
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mindcv_mobilenet"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _imports(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Package modules ``module`` imports when it runs (at the top or inside functions; not for type checking)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _is_type_checking_block(node):
            return
        if isinstance(node, ast.ImportFrom):
            base = module.split(".") if is_package else module.split(".")[:-1]
            if node.level:
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.update(f"{target}.{alias.name}" for alias in node.names)
            found.add(target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports (``from .x import name`` counts as importing ``x`` or ``x.name``)."""
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in paths.items():
        imported = _imports(ast.parse(path.read_text(encoding="utf-8")), name, path.name == "__init__.py")
        # "from .x import y": y is a module when there is one by that name, else a name defined in x
        graph[name] = {m for m in imported if m in paths and m != name}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return cycles


LAYERS: tuple[tuple[str, ...], ...] = (
    ("constants", "utils"),
    ("runtime", "kernels", "profile"),
    ("models",),
    ("data",),
    ("engine",),
    ("inference",),
    ("cli",),
    ("", "convert", "summary", "doctor", "plot", "launch"),  # "": the package root, mindcv_mobilenet/__init__.py
)


def layer_of(module: str) -> int | None:
    """The index in :data:`LAYERS` of ``mindcv_mobilenet.<first part>...``; None when no layer names it."""
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else ""
    return next((i for i, names in enumerate(LAYERS) if top in names), None)


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """``importer -> imported`` for every import of a module in a higher layer, and every module in no layer."""
    found = [f"{m} is in no layer" for m in sorted(graph) if layer_of(m) is None]
    for module in sorted(graph):
        own = layer_of(module)
        for imported in sorted(graph[module]):
            above = layer_of(imported)
            if own is not None and above is not None and above > own:
                found.append(f"{module} -> {imported}")
    return found


def test_no_module_imports_a_layer_above_its_own():
    assert upward_imports(import_graph()) == []


def test_upward_imports_are_found():
    package = "mindcv_mobilenet"
    graph = {f"{package}.models.registry": {f"{package}.data.constants", f"{package}.utils.errors"},
             f"{package}.data.constants": set(), f"{package}.utils.errors": set(), f"{package}.somewhere": set(),
             f"{package}.inference.loading": {f"{package}.cli.parser", f"{package}.engine.distributed"},
             f"{package}.cli.parser": set(), f"{package}.engine.distributed": set(), package: {f"{package}.cli"}}
    assert upward_imports(graph) == [f"{package}.somewhere is in no layer",
                                     f"{package}.inference.loading -> {package}.cli.parser",
                                     f"{package}.models.registry -> {package}.data.constants"]


def test_no_import_cycles():
    graph = import_graph()
    assert len(graph) > 40 and graph["mindcv_mobilenet.inference.quantize"]  # the walk found the package
    assert find_cycles(graph) == []


def test_the_cycle_finder_finds_cycles():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []
    source = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import B\n"
              "def f():\n    from .c import g\n")
    assert _imports(ast.parse(source), "p.a", False) == {"typing", "typing.TYPE_CHECKING", "p.c", "p.c.g"}


def _levels_above_file(node: ast.AST) -> int:
    """How many folders up from ``__file__`` a path expression goes (``os.path.dirname`` calls, ``.parent``,
    ``.parents[k]``); -1 when it does not start from ``__file__``."""
    if isinstance(node, ast.Name):
        return 0 if node.id == "__file__" else -1
    if isinstance(node, ast.Call):
        inner = [_levels_above_file(arg) for arg in node.args[:1]]
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name == "dirname" and inner and inner[0] >= 0:
            return inner[0] + 1
        if isinstance(func, ast.Attribute):  # Path(__file__).resolve(): the same folder
            below = _levels_above_file(func.value)
            if below >= 0:
                return below
        return max(inner, default=-1)
    if isinstance(node, ast.Attribute):
        below = _levels_above_file(node.value)
        return below + (node.attr == "parent") if below >= 0 else -1
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "parents":
        below = _levels_above_file(node.value.value)
        step = node.slice.value + 1 if isinstance(node.slice, ast.Constant) else 99
        return below + step if below >= 0 else -1
    return -1


def paths_outside_the_package() -> list[str]:
    """Places where a package module builds a path above the package's folder from its ``__file__``, or names the
    repository's ``../shared``: an installed package has no repository around it (tests and tools know it)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        allowed = len(path.relative_to(PACKAGE).parts)  # data/constants.py may go 2 up: to mindcv_mobilenet/
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.strip("./") == "shared":
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} names 'shared'")
            elif _levels_above_file(node) > allowed:
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} goes above the package")
    return found


def test_the_package_does_not_know_the_repository():
    assert paths_outside_the_package() == []


def test_paths_above_a_file_are_counted():
    def levels(source: str) -> int:
        return _levels_above_file(ast.parse(source, mode="eval").body)

    assert levels("os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))") == 3
    assert levels("Path(__file__).resolve().parents[1]") == 2
    assert levels("Path(__file__).parent.parent") == 2
    assert levels("os.path.join(os.path.dirname(__file__), 'resources')") == 1
    assert levels("os.path.dirname(path)") == -1


# What used to be written twice (issue 23): each now has one home, which training and evaluation both use.
ONE_HOME = {"set_mode": "mindcv_mobilenet.runtime", "setup_logging": "mindcv_mobilenet.utils.logs",
            "RunLogFile": "mindcv_mobilenet.utils.logs"}


def test_shared_helpers_are_defined_once():
    defined: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                defined.setdefault(node.name.lstrip("_"), []).append(_module_name(path))
    assert {name: defined.get(name) for name in ONE_HOME} == {name: [home] for name, home in ONE_HOME.items()}
    assert "setup_context" not in defined  # the trainer's copy of set_mode
