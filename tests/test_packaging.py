"""The kit is packaged as what it is: Apache-2.0, with everything `llmfs` needs at run time."""

from __future__ import annotations

import tomllib

from grader.course import load_course
from grader.release import plan_release, student_pyproject

from kit import ROOT


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_the_licence_is_apache_2_and_declared():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.lstrip().startswith("Apache License") and "Version 2.0, January 2004" in text
    assert project()["license"] == {"text": "Apache-2.0"}


def test_the_student_release_carries_the_licence():
    course = load_course(ROOT / "course.toml")
    assert "LICENSE" in plan_release(course)
    released = tomllib.loads(student_pyproject(course))["project"]
    assert released["license"] == {"text": "Apache-2.0"}


def test_what_llmfs_imports_at_run_time_is_a_runtime_dependency():
    # `llmfs check` and `llmfs grade` run pytest, and the course tests use hypothesis:
    # a fresh `pip install -e .` must bring both, not only the test extra.
    deps = " ".join(project()["dependencies"])
    for name in ("torch", "numpy", "pytest", "hypothesis", "tqdm", "regex", "tokenizers"):
        assert name in deps, f"{name} is not a runtime dependency"
