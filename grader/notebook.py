"""What a unit's notebook calls: your code, its checks, and a friendly TODO.

Each unit's notebook (``exercises/units/<unit>/<unit>.ipynb``) starts with::

    from grader.notebook import open_unit
    unit = open_unit("u04")
    attention = unit.module("attention")     # your scratchllm/attention.py, freshly loaded
    unit.check()                             # `llmfs check u04`, its report printed here

and wraps each picture in ``with unit.todo():`` so that a function you have
not written yet prints one line ("attention.softmax is still TODO ...")
instead of a traceback, and the rest of the notebook still runs.

Which code the notebook runs is the *target* (docs/targets.md): your
``exercises/`` by default, or what the environment variable ``LLMFS_TARGET``
names (CI runs every notebook against ``solutions``). ``LLMFS_NOTEBOOK_QUICK=1``
asks for the small configurations CI uses; `unit.quick` tells a notebook
which one it is in.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from dataclasses import dataclass
from types import ModuleType

from .course import Course, Unit, load_course
from .targets import Target, import_modules, load_package, resolve_target

TARGET_ENV = "LLMFS_TARGET"
QUICK_ENV = "LLMFS_NOTEBOOK_QUICK"


@dataclass
class UnitNotebook:
    course: Course
    unit: Unit
    target_spec: str

    @property
    def target(self) -> Target:
        return resolve_target(self.course, self.target_spec)

    @property
    def quick(self) -> bool:
        """True when the notebook should use its small configuration (CI)."""
        return os.environ.get(QUICK_ENV, "") not in ("", "0")

    def module(self, name: str) -> ModuleType:
        """`scratchllm.<name>` from the target, loaded afresh: run this cell again after
        you edit the file and the notebook sees your new code."""
        package = load_package(self.target, self.course.package)
        import_modules(package, [name])
        return getattr(package, name)

    def check(self, verbose: bool = False) -> bool:
        """Run `llmfs check <unit>` on the target and print its report. True if all passed."""
        cmd = [sys.executable, "-m", "grader", "--course", str(self.course.path), "check", self.unit.id,
               "--target", self.target_spec]
        if verbose:
            cmd.append("-v")
        done = subprocess.run(cmd, cwd=self.course.root, capture_output=True, text=True,
                              encoding="utf-8", errors="replace")
        print(done.stdout + done.stderr, end="")
        return done.returncode == 0

    @contextlib.contextmanager
    def todo(self):
        """Run a cell's body; if it reaches a function that is still TODO, say which one
        in a line and carry on (any other error is yours to see, in full)."""
        try:
            yield
        except NotImplementedError as e:
            what = str(e) or "a function"
            print(f"Not yet: {what} is still TODO in your {self.course.package} package. "
                  f"Write it, then run this cell again.")


def open_unit(unit_id: str, target: str | None = None) -> UnitNotebook:
    """The notebook helper for `unit_id`, on `target` (default: $LLMFS_TARGET, else exercises)."""
    course = load_course()
    unit = course.unit(unit_id)
    spec = target or os.environ.get(TARGET_ENV) or "exercises"
    resolve_target(course, spec)  # a bad target is reported here, in one line
    return UnitNotebook(course, unit, spec)
