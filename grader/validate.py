"""`llmfs validate [--unit uNN]`: are the course's tests trustworthy?

For every ready unit in course.toml (or the one named), it checks that

- every module the unit names exists in exercises/, and in solutions/
  wherever the exercise module has TODOs;
- every public and every hidden test passes on the reference (the
  ``solutions`` target);
- every public and every hidden test fails on the stubs (the ``exercises``
  target) with NotImplementedError: not by passing (a test that cannot
  fail), not with an import, fixture or assertion error of its own;
- the points add up: a ready unit has points > 0 and at least one test, test
  weights are positive, and the tests' shares sum to the course's maximum;
- test files reach code only through the fixtures: hidden tests reach the
  reference only through ``reference``, never by importing solutions/ or
  ``scratchllm_reference``, reading files under solutions/ or editing
  ``sys.path``; public tests never use ``reference`` at all (a student
  release has no solutions), and no test imports the student package itself.

Tests run with pytest in a child process per target (``python -m
grader.results``), so the reference and the stubs never share a process.
It prints a table per unit, then the problems found; exit status 0 if there
are none, 1 otherwise.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .course import Course, Unit, unit_of_test_file
from .errors import UserError
from .forbid import unit_problems
from .progress import read_progress
from .pytest_plugin import REFERENCE_NAME
from .targets import resolve_target
from .todos import read_source, todo_functions

# ---------------------------------------------------------------- test files


def public_test_files(course: Course) -> list[Path]:
    return _test_files(course.public_tests)


def hidden_test_files(course: Course) -> list[Path]:
    return _test_files(course.hidden_tests)


def _test_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("test_*.py") if "__pycache__" not in p.parts)


def unit_of_file(path: Path | str) -> str | None:
    return unit_of_test_file(Path(path).name)


def _rel(course: Course, path: Path) -> str:
    try:
        return path.resolve().relative_to(course.root.resolve()).as_posix()
    except ValueError:
        return str(path)


# ---------------------------------------------------------------- scanning test files

_SOLUTIONS_PATH = re.compile(r"(^|[/\\])solutions([/\\]|$)")
_IMPORTING_CALLS = {"import_module", "__import__", "spec_from_file_location", "run_path", "run_module",
                    "SourceFileLoader", "find_spec", "load_source"}
_SYS_ATTRS = {"path", "modules", "meta_path", "path_hooks", "path_importer_cache"}
_TARGET_LOADERS = {"REFERENCE_NAME", "load_package", "resolve_target", "set_student_runner_factory"}


def _docstring_nodes(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                ids.add(id(first.value))
    return ids


def _call_name(call: ast.Call) -> str | None:
    f = call.func
    if isinstance(f, ast.Name):
        return f.id
    if isinstance(f, ast.Attribute):
        return f.attr
    return None


def scan_test_file(path: Path, *, public: bool, package: str = "scratchllm") -> list[tuple[int, str]]:
    """(line, problem) for each way the test file reaches code around the fixtures.

    A lint against honest mistakes, not a sandbox: hidden tests are written
    by instructors. It parses the file and never imports it.
    """
    try:
        tree = ast.parse(read_source(path), filename=str(path))
    except SyntaxError as e:
        return [(e.lineno or 0, f"syntax error: {e.msg}")]
    reference_roots = {"solutions", REFERENCE_NAME}
    student_roots = {package, "exercises"}
    docstrings = _docstring_nodes(tree)
    found: list[tuple[int, str]] = []

    def module_problem(name: str) -> str | None:
        root = name.split(".")[0]
        if root in reference_roots:
            return (f"imports the reference ({name}) directly; public tests must not use the reference "
                    f"at all (a student release has no solutions)" if public else
                    f"imports the reference ({name}) directly; use the `reference` fixture")
        if root in student_roots:
            return (f"imports the student package ({name}) directly; reach it through the `student` "
                    f"fixture (probes take `pkg`)")
        return None

    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            for alias in node.names:
                p = module_problem(alias.name)
                if p:
                    found.append((line, p))
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                p = module_problem(node.module)
                if p:
                    found.append((line, p))
                if node.module == "sys" and any(a.name in _SYS_ATTRS for a in node.names):
                    found.append((line, "imports sys.path or sys.modules; tests must not change what is imported"))
                if node.module.split(".")[0] == "grader" and any(a.name in _TARGET_LOADERS for a in node.names):
                    found.append((line, "loads a target itself; use the `student` and `reference` fixtures"))
        elif isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id == "sys" and node.attr in _SYS_ATTRS:
                found.append((line, f"uses sys.{node.attr}; tests must not change what is imported"))
        elif isinstance(node, ast.Call):
            name = _call_name(node)
            literal = next((a.value for a in node.args if isinstance(a, ast.Constant)
                            and isinstance(a.value, str)), None)
            if name in _IMPORTING_CALLS and literal:
                p = module_problem(literal)
                if p:
                    found.append((line, p.replace("imports", f"loads (with {name})", 1)))
            if name == "addsitedir":
                found.append((line, "calls site.addsitedir; tests must not change what is imported"))
            if public and name in ("getfixturevalue", "usefixtures") and any(
                    isinstance(a, ast.Constant) and a.value == "reference" for a in node.args):
                found.append((line, "uses the `reference` fixture; public tests must not (a student "
                                    "release has no solutions)"))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and public:
            params = [a.arg for a in (*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs)]
            if "reference" in params:
                found.append((line, f"{node.name} uses the `reference` fixture; public tests must not "
                                    f"(a student release has no solutions)"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            if _SOLUTIONS_PATH.search(node.value) or node.value == "solutions":
                found.append((line, f"refers to solutions/ ({node.value!r}); reach the reference only "
                                    f"through the `reference` fixture"))
            elif REFERENCE_NAME in node.value:
                found.append((line, f"names {REFERENCE_NAME!r}; reach the reference only through the "
                                    f"`reference` fixture"))
            elif node.value == "PYTHONPATH":
                found.append((line, "changes PYTHONPATH; tests must not change what is imported"))
    return sorted(set(found))


# ---------------------------------------------------------------- running tests


@dataclass
class Run:
    """What one pytest child process reported."""

    label: str
    results: list[dict] = field(default_factory=list)
    collect_errors: list[tuple[str, str]] = field(default_factory=list)
    failure: str | None = None  # the child itself failed
    seconds: float = 0.0


class Progress:
    """One line of progress on a terminal, over every pytest child running at once;
    elsewhere, a line as each child finishes."""

    def __init__(self, stream, enabled: bool = True):
        self.stream = stream
        self.enabled = enabled
        self.tty = enabled and hasattr(stream, "isatty") and stream.isatty()
        self.start = time.monotonic()
        self.counts: dict[str, tuple[int, int]] = {}  # run label -> (done, total)
        self.running: set[str] = set()
        self._lock = threading.Lock()
        self._last = 0.0

    def begin(self, label: str) -> None:
        with self._lock:
            self.counts[label] = (0, 0)
            self.running.add(label)
            self._draw(force=True)

    def update(self, label: str, done: int, total: int) -> None:
        with self._lock:
            self.counts[label] = (done, total)
            self._draw()

    def _draw(self, force: bool = False) -> None:
        if not self.tty:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        done = sum(d for d, _ in self.counts.values())
        total = sum(t for _, t in self.counts.values())
        self.stream.write(f"\r\x1b[Kvalidate: {done}/{total} tests, {len(self.running)} pytest runs going, "
                          f"{now - self.start:.0f}s")
        self.stream.flush()

    def end(self, label: str, seconds: float) -> None:
        with self._lock:
            self.running.discard(label)
            if not self.enabled:
                return
            done, total = self.counts[label]
            if self.tty:
                self.stream.write("\r\x1b[K")
            print(f"validate: {label}: {done}/{total} tests run in {seconds:.1f}s", file=self.stream, flush=True)
            self._draw(force=True)

    def close(self) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def run_tests(course: Course, files: list[Path], target: str, progress: Progress, label: str) -> Run:
    """Run `files` with pytest on `target` in a child process."""
    run = Run(label)
    cmd = [sys.executable, "-m", "grader.results", "--hidden-dir", str(course.hidden_tests),
           *map(str, files), "--target", target, "-p", "grader.progress", "--rootdir", str(course.root),
           "--course", str(course.path)]
    pyproject = course.root / "pyproject.toml"
    if pyproject.is_file():
        cmd += ["-c", str(pyproject)]
    # One torch thread per child, as under `llmfs grade`: children running side by side
    # then share the cores instead of fighting over them.
    env = {**os.environ, "PYTHONIOENCODING": "utf-8", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("LLMFS_TARGET", None)
    start = time.monotonic()
    progress.begin(label)
    proc = subprocess.Popen(cmd, cwd=course.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None and proc.stderr is not None
    stdout, stderr = proc.stdout, proc.stderr
    other: list[str] = []

    def pump() -> None:
        for raw in stderr:
            line = raw.decode("utf-8", "replace")
            step = read_progress(line)
            if step:
                progress.update(label, *step)
            else:
                other.append(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    out = stdout.read()
    proc.wait()
    reader.join()
    run.seconds = time.monotonic() - start
    progress.end(label, run.seconds)
    try:
        data = json.loads(out.decode("utf-8"))
    except ValueError:
        tail = "".join(other).strip()[-1500:] or out.decode("utf-8", "replace").strip()[-1500:]
        run.failure = f"pytest did not finish on {label} (exit {proc.returncode}):\n{tail}"
        return run
    run.results = data["results"]
    run.collect_errors = [tuple(e) for e in data["collect_errors"] if e[0] != "pytest"]
    usage = [text for nodeid, text in data["collect_errors"] if nodeid == "pytest"]
    if usage:  # pytest refused to start (a bad option, a target it cannot load)
        run.failure = f"pytest could not run on {label}: {_last_line(usage[0])}"
    return run


TARGETS = (("solutions", "the reference (solutions)"), ("exercises", "the stubs (exercises)"))


def run_both(course: Course, files: list[Path], progress: Progress, jobs: int) -> tuple[Run, Run]:
    """Every file on the reference and on the stubs, `jobs` pytest children at a time, merged
    into one Run per target. The reference runs a child per file (a unit's hidden tests can
    train models for minutes), the stubs a child per unit (they fail at once); the later
    units go first, since they take longest."""
    by_unit: dict[str, list[Path]] = {}
    for f in files:
        by_unit.setdefault(unit_of_file(f) or "", []).append(f)
    order = sorted(by_unit.items(), reverse=True)
    (ref_target, ref_label), (stub_target, stub_label) = TARGETS
    tasks = [(ref_target, f"{ref_label}, {f.name}", [f]) for _, fs in order for f in fs]
    tasks += [(stub_target, f"{stub_label}, {uid or 'no unit'}", fs) for uid, fs in order]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        runs = list(pool.map(lambda t: (t[0], run_tests(course, t[2], t[0], progress, t[1])), tasks))
    progress.close()
    merged = {target: Run(label) for target, label in TARGETS}
    for target, run in runs:
        whole = merged[target]
        whole.results += run.results
        whole.collect_errors += run.collect_errors
        whole.seconds += run.seconds
        if run.failure:
            whole.failure = f"{whole.failure}\n{run.failure}" if whole.failure else run.failure
    return merged["solutions"], merged["exercises"]


# ---------------------------------------------------------------- checking


@dataclass
class UnitCheck:
    unit: Unit
    public: int = 0
    hidden: int = 0
    ref_passed: int = 0
    stub_failed: int = 0  # failed with NotImplementedError
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def tests(self) -> int:
        return self.public + self.hidden


def _first_line(text: str | None, limit: int = 200) -> str:
    lines = (text or "").strip().splitlines()
    return (lines[0] if lines else "")[:limit]


def _solution_todos(path: Path) -> list[str]:
    """Functions of a reference module that still raise a unit's NotImplementedError("uNN: ...")."""
    try:
        tree = ast.parse(read_source(path))
    except SyntaxError as e:
        return [f"(syntax error on line {e.lineno})"]
    left = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args:
            name = node.exc.func.id if isinstance(node.exc.func, ast.Name) else None
            arg = node.exc.args[0]
            if name == "NotImplementedError" and isinstance(arg, ast.Constant) and \
                    isinstance(arg.value, str) and re.match(r"u\d\d\b", arg.value):
                left.append(f"line {node.lineno}: {arg.value}")
    return left


def check_modules(course: Course, check: UnitCheck) -> None:
    pkg = course.package
    for m in check.unit.modules:
        stub = course.exercises / pkg / f"{m}.py"
        sol = course.solutions / pkg / f"{m}.py"
        if not stub.is_file():
            check.problems.append(f"module {m!r}: {_rel(course, stub)} is missing")
            continue
        todos = todo_functions(stub)
        if todos and not sol.is_file():
            check.problems.append(f"module {m!r}: the stub has TODOs ({', '.join(todos[:3])}"
                                  f"{', ...' if len(todos) > 3 else ''}) but {_rel(course, sol)} is missing")
        if not todos and sol.is_file():
            check.problems.append(f"module {m!r}: {_rel(course, sol)} exists but the stub has no TODO left; "
                                  f"is the stub already solved?")
        if sol.is_file():
            for left in _solution_todos(sol):
                check.problems.append(f"module {m!r}: the reference still raises NotImplementedError ({left})")
    for spec, label in (("solutions", "reference"), ("exercises", "stub")):  # grader.forbid's static rules
        target = resolve_target(course, spec)
        names = sorted({p.stem for d in target.dirs for p in d.glob("*.py")})
        for v in unit_problems(course, check.unit, target.module_file, names):
            check.problems.append(f"the {label} breaks a rule students are held to: {v}")


def check_scans(course: Course, check: UnitCheck, public: list[Path], hidden: list[Path]) -> None:
    for files, is_public in ((public, True), (hidden, False)):
        for f in files:
            for line, problem in scan_test_file(f, public=is_public, package=course.package):
                check.problems.append(f"{_rel(course, f)}:{line}: {problem}")


def check_results(course: Course, check: UnitCheck, ref: Run, stubs: Run) -> None:
    uid = check.unit.id
    on_ref = {r["nodeid"]: r for r in ref.results if r["unit"] == uid}
    on_stubs = {r["nodeid"]: r for r in stubs.results if r["unit"] == uid}
    nodeids = list(dict.fromkeys([*on_ref, *on_stubs]))
    either = {n: on_ref.get(n) or on_stubs[n] for n in nodeids}
    check.public = sum(1 for n in nodeids if not either[n]["hidden"])
    check.hidden = len(nodeids) - check.public
    for n in nodeids:
        kind = "hidden" if (on_ref.get(n) or on_stubs[n])["hidden"] else "public"
        r = on_ref.get(n)
        if r is None:
            if not ref.failure:
                check.problems.append(f"{n}: not collected on the reference")
        elif r["outcome"] == "passed":
            check.ref_passed += 1
        else:
            what = {"failed": "fails", "error": "errors", "skipped": "is skipped"}.get(r["outcome"], r["outcome"])
            check.problems.append(f"{kind} test {what} on the reference: {n}: "
                                  f"{r['exc_type'] or ''}{': ' if r['exc_type'] else ''}{_first_line(r['message'])}")
        s = on_stubs.get(n)
        if s is None:
            if not stubs.failure:
                check.problems.append(f"{n}: not collected on the stubs")
        elif s["outcome"] == "failed" and s["exc_type"] == "NotImplementedError":
            check.stub_failed += 1
        elif s["outcome"] == "passed":
            check.problems.append(f"{kind} test passes on the stubs, so it cannot fail: {n} "
                                  f"(it does not exercise the student's code)")
        elif s["outcome"] == "skipped":
            check.problems.append(f"{kind} test is skipped on the stubs: {n}")
        else:
            how = "with a setup/fixture error" if s["outcome"] == "error" else f"with {s['exc_type']}"
            check.problems.append(f"{kind} test fails on the stubs {how}, not NotImplementedError: {n}: "
                                  f"{_first_line(s['message'])}")
        check.seconds += (r or {}).get("duration", 0.0) + (s or {}).get("duration", 0.0)
        weight = either[n]["weight"]
        if not weight > 0:
            check.problems.append(f"{n}: weight must be positive, got {weight}")
    for run in (ref, stubs):
        for nodeid, text in run.collect_errors:
            if unit_of_file(nodeid.split("::")[0]) == uid:
                check.problems.append(f"cannot collect {nodeid} on {run.label}: {_last_line(text)}")


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "(no message)"


def check_points(course: Course, checks: list[UnitCheck], ref: Run, whole_course: bool) -> list[str]:
    problems = []
    shares = 0.0
    for c in checks:
        if c.unit.ready and not c.unit.points > 0:
            c.problems.append(f"a ready unit must be worth points > 0 (course.toml says {c.unit.points:g})")
        if c.tests == 0:
            c.problems.append("has no tests: a unit with zero tests cannot be graded")
            continue
        if c.public == 0:
            c.problems.append("has no public tests: students cannot check themselves")
        if c.hidden == 0:
            c.warnings.append("has no hidden tests: `llmfs grade` will use the public tests only")
        weights = [r["weight"] for r in ref.results if r["unit"] == c.unit.id]
        total = sum(w for w in weights if w > 0)
        if total > 0 and c.unit.ready:
            shares += sum(c.unit.points * w / total for w in weights if w > 0)
    if whole_course and abs(shares - course.max_score) > 1e-6 * max(1.0, course.max_score):
        problems.append(f"the tests' shares of the points add up to {shares:g}, but the course's maximum "
                        f"is {course.max_score:g}")
    return problems


def check_course_files(course: Course) -> list[str]:
    """Course-wide: every test file and every reference module belongs to a unit."""
    problems = []
    known = {u.id for u in course.units}
    for f in [*public_test_files(course), *hidden_test_files(course)]:
        uid = unit_of_file(f)
        if uid is None:
            problems.append(f"{_rel(course, f)}: cannot tell which unit it belongs to; "
                            f"name it test_uNN_<slug>.py")
        elif uid not in known:
            problems.append(f"{_rel(course, f)}: unit {uid} is not in course.toml")
    sol = course.solutions / course.package
    if sol.is_dir():
        for f in sorted(sol.glob("*.py")):
            if f.stem != "__init__" and course.unit_of_module(f.stem) is None:
                problems.append(f"{_rel(course, f)}: module {f.stem!r} belongs to no unit in course.toml")
    return problems


# ---------------------------------------------------------------- the command


def validate(course: Course, unit_id: str | None = None, out=sys.stdout, err=sys.stderr,
             progress: bool = True, jobs: int | None = None) -> int:

    if not (course.solutions / course.package).is_dir():
        raise UserError(f"validate needs the reference in {course.solutions / course.package}; "
                        f"run it in the instructor's course, not in a student release")
    units = [course.unit(unit_id)] if unit_id else list(course.ready_units)
    checks = [UnitCheck(u) for u in units]
    wanted = {u.id for u in units}
    course_problems: list[str] = [] if unit_id else check_course_files(course)
    notes = []
    if unit_id and not units[0].ready:
        notes.append(f"{unit_id} is planned (not ready); validating it anyway")
    public = [f for f in public_test_files(course) if unit_of_file(f) in wanted]
    hidden = [f for f in hidden_test_files(course) if unit_of_file(f) in wanted]
    for c in checks:
        check_modules(course, c)
        check_scans(course, c, [f for f in public if unit_of_file(f) == c.unit.id],
                    [f for f in hidden if unit_of_file(f) == c.unit.id])
    if not unit_id:
        # Helpers of the hidden suite (conftest.py, shared modules) are scanned too.
        for f in sorted(course.hidden_tests.rglob("*.py")) if course.hidden_tests.is_dir() else []:
            if "__pycache__" not in f.parts and not f.name.startswith("test_"):
                course_problems += [f"{_rel(course, f)}:{line}: {p}"
                                    for line, p in scan_test_file(f, public=False, package=course.package)]

    bar = Progress(err, enabled=progress)
    files = public + hidden
    started = time.monotonic()
    if files:
        ref, stubs = run_both(course, files, bar, jobs or os.cpu_count() or 1)
    else:
        ref, stubs = Run("the reference"), Run("the stubs")
    for run in (ref, stubs):
        if run.failure:
            course_problems.append(run.failure)
        for nodeid, text in run.collect_errors:
            if unit_of_file(nodeid.split("::")[0]) not in wanted:
                course_problems.append(f"cannot collect {nodeid} on {run.label}: {_last_line(text)}")
        for r in run.results:
            if r["unit"] not in wanted:
                course_problems.append(f"{r['nodeid']}: belongs to unit {r['unit']}, which is not being "
                                       f"validated with the file it is in")
    for c in checks:
        check_results(course, c, ref, stubs)
    course_problems += check_points(course, checks, ref, whole_course=not unit_id)
    report(checks, course_problems, notes, time.monotonic() - started, out)
    return 1 if course_problems or any(c.problems for c in checks) else 0


def report(checks: list[UnitCheck], course_problems: list[str], notes: list[str], seconds: float, out) -> None:
    print(f"{'unit':<5} {'public':>6} {'hidden':>6}  {'pass on reference':>17}  {'fail on stubs':>13}  "
          f"{'time':>7}  title", file=out)
    for c in checks:
        ref = f"{c.ref_passed}/{c.tests}"
        stub = f"{c.stub_failed}/{c.tests}"
        mark = "ok" if not c.problems else "FAIL"
        print(f"{c.unit.id:<5} {c.public:>6} {c.hidden:>6}  {ref:>17}  {stub:>13}  {c.seconds:>6.1f}s  "
              f"{c.unit.title}  [{mark}]", file=out)
    for note in notes:
        print(f"note: {note}", file=out)
    warnings = [(c.unit.id, w) for c in checks for w in c.warnings]
    if warnings:
        print("\nwarnings:", file=out)
        for uid, w in warnings:
            print(f"  {uid}: {w}", file=out)
    problems = [(c.unit.id, p) for c in checks for p in c.problems] + [("course", p) for p in course_problems]
    if problems:
        print(f"\nproblems ({len(problems)}):", file=out)
        for where, p in problems:
            print(f"  {where}: {p}", file=out)
    total = sum(c.tests for c in checks)
    verdict = "OK" if not problems else f"{len(problems)} problem{'s' * (len(problems) != 1)}"
    print(f"\nvalidate: {verdict} ({len(checks)} unit{'s' * (len(checks) != 1)}, {total} tests, "
          f"{seconds:.1f}s)", file=out, flush=True)


def register(sub) -> None:
    p = sub.add_parser("validate", help="check that every test passes on the reference and fails on the stubs",
                       description="Check the course itself: modules exist, every public and hidden test "
                                   "passes on the reference and fails on the stubs with NotImplementedError, "
                                   "the points add up, and tests reach the reference only through the "
                                   "`reference` fixture. Exits 0 if no problem is found, 1 otherwise.")
    p.add_argument("--unit", metavar="UNIT", help="validate one unit, such as u04 (default: every ready unit)")
    p.add_argument("--no-progress", action="store_true", help="do not show progress on stderr")
    p.add_argument("--jobs", type=int, metavar="N", default=None,
                   help="pytest processes to run at once, one per unit and target (default: the number of CPUs)")
    p.set_defaults(func=_main)


def _main(args) -> int:
    from .cli import course_from

    course = course_from(args)
    if args.jobs is not None and args.jobs < 1:
        raise UserError(f"--jobs {args.jobs}: give a number of processes, 1 or more")
    return validate(course, args.unit, progress=not args.no_progress, jobs=args.jobs)
