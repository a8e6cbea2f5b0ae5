"""`llmfs export`: the course in the tools instructors already run.

Each format is a module of this package that defines ``register(subparsers)``
(adding its own ``llmfs export FORMAT`` parser) and does one job:

- ``gradescope``: an autograder zip whose ``run_autograder`` grades
  ``/autograder/submission`` with ``llmfs grade`` and writes Gradescope's
  ``results.json``;
- ``nbgrader``: an nbgrader course whose autograded cells grade the student's
  notebook through ``llmfs grade``.

Both give the same scores as ``llmfs grade``: they call it, they never score
anything themselves.
"""

from __future__ import annotations

import importlib

# Formats, in the order `llmfs export --help` lists them.
FORMATS = ("grader.export.gradescope", "grader.export.nbgrader")


def register(sub) -> None:
    p = sub.add_parser("export", help="write the course as a Gradescope autograder or an nbgrader course",
                       description="Write the course for another grading platform. The exported grader "
                                   "calls 'llmfs grade', so its scores equal 'llmfs grade'.")
    formats = p.add_subparsers(dest="format", metavar="FORMAT")
    formats.required = True
    for name in FORMATS:
        importlib.import_module(name).register(formats)
