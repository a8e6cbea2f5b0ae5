"""`llmfs check [UNIT]`: a student's self-check against the public tests.

Runs the public tests of one unit (or of every ready unit) against a target
(exercises/ by default), then prints, per unit, tests passed out of total,
the functions still left TODO, and every line the grader's static rules
find (`grader.forbid.unit_problems`, the same scan `llmfs grade` runs):
such a unit would score nothing when graded. Exit status 0 only if every
selected test passed and no rule is broken.
"""

from __future__ import annotations

import sys

from .course import Course
from .forbid import unit_problems
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


def check(course: Course, unit_id: str | None = None, target_spec: str = "exercises",
          verbose: bool = False, out=sys.stdout) -> int:
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

    print(f"Checking {target.label} against the public tests\n", file=out)
    print(f"{'unit':<6} {'passed':>8}  title", file=out)
    all_ok = not errors
    package_modules = sorted({p.stem for d in target.dirs for p in d.glob("*.py")})
    for u in units:
        mine = [r for r in results if r.unit == u.id]
        passed = sum(r.outcome == "passed" for r in mine)
        problems = unit_problems(course, u, target.module_file, package_modules)
        all_ok &= bool(mine) and passed == len(mine) and not problems
        print(f"{u.id:<6} {passed:>3}/{len(mine):<4}  {u.title}", file=out)
        note = dependency_note(course, u.id, failing) if passed < len(mine) else ""
        if note:
            print(f"       ! {note}", file=out)
        if problems:
            print("       the grader would fail every test of this unit (docs: What a student module may use):",
                  file=out)
            for v in problems:
                print(f"       ! {v}", file=out)
        todos = [f"{m}.{name}" for m in u.modules
                 for f in [target.module_file(m)] if f is not None for name in todo_functions(f)]
        if todos:
            print(f"       left TODO: {', '.join(todos)}", file=out)
        if not mine:
            print("       (no public tests found for this unit)", file=out)
        failed = [r for r in mine if r.outcome != "passed"]
        not_started = [r for r in failed if r.exc_type == "NotImplementedError"]
        if not_started:
            print(f"       {len(not_started)} failing with NotImplementedError (not written yet)", file=out)
        for r in failed:
            if r not in not_started and not verbose:
                # What differs, where and with what values, and the hint: the public message in full.
                lines = public_message(r).strip().splitlines() or [r.outcome]
                print(f"       x {r.name}: {lines[0][:200]}", file=out)
                for line in lines[1:4]:
                    print(f"           {line[:200]}", file=out)
    for nodeid, text in errors:
        print(f"\nerror collecting {nodeid}:\n{text.strip()[-800:]}", file=out)
    total = len(results)
    passed = sum(r.outcome == "passed" for r in results)
    print(f"\n{passed}/{total} tests passed" + ("" if all_ok else "; run with -v for the details"), file=out)
    return 0 if all_ok else 1


def register(sub) -> None:
    p = sub.add_parser("check", help="run the public tests of one unit (or all) against your code",
                       description="Run the public tests against your code (exercises/ by default) and "
                                   "show, per unit, tests passed and the functions still left TODO. "
                                   "Exits 0 only if every selected test passes.")
    p.add_argument("unit", nargs="?", help="a unit id such as u04 (default: every unit)")
    p.add_argument("--target", default="exercises",
                   help="'exercises' (default), 'solutions', or a folder holding scratchllm/")
    p.add_argument("-v", "--verbose", action="store_true", help="show pytest's output with tracebacks")
    p.set_defaults(func=_main)


def _main(args) -> int:
    from .cli import course_from

    course = course_from(args)
    return check(course, args.unit, args.target, verbose=args.verbose)
