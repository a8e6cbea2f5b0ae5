"""A bug in an earlier unit is blamed on that unit, in `llmfs check` and in `llmfs grade`.

A one-character causal-mask bug in u04 fails tests in u05 too (its decoder
blocks run the student's attention). Both commands must say so first:
"u05 uses your u04 (attention.py), which fails N tests: fix u04 first".
"""

from __future__ import annotations

import json

import pytest

from grader.course import load_course
from grader.scoring import dependency_note

from kit import ROOT, llmfs, plant_mutant

CAUSAL_BUG = ("torch.tril(torch.ones(T, T, dtype=torch.bool))",
              "torch.tril(torch.ones(T, T, dtype=torch.bool), diagonal=-1)")


@pytest.fixture(scope="module")
def causal_bug(tmp_path_factory):
    return plant_mutant(tmp_path_factory.mktemp("dep"), "attention", *CAUSAL_BUG)


def test_grade_blames_the_earlier_unit(causal_bug):
    proc = llmfs("grade", str(causal_bug), "--unit", "u04", "--unit", "u05", "--format", "json")
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    units = {u["id"]: u for u in json.loads(proc.stdout)["units"]}
    assert units["u04"]["passed"] < units["u04"]["total"]
    assert units["u05"]["passed"] < units["u05"]["total"], "u05 should fail through u04's bug"
    assert units["u05"]["depends_note"].startswith("u05 uses your u04 (attention.py), which fails")
    assert units["u05"]["depends_note"].endswith("fix u04 first")
    assert units["u04"]["depends_note"] == ""  # u04 depends on nothing


def test_check_blames_the_earlier_unit_first(causal_bug):
    proc = llmfs("check", "u05", "--target", str(causal_bug))
    lines = proc.stdout.splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("u05 "))
    assert "u05 uses your u04 (attention.py), which fails" in lines[row + 1], proc.stdout
    assert not any(line.startswith("u04 ") for line in lines), "only the unit asked for gets a row"


def test_no_note_when_the_unit_itself_passes():
    course = load_course(ROOT / "course.toml")
    assert "fix u03 first" in dependency_note(course, "u05", {"u03": 2, "u04": 0})
    assert dependency_note(course, "u05", {"u03": 0, "u04": 0}) == ""
    assert "u04" not in dependency_note(course, "u06", {"u03": 1, "u04": 0, "u05": 0})
