"""The layering contract of docs/architecture.md, read from the code's imports (every import,
those inside functions and under TYPE_CHECKING included): no layer imports a layer above it, the
worker and the monitor never import each other, the detection core imports no I/O library, and
no two modules import each other, directly or around a cycle. Also the size rules: a module over
400 lines says why at its top, and no function of the worker is over 60 lines."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("pipeline", "monitor")

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("core", ("pipeline.detection",)),
    ("contracts", ("pipeline.contracts",)),
    ("settings", ("pipeline.config",)),
    ("shared edges", ("pipeline.wiring", "pipeline.kafka")),
    ("processes", ("pipeline.worker", "monitor")),
    ("tools", ("pipeline.tools", "pipeline.__main__", "monitor.__main__")),
)
"""Lowest first: a module may import its own layer and the layers below it, never one above."""

SEPARATE = (("pipeline.worker", "monitor"),)
"""Parts of one layer that never import each other."""

IO_LIBRARIES = (
    "faust", "aiokafka", "confluent_kafka", "dash", "flask", "werkzeug", "prometheus_client",
    "pydantic", "pydantic_settings", "fastjsonschema", "requests", "gunicorn",
)  # fmt: skip
"""What the detection core never imports: it is pure, testable and reusable offline."""

LONG_MODULE_LINES = 400
LONG_MODULE_REASON = "longer than 400 lines because"
WORKER_FUNCTION_LINES = 60


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def imports(path: Path, name: str) -> Iterator[str]:
    """Every module ``path`` imports, resolved to absolute names."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def project_imports() -> dict[str, set[str]]:
    """module -> the project modules it imports."""
    known = modules()
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        graph[name] = {target for target in imports(path, name) if target in known and target != name}
    return graph


def layer_of(name: str) -> int | None:
    for index, (_, prefixes) in reversed(list(enumerate(LAYERS))):
        if any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes):
            return index
    return None


def test_every_module_has_a_layer() -> None:
    unplaced = [name for name in modules() if name not in PACKAGES and layer_of(name) is None]
    assert not unplaced, f"modules outside every layer of LAYERS (docs/architecture.md): {unplaced}"


def test_no_layer_imports_a_layer_above_it() -> None:
    upward = []
    for name, targets in project_imports().items():
        own = layer_of(name)
        for target in targets:
            theirs = layer_of(target)
            if own is not None and theirs is not None and theirs > own:
                upward.append(f"{name} ({LAYERS[own][0]}) imports {target} ({LAYERS[theirs][0]})")
    assert not upward, "imports against the layering:\n" + "\n".join(sorted(upward))


@pytest.mark.parametrize(("one", "other"), SEPARATE)
def test_worker_and_monitor_never_import_each_other(one: str, other: str) -> None:
    crossing = [
        f"{name} imports {target}"
        for name, targets in project_imports().items()
        for target in targets
        for a, b in ((one, other), (other, one))
        if (name == a or name.startswith(a + ".")) and (target == b or target.startswith(b + "."))
    ]
    assert not crossing, "\n".join(crossing)


def test_the_detection_core_imports_no_io_library() -> None:
    found = []
    for name, path in modules().items():
        if layer_of(name) == 0:
            for target in imports(path, name):
                if target.split(".")[0] in IO_LIBRARIES:
                    found.append(f"{name} imports {target}")
    assert not found, "\n".join(sorted(set(found)))


def test_no_import_cycle() -> None:
    graph = project_imports()
    # Package __init__ modules that only re-export their own modules are not cycles of meaning;
    # a module importing its own package's __init__ is still checked.
    cycles = strongly_connected(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(sorted(c)) for c in cycles)


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm: the components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_checks_catch_what_they_look_for() -> None:
    """The contract's own machinery finds a cycle and places names in layers as intended."""
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert layer_of("pipeline.detection.detector") == 0
    assert layer_of("pipeline.worker.stages") == layer_of("monitor.app")
    assert layer_of("pipeline.tools.cli") == len(LAYERS) - 1


def test_long_modules_say_why() -> None:
    silent = []
    for name, path in modules().items():
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if lines > LONG_MODULE_LINES and LONG_MODULE_REASON not in " ".join(docstring.split()):
            silent.append(f"{name}: {lines} lines")
    assert not silent, (
        f"modules over {LONG_MODULE_LINES} lines whose docstring does not say why:\n" + "\n".join(silent)
    )


def test_worker_functions_are_short() -> None:
    long = []
    for path in sorted((ROOT / "pipeline" / "worker").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > WORKER_FUNCTION_LINES:
                    long.append(f"{path.name}:{node.lineno} {node.name}: {length} lines")
    assert not long, "\n".join(long)


def test_the_scoring_order_is_written_once() -> None:
    """The steps "transaction features, entity features, card features, decide" appear together in
    one function only: the detector's (backtest, bench and worker call it)."""
    places = []
    for name, path in modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                called = {
                    call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
                    for call in ast.walk(node)
                    if isinstance(call, ast.Call)
                }
                own = {"transaction_features", "transaction_feature_matrix", "_own_features"}
                if called & own and called & {"decide", "decide_many", "decide_rows"}:
                    places.append(f"{name}.{node.name}")
    assert places == ["pipeline.detection.detector._score_ready"]
