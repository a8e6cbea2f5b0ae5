"""`llmfs --course FILE` means that course file in every command, whatever its name.

The judge, `check` and `validate` hand their course to pytest instead of letting
pytest find a course.toml on its own (which scored the reference 0 when the
file had another name).
"""

from __future__ import annotations

import json

import pytest

from course_copy import copy_course
from kit import llmfs


@pytest.fixture(scope="module")
def renamed(tmp_path_factory):
    course = copy_course(tmp_path_factory.mktemp("flag"))
    other = course / "other.toml"
    (course / "course.toml").rename(other)
    return other


def test_grade_uses_the_named_course_file(renamed):
    proc = llmfs("--course", str(renamed), "grade", "solutions", "--unit", "u04", "--format", "json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(proc.stdout)
    assert r["score"] == r["max_score"] == 10, [t for t in r["tests"] if t["status"] != "passed"][:2]


def test_check_uses_the_named_course_file(renamed):
    proc = llmfs("--course", str(renamed), "check", "u04", "--target", "solutions")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_validate_uses_the_named_course_file(renamed):
    proc = llmfs("--course", str(renamed), "validate", "--unit", "u04", "--no-progress")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
