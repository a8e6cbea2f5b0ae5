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
