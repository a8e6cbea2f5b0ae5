"""`llmfs check [UNIT]`: a student's self-check against the public tests.

Runs the public tests of one unit (or of every ready unit) against a target
(exercises/ by default), then prints, per unit, tests passed out of total,
the functions still left TODO, and every line the grader's static rules
find (`grader.forbid.unit_problems`, the same scan `llmfs grade` runs):
such a unit would score nothing when graded. Exit status 0 only if every
selected test passed and no rule is broken.

The results are gathered once (`run_check`, a `CheckReport`) and shown as
text (`to_text`) and, with ``--html FILE``, also as a web page
(`grader.html_report.check_html`).
"""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .course import Course
from .errors import UserError
from .forbid import unit_problems
from .report import MAX_MESSAGE, printable
from .results import TestResult, run_pytest
from .runners import one_thread
from .scoring import dependency_note, public_message
from .targets import Target, resolve_target
from .todos import todo_functions


def _run_public_tests(course: Course, unit_ids: list[str], target_spec: str,
                      verbose: bool) -> tuple[list[TestResult], list[tuple[str, str]]]:
    files = [str(f) for uid in unit_ids for f in course.test_files(uid)]
    if not files:
        return [], []
    args = [*files, "--target", str(target_spec), "-m", " or ".join(unit_ids), "--rootdir", str(course.root),
            "-c", str(course.root / "pyproject.toml")]
    if verbose:
        args += ["-v", "--tb=short", "-W", "ignore::pytest.PytestAssertRewriteWarning"]
    _, collector = run_pytest(args, quiet=not verbose, course=course)
    return list(collector.results.values()), collector.collect_errors


@dataclass
class FailedTest:
    name: str
    status: str   # failed | error | skipped | notrun
    message: str  # the public message in full: what differs, where, with what values, and the hint


@dataclass
class UnitCheck:
    """One unit's line of the self-check, computed once and shown as text or HTML."""
    id: str
    title: str
    passed: int
    total: int
    depends_note: str = ""            # "u05 uses your u04 (attention.py), which fails 3 tests: fix u04 first"
    problems: list[str] = field(default_factory=list)     # the static rules this unit's modules break
    todos: list[str] = field(default_factory=list)        # "attention.softmax": functions left TODO
    not_started: list[str] = field(default_factory=list)  # tests failing with NotImplementedError
    failed: list[FailedTest] = field(default_factory=list)  # the other failing tests

    @property
    def ok(self) -> bool:
        return self.total > 0 and self.passed == self.total and not self.problems


@dataclass
class CheckReport:
    target: str  # as the student named it: exercises, solutions, or a folder
    units: list[UnitCheck]
    collect_errors: list[tuple[str, str]]  # (test file, pytest's error)
    passed: int
    total: int

    @property
    def ok(self) -> bool:
        return not self.collect_errors and all(u.ok for u in self.units)


def run_check(course: Course, unit_id: str | None = None, target_spec: str = "exercises",
              verbose: bool = False) -> CheckReport:
    """Run the public tests of one unit (or every ready unit) and gather what each unit shows."""
    units = [course.unit(unit_id)] if unit_id else list(course.ready_units)
    target: Target = resolve_target(course, target_spec)
    one_thread()  # as under `llmfs grade`, so that both take the same time
    results, errors = _run_public_tests(course, [u.id for u in units], target_spec, verbose)
    # A unit that fails may fail for an earlier unit's bug: run the public tests of the
    # units it builds on too (quietly), to blame them first ("u05 uses your u04 ...").
    ready = {u.id for u in course.ready_units}
    failing_units = {r.unit for r in results if r.outcome != "passed" and r.unit}
    more = sorted({d for uid in failing_units for d in course.dependencies(uid) if d in ready} - {u.id for u in units})
    dep_results = _run_public_tests(course, more, target_spec, False)[0] if more else []
    failing: dict[str, int] = {}
    for r in [*results, *dep_results]:
        failing[r.unit or ""] = failing.get(r.unit or "", 0) + (r.outcome != "passed")

    package_modules = sorted({p.stem for d in target.dirs for p in d.glob("*.py")})
    rows = []
    for u in units:
        mine = [r for r in results if r.unit == u.id]
        passed = sum(r.outcome == "passed" for r in mine)
        failed = [r for r in mine if r.outcome != "passed"]
        not_started = [r for r in failed if r.exc_type == "NotImplementedError"]
        rows.append(UnitCheck(
            u.id, u.title, passed, len(mine),
            depends_note=dependency_note(course, u.id, failing) if passed < len(mine) else "",
            problems=[str(v) for v in unit_problems(course, u, target.module_file, package_modules)],
            todos=[f"{m}.{name}" for m in u.modules
                   for f in [target.module_file(m)] if f is not None for name in todo_functions(f)],
            not_started=[r.name for r in not_started],
            failed=[FailedTest(r.name, r.outcome, public_message(r)) for r in failed if r not in not_started]))
    return CheckReport(target.label, rows, list(errors), sum(r.outcome == "passed" for r in results), len(results))


def to_text(report: CheckReport, verbose: bool = False) -> str:
    """The self-check as the terminal shows it (with -v, pytest has shown the failures already)."""
    out = io.StringIO()
    w = out.write
    w(f"Checking {report.target} against the public tests\n\n")
    w(f"{'unit':<6} {'passed':>8}  title\n")
    for u in report.units:
        w(f"{u.id:<6} {u.passed:>3}/{u.total:<4}  {u.title}\n")
        if u.depends_note:
            w(f"       ! {u.depends_note}\n")
        if u.problems:
            w("       the grader would fail every test of this unit (docs: What a student module may use):\n")
            for v in u.problems:
                w(f"       ! {v}\n")
        if u.todos:
            w(f"       left TODO: {', '.join(u.todos)}\n")
        if not u.total:
            w("       (no public tests found for this unit)\n")
        if u.not_started:
            w(f"       {len(u.not_started)} failing with NotImplementedError (not written yet)\n")
        for t in [] if verbose else u.failed:
            # Student code wrote much of this text: show escapes, not a terminal's control codes.
            lines = printable(t.message, MAX_MESSAGE, multiline=True).strip().splitlines() or [t.status]
            w(f"       x {t.name}: {lines[0][:200]}\n")
            for line in lines[1:4]:
                w(f"           {line[:200]}\n")
    for nodeid, text in report.collect_errors:
        w(f"\nerror collecting {nodeid}:\n{text.strip()[-800:]}\n")
    w(f"\n{report.passed}/{report.total} tests passed" + ("" if report.ok else "; run with -v for the details") + "\n")
    return out.getvalue()


def check(course: Course, unit_id: str | None = None, target_spec: str = "exercises",
          verbose: bool = False, out=sys.stdout, html: str | Path | None = None) -> int:
    report = run_check(course, unit_id, target_spec, verbose)
    out.write(to_text(report, verbose))
    if html is not None:
        from .html_report import check_html

        try:
            Path(html).write_text(check_html(report), encoding="utf-8")
        except OSError as e:
            raise UserError(f"cannot write the HTML report to {html}: {e.strerror or e}") from None
        out.write(f"HTML report written to {html}\n")
    return 0 if report.ok else 1


def register(sub) -> None:
    p = sub.add_parser("check", help="run the public tests of one unit (or all) against your code",
                       description="Run the public tests against your code (exercises/ by default) and "
                                   "show, per unit, tests passed and the functions still left TODO. "
                                   "Exits 0 only if every selected test passes.")
    p.add_argument("unit", nargs="?", help="a unit id such as u04 (default: every unit)")
    p.add_argument("--target", default="exercises",
                   help="'exercises' (default), 'solutions', or a folder holding scratchllm/")
    p.add_argument("-v", "--verbose", action="store_true", help="show pytest's output with tracebacks")
    p.add_argument("--html", metavar="FILE",
                   help="also write the report as one self-contained web page to FILE (open it in a browser)")
    p.set_defaults(func=_main)


def _main(args) -> int:
    from .cli import course_from

    course = course_from(args)
    return check(course, args.unit, args.target, verbose=args.verbose, html=args.html)
