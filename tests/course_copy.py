"""A throwaway copy of the course (solutions and hidden tests included) to plant mistakes in."""

from __future__ import annotations

import shutil
from pathlib import Path

from kit import ROOT


def copy_course(tmp_path: Path) -> Path:
    dest = tmp_path / "course"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    for top in ("exercises", "solutions", "grader", "datasets"):
        if (ROOT / top).is_dir():
            shutil.copytree(ROOT / top, dest / top, ignore=ignore)
    for name in ("course.toml", "conftest.py", "pyproject.toml"):
        shutil.copy(ROOT / name, dest / name)
    (dest / "grader" / "hidden").mkdir(exist_ok=True)
    return dest


def allow_imports(course: Path, modules: list[str]) -> None:
    """Let the student modules of a course copy import more than the course allows.

    Attacks on the sandbox (processes, files, network, memory) need os, sys,
    socket, ...: the static scan of grader.forbid would refuse them before
    they run, and the sandbox would go untested. Layer 1 has its own tests
    (tests/test_forbid.py, the forbid attacks of tests/test_grading.py)."""
    path = course / "course.toml"
    text = path.read_text(encoding="utf-8")
    anchor = "[imports]\nallow = [\n"
    assert anchor in text, "course.toml has no [imports] allow list"
    text = text.replace(anchor, anchor + "    " + ", ".join(f'"{m}"' for m in modules) + ",\n", 1)
    path.write_text(text, encoding="utf-8")

