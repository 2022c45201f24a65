"""The worker's start-up work that no workflow test sees."""

import importlib.util
import sys
from pathlib import Path

import pytest

from worker import compile_workflow_modules
from workflows import dialog


def test_workflow_bytecode_is_written_even_where_python_is_told_not_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The sandbox imports the workflow module for every run: with bytecode on disk it need
    not compile it each time (PYTHONDONTWRITEBYTECODE sets ``sys.dont_write_bytecode``)."""
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    cached = Path(importlib.util.cache_from_source(dialog.__file__))
    cached.unlink(missing_ok=True)

    compile_workflow_modules()

    assert cached.exists()
    assert cached.stat().st_mtime >= Path(dialog.__file__).stat().st_mtime
