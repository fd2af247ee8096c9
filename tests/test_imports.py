"""Dependencies point one way: the import graph of the code, lazy imports included.

The graph is read from the source (every `import` statement anywhere in a module, so an import
inside a function counts like one at the top), not from what Python happens to load.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("pipelines", "localizer", "experiments")

COMMANDS = (
    "localizer.train",
    "localizer.evaluate",
    "localizer.predict",
    "localizer.export",
    "localizer.audit",
    "localizer.select",
    "localizer.demo",
)
"""The user's commands (`python -m <name>`): one floor, over the library, and each with a --help
that tests/localizer/test_commands.py checks."""

FLOORS = (
    # The ground floor: what every other module may use, importing nothing of the project above.
    (
        "localizer",
        "pipelines.errors",
        "pipelines.element",
        "pipelines.files",
        "pipelines.boxes",
        "pipelines.fields",
    ),
    ("pipelines.cli",),
    # Image and box operations.
    ("pipelines.orientation", "pipelines.image_header", "pipelines.decode", "pipelines.render"),
    ("pipelines.augment",),
    ("pipelines.sources",),
    # The dataset registry (pipelines/__init__.py), the tf.data pipeline, the dataset flags, show.
    ("pipelines",),
    ("localizer.model", "localizer.ops", "localizer.provenance"),
    ("localizer.training", "localizer.serving"),
    ("localizer.inference",),
    # The data loop (label audit, selection): over inference, under the commands.
    ("localizer.curation",),
    COMMANDS,
    ("localizer.launch",),
    ("experiments",),
)
"""Lowest first. A module's floor is that of the longest name here that is the module or a
package above it (`localizer` alone is the package's `__init__.py`, which holds the version)."""


def _modules():
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            modules[name.removesuffix(".__init__")] = path
    return modules


def _imported(module, path, modules):
    """The project modules `module` imports (a name imported from a package counts as the module
    of that name when there is one, else as the package)."""
    is_package = path.name == "__init__.py"
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")[: len(module.split(".")) - node.level + is_package]
                base = ".".join(parts + ([node.module] if node.module else []))
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names
            ]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
    return targets


@pytest.fixture(scope="module")
def graph():
    modules = _modules()
    return {name: _imported(name, path, modules) for name, path in modules.items()}


def _floor(module):
    best = None
    for level, names in enumerate(FLOORS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and (
                best is None or len(name) > len(best[1])
            ):
                best = (level, name)
    if best is None or (best[1] == "localizer" and module != "localizer"):
        raise AssertionError(f"{module} has no floor in FLOORS: add it")
    return best[0]


def _cycles(graph):
    """Strongly connected components of more than one node (Tarjan, iterative)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_module_cycles(graph):
    assert _cycles(graph) == []


def test_no_package_cycles(graph):
    modules = _modules()
    packages = {name for name, path in modules.items() if path.name == "__init__.py"}

    def package(module):
        return module if module in packages else module.rpartition(".")[0]

    edges = {package(name): set() for name in graph}
    for source, targets in graph.items():
        for target in targets:
            a, b = package(source), package(target)
            if a != b and not b.startswith(a + "."):  # a package may import its own subpackages
                edges[a].add(b)
    assert _cycles(edges) == []


def test_every_import_points_down(graph):
    upward = sorted(
        f"{source} (floor {_floor(source)}) imports {target} (floor {_floor(target)})"
        for source, targets in graph.items()
        for target in targets
        if _floor(target) > _floor(source)
    )
    assert upward == []


def test_the_checker_sees_lazy_and_relative_imports(tmp_path):
    """A cycle made only by an import inside a function is found."""
    graph = {"a": {"b"}, "b": {"a"}, "c": set()}
    assert _cycles(graph) == [["a", "b"]]
    module = tmp_path / "x.py"
    module.write_text("def f():\n    from pipelines import boxes\n")
    assert _imported("pipelines.x", module, {"pipelines.boxes": None, "pipelines": None}) == {
        "pipelines.boxes"
    }
