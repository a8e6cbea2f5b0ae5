"""Turning test results into points, in the judge only.

A unit's points (from course.toml) are split over its tests by weight
(``@pytest.mark.weight(n)``, 1 by default). A test scores its share only if
it passed. The maximum score comes from course.toml alone: a unit whose
tests could not be collected still counts at full value in the maximum.
What a failure says depends on where the test lives: a public test shows
its message; a hidden test shows only a summary that carries no expected
values.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .course import Course
from .results import TestResult

HIDDEN_WITHHELD = "wrong result (hidden test: details withheld)"


@dataclass
class TestScore:
    __test__ = False

    name: str
    unit: str
    score: float
    max_score: float
    status: str  # passed | failed | error | skipped
    message: str
    duration: float
    hidden: bool


@dataclass
class UnitScore:
    id: str
    title: str
    score: float
    max_score: float
    passed: int
    total: int
    message: str = ""
    depends_note: str = ""  # "u05 uses your u04 (attention.py), which fails 3 tests: fix u04 first"


@dataclass
class Grade:
    submission: str
    score: float
    max_score: float
    units: list[UnitScore] = field(default_factory=list)
    tests: list[TestScore] = field(default_factory=list)
    isolation: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str | None = None


def public_message(r: TestResult) -> str:
    """What the submitter is told about one test's failure."""
    if r.outcome == "passed":
        return ""
    props = r.props  # a grader.failures.Failure's fields, when the test failed through one
    hint = props.get("hint")
    if r.hidden:  # only a summary written to be safe to show: never the assertion itself
        text = props.get("summary") or HIDDEN_WITHHELD
    elif "message" in props:
        text = props["message"]
    else:  # a plain assert or an error in the test itself: pytest's own words
        text = _strip_type_prefix(r.message.strip()) or r.outcome
    if hint and hint not in text:
        text += f" (hint: {hint})"
    return text


def _strip_type_prefix(message: str) -> str:
    """'module.SomeError: text' -> 'text', for exceptions that are not a Failure."""
    head, sep, rest = message.partition(": ")
    if sep and " " not in head and "." in head and head.rsplit(".", 1)[-1][:1].isupper():
        return rest
    return message


def dependency_note(course: Course, unit_id: str, failing: dict[str, int]) -> str:
    """Why a unit may fail for another unit's bug: the earlier units it runs that fail tests."""
    notes = []
    for dep in course.dependencies(unit_id):
        if failing.get(dep):
            modules = ", ".join(f"{m}.py" for m in course.unit(dep).modules)
            n = failing[dep]
            notes.append(f"{unit_id} uses your {dep} ({modules}), which fails {n} test{'s' * (n != 1)}: "
                         f"fix {dep} first")
    return "; ".join(notes)


def score(course: Course, results: list[TestResult], unit_ids: list[str], submission: str,
          unit_messages: dict[str, str] | None = None, *, isolation: dict | None = None,
          notes: list[str] | None = None, error: str | None = None) -> Grade:
    """The whole Grade of one submission, built here once from the judge's records."""
    unit_messages = unit_messages or {}
    grade = Grade(submission=submission, score=0.0, max_score=0.0, isolation=dict(isolation or {}),
                  notes=list(notes or []), error=error)
    for uid in unit_ids:
        unit = course.unit(uid)
        mine = [r for r in results if r.unit == uid]
        total_weight = sum(r.weight for r in mine)
        passed = [r for r in mine if r.outcome == "passed"]
        unit_score = unit.points * sum(r.weight for r in passed) / total_weight if total_weight else 0.0
        message = unit_messages.get(uid, "")
        if not mine and not message:
            message = "no tests could be run for this unit"
        grade.units.append(UnitScore(uid, unit.title, round(unit_score, 6), unit.points, len(passed), len(mine),
                                     message))
        for r in mine:
            share = unit.points * r.weight / total_weight
            grade.tests.append(TestScore(
                name=r.name, unit=uid, score=round(share if r.outcome == "passed" else 0.0, 6),
                max_score=round(share, 6), status=r.outcome, message=public_message(r),
                duration=round(r.duration, 3), hidden=r.hidden))
        grade.score += unit_score
        grade.max_score += unit.points
    failing = {u.id: u.total - u.passed for u in grade.units}
    for u in grade.units:
        if u.passed < u.total:
            u.depends_note = dependency_note(course, u.id, failing)
    grade.score = round(grade.score, 6)
    return grade
