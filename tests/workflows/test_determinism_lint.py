"""Workflow code stays deterministic: a lint over every module of ``workflows/``.

The worker runs workflows without Temporal's sandbox (it cost a third of the worker's CPU
per dialog), so nothing at run time stops a workflow from reading the clock or the network.
This test does, before a change lands: workflow modules may import only what cannot do I/O,
may not call clocks or random sources, and may keep no state at module level (runs share
the modules). The stored histories still replay inside the sandbox (test_replay.py).
"""

import ast
from pathlib import Path

import workflows

FOLDER = Path(workflows.__file__).parent

# Modules a workflow module may import from anywhere in it.
ALLOWED: tuple[str, ...] = (
    "__future__", "asyncio", "collections", "contextlib", "dataclasses", "datetime", "enum",
    "functools", "itertools", "math", "pydantic", "typing", "workflows",
    "temporalio.workflow", "temporalio.common", "temporalio.exceptions", "temporalio",
)  # fmt: skip
# Activity definitions, imported for their names (never called from workflow code): only
# inside ``with workflow.unsafe.imports_passed_through():``.
PASSED_THROUGH = ("activities", "channels.delivery")
# Calls that read the clock, randomness or the environment, or wait nondeterministically.
FORBIDDEN_CALLS = {
    "now": "a clock: use workflow.now()",
    "utcnow": "a clock: use workflow.now()",
    "today": "a clock: use workflow.now()",
    "time": "a clock: use workflow.now()",
    "monotonic": "a clock: use workflow.now()",
    "perf_counter": "a clock: use workflow.now()",
    "uuid4": "randomness: use workflow.uuid4()",
    "random": "randomness: use workflow.random()",
    "open": "file I/O",
    "input": "terminal I/O",
    "print": "terminal I/O: use workflow.logger",
    "wait": "asyncio.wait is nondeterministic: use workflow.wait",
    "as_completed": "asyncio.as_completed is nondeterministic: use workflow.as_completed",
    "getenv": "the environment",
}


def problems_in(source: str, name: str) -> list[str]:
    """What in ``source`` (a module named ``name``) could make a workflow nondeterministic."""
    tree = ast.parse(source)
    found: list[str] = []
    passed_through = _passed_through_lines(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
            )
            for module in modules:
                if _within(module, PASSED_THROUGH):
                    if node.lineno not in passed_through:
                        found.append(
                            f"{name}:{node.lineno}: {module} imported outside "
                            "imports_passed_through()"
                        )
                elif not _within(module, ALLOWED):
                    found.append(f"{name}:{node.lineno}: imports {module}, which may do I/O")
        elif isinstance(node, ast.Call):
            called = _called_name(node.func)
            if called in FORBIDDEN_CALLS and not _is_workflow_api(node.func):
                found.append(f"{name}:{node.lineno}: {called}() is {FORBIDDEN_CALLS[called]}")
        elif isinstance(node, ast.Global):
            found.append(f"{name}:{node.lineno}: global state is shared by every run")
    for statement in tree.body:  # module level: runs share the module
        value = statement.value if isinstance(statement, ast.Assign | ast.AnnAssign) else None
        targets = (
            [t.id for t in statement.targets if isinstance(t, ast.Name)]
            if isinstance(statement, ast.Assign)
            else []
        )
        if "__all__" in targets:
            continue
        if isinstance(value, ast.List | ast.Dict | ast.Set | ast.ListComp | ast.DictComp):
            found.append(
                f"{name}:{statement.lineno}: a mutable value at module level is shared by "
                "every run (use a tuple or a frozenset)"
            )
    return found


def _called_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else None


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def _is_workflow_api(func: ast.expr) -> bool:
    """``workflow.now()``, ``workflow.random()``, ``workflow.wait(...)``: the deterministic
    versions Temporal provides."""
    return (
        isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Name)
        and func.value.id == "workflow"
    )


def _passed_through_lines(tree: ast.Module) -> set[int]:
    """Line numbers of statements inside ``with workflow.unsafe.imports_passed_through():``."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.With) and any(
            isinstance(item.context_expr, ast.Call)
            and isinstance(item.context_expr.func, ast.Attribute)
            and item.context_expr.func.attr == "imports_passed_through"
            for item in node.items
        ):
            for inner in node.body:
                lines.update(range(inner.lineno, (inner.end_lineno or inner.lineno) + 1))
    return lines


def test_workflow_modules_do_nothing_nondeterministic():
    modules = sorted(FOLDER.glob("*.py"))
    assert len(modules) > 10
    found = [p for path in modules for p in problems_in(path.read_text(), path.name)]
    assert found == []


def test_the_lint_finds_what_it_forbids():
    bad = """
import httpx
from datetime import datetime
from activities.dialogs import DialogActivities
from temporalio import workflow
SEEN = []

async def run():
    global SEEN
    started = datetime.now()
    print(started)
    await asyncio.wait([])
    return workflow.now()
"""
    found = "\n".join(problems_in(bad, "bad.py"))
    assert "imports httpx" in found
    assert "activities.dialogs imported outside imports_passed_through()" in found
    assert "bad.py:6: a mutable value at module level" in found
    assert "global state" in found
    assert "now() is a clock" in found
    assert "print() is terminal I/O" in found
    assert "asyncio.wait is nondeterministic" in found
    assert found.count("now() is a clock") == 1, "workflow.now() is the allowed clock"
