"""`llmfs export nbgrader COURSE_DIR`: the course as an nbgrader course.

One notebook per unit, ``source/<unit>/<unit>.ipynb``, and an
``nbgrader_config.py``. A notebook holds, in order:

1. a short introduction (the unit's title, its reading, how it is graded);
2. a locked setup cell that makes a fresh, private folder for this kernel's
   modules (``LLMFS_DIR``);
3. one solution cell per module the unit's tests run (the modules of the
   units it depends on first, then its own): ``%%writefile`` writes the cell
   to ``LLMFS_DIR/scratchllm/<module>.py``; the cell is *not* run in the
   kernel. Its text is the exercises stub with ``### BEGIN SOLUTION`` /
   ``### END SOLUTION`` around the reference's code, so
   ``nbgrader generate_assignment`` gives students the stub (its docstrings,
   TODO hints and ``raise NotImplementedError``);
4. one locked, autograded cell worth the unit's points in course.toml. It runs
   ``python -m grader --course <course.toml> grade LLMFS_DIR --unit U --format
   json`` in a subprocess (so the student's code runs in the grader's sandbox,
   as under ``llmfs grade``) and its value is the unit's score, which nbgrader
   records as partial credit (``nbgrader.utils.determine_grade``).

nbgrader's traps, and what the export does about each:

- autograde copies every non-notebook file of ``source/<unit>/`` over the
  student's submission: the graded code is only ever what the notebook's own
  cells wrote into the kernel's fresh ``LLMFS_DIR``, never a file beside the
  notebook; ``scratchllm`` is also in ``CourseDirectory.ignore``, so a module
  left in source/ is neither released nor copied;
- nbgrader's cell timeout (30 s) is far shorter than grading: the config sets
  ``Execute.timeout`` from the units' ``submission_timeout_s``, with a margin,
  and the grading subprocess has its own timeout inside it;
- a grade cell with no output and no error gets *full* credit: the grade
  cell's only output on success is its value, every failure (no module
  written, ``llmfs grade`` crashing or timing out, a report that is not JSON or
  not about this unit) raises, which scores 0, and a kernel that dies stops
  nbgrader's execution before any grade is saved (the instructor sees the
  error; nothing is recorded as a pass).

The export writes ``.llmfs-export.json`` (what it wrote, with digests): a
later export replaces those files when they are unchanged, refuses when the
instructor changed one (``--force`` keeps a copy), and never touches anything
else in COURSE_DIR (the gradebook, submissions, other assignments).
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import sys
import tempfile
import textwrap
from pathlib import Path

from ..course import Course, Unit
from ..errors import UserError
from ..todos import read_source

MANIFEST = ".llmfs-export.json"
CONFIG = "nbgrader_config.py"
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
CODE_STUB = "# YOUR CODE HERE"   # what generate_assignment leaves in place of a solution region
GRADE_MARGIN_S = 60     # the grading subprocess's timeout: submission_timeout_s + this
CELL_MARGIN_S = 120     # nbgrader's cell timeout: submission_timeout_s + this (> the subprocess's)


# ---------------------------------------------------------------- solution regions


def _docstring_free(body: list[ast.stmt]) -> list[ast.stmt]:
    first = body[0] if body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return body[1:]
    return body


def _is_todo_raise(stmt: ast.stmt) -> bool:
    if not isinstance(stmt, ast.Raise) or stmt.exc is None:
        return False
    exc = stmt.exc.func if isinstance(stmt.exc, ast.Call) else stmt.exc
    return isinstance(exc, ast.Name) and exc.id == "NotImplementedError"


def _defs(tree: ast.AST) -> dict[str, ast.AST]:
    """Qualified name -> function or class node, for module- and class-level definitions."""
    found: dict[str, ast.AST] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                found[prefix + child.name] = child
                if isinstance(child, ast.ClassDef):
                    visit(child, prefix + child.name + ".")

    visit(tree, "")
    return found


def _segment(lines: list[str], first: ast.stmt, last: ast.stmt) -> list[str]:
    """The source lines from `first`'s first line (decorators included) to `last`'s last."""
    start = min([first.lineno] + [d.lineno for d in getattr(first, "decorator_list", [])])
    return lines[start - 1:last.end_lineno]


def _reindent(block: list[str], indent: str) -> list[str]:
    text = textwrap.dedent("\n".join(block))
    return [indent + line if line.strip() else "" for line in text.split("\n")]


def _region(block: list[str], indent: str) -> list[str]:
    return [indent + BEGIN, *_reindent(block, indent), indent + END]


def solution_text(stub: str, reference: str, name: str = "module") -> str:
    """The stub's text with the reference's code in solution regions.

    Each function whose stub body ends in ``raise NotImplementedError(...)``
    gets, just before that raise, a region holding the reference body (less
    the docstring and the statements the stub already gives), ending in
    ``return`` so that the stub's raise is never reached. Definitions and
    statements only the reference has (its private helpers) go in regions at
    module level, before the stub's definition that follows them in the
    reference. Everything else is the stub's, so that nbgrader's student
    version (each region replaced by ``# YOUR CODE HERE``) is the stub.
    """
    s_tree, r_tree = ast.parse(stub), ast.parse(reference)
    s_lines, r_lines = stub.split("\n"), reference.split("\n")
    s_defs, r_defs = _defs(s_tree), _defs(r_tree)
    insert: dict[int, list[str]] = {}   # stub line number (1-based) -> lines to put before it

    for qual, fn in s_defs.items():
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        body = _docstring_free(fn.body)
        if not body or not _is_todo_raise(body[-1]):
            continue
        ref = r_defs.get(qual)
        if not isinstance(ref, (ast.FunctionDef, ast.AsyncFunctionDef)):
            raise UserError(f"{name}: {qual} is left TODO in the stub but the reference has no such function")
        given = [ast.dump(s) for s in body[:-1]]
        r_body = _docstring_free(ref.body)
        if [ast.dump(s) for s in r_body[:len(given)]] != given:
            raise UserError(f"{name}: {qual}: the stub gives code the reference does not start with; "
                            f"make the reference begin with the stub's given statements")
        todo = r_body[len(given):]
        raise_stmt = body[-1]
        indent = s_lines[raise_stmt.lineno - 1][:raise_stmt.col_offset]
        block = _segment(r_lines, todo[0], todo[-1]) if todo else []
        if not todo or not isinstance(todo[-1], (ast.Return, ast.Raise)):
            block.append(" " * todo[0].col_offset + "return" if todo else "return")
        insert.setdefault(raise_stmt.lineno, []).extend(_region(block, indent))

    # The reference's own module-level code: helpers, constants, imports the stub lacks.
    s_top = {ast.dump(n) for n in s_tree.body if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                       ast.ClassDef))}
    s_names = {n.name for n in s_tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    pending: list[ast.stmt] = []
    r_body = _docstring_free(r_tree.body)
    for node in r_body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            extra = node.name not in s_names
        else:
            extra = ast.dump(node) not in s_top
        if extra:
            pending.append(node)
            continue
        if pending and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            at = s_defs[node.name]
            line = min([at.lineno] + [d.lineno for d in at.decorator_list])  # type: ignore[attr-defined]
            insert.setdefault(line, [])[:0] = _module_regions(r_lines, pending)
            pending = []
    out: list[str] = []
    for i, line in enumerate(s_lines, start=1):
        out.extend(insert.get(i, []))
        out.append(line)
    if pending:
        out += _module_regions(r_lines, pending)
    text = "\n".join(out)
    ast.parse(text)  # the source version must be valid Python
    return text.rstrip("\n") + "\n"


def _module_regions(r_lines: list[str], nodes: list[ast.stmt]) -> list[str]:
    """One region at module level; its blank lines inside, so that outside it the stub is unchanged."""
    block: list[str] = []
    for node in nodes:
        block += _segment(r_lines, node, node) + ["", ""]
    return _region(block, "")


# ---------------------------------------------------------------- notebooks


def _lines(text: str) -> list[str]:
    """A cell's source as nbformat stores it: lines keeping their newlines."""
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def _cell(kind: str, text: str, grade_id: str, *, solution=False, grade=False, locked=True, points=None) -> dict:
    meta: dict = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3,
                  "solution": solution, "task": False}
    if points is not None:
        meta["points"] = points
    cell: dict = {"cell_type": kind, "metadata": {"nbgrader": meta}, "source": _lines(text)}
    if locked:
        cell["metadata"].update(deletable=False, editable=False)
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def reading_path(course: Course, unit: Unit) -> str | None:
    found = sorted((course.exercises / "units").glob(f"{unit.id}_*/README.md"))
    return found[0].relative_to(course.root).as_posix() if found else None


def unit_modules(course: Course, unit: Unit) -> list[tuple[str, str]]:
    """(unit id, module) for every module the unit's tests run: its dependencies' first."""
    out = [(d, m) for d in course.dependencies(unit.id) for m in course.unit(d).modules]
    return out + [(unit.id, m) for m in unit.modules]


def grade_timeout(unit: Unit) -> int:
    return int(unit.limits.submission_timeout_s) + GRADE_MARGIN_S


SETUP = '''\
# Setup (run this first): a fresh folder for the modules the cells below write.
# They are graded from there, never from files beside this notebook.
import os
import tempfile

LLMFS_DIR = tempfile.mkdtemp(prefix="llmfs-{unit}-")
os.makedirs(os.path.join(LLMFS_DIR, "{package}"))
'''

GRADE = '''\
# Grades the modules written above with `llmfs grade` (its sandbox, not this
# kernel). The cell's value is your score for {unit}; nbgrader records it.
# Anything that goes wrong raises an error, which scores 0.
import json
import os
import subprocess
import sys

_python = {python!r} if os.path.exists({python!r}) else sys.executable
_modules = {modules!r}
if not os.path.isfile({course!r}):
    raise RuntimeError("this cell grades on the instructor's machine ({course} is not here); "
                       "to check your work at home, run `llmfs check {unit}` in the course kit")
for _m in _modules:
    if not os.path.isfile(os.path.join(LLMFS_DIR, {package!r}, _m + ".py")):
        raise RuntimeError(f"{{_m}}.py was not written: run its cell (the one starting %%writefile) first")
_run = subprocess.run([_python, "-m", "grader", "--course", {course!r}, "grade", LLMFS_DIR,
                       "--unit", {unit!r}, "--format", "json"],
                      capture_output=True, timeout={timeout}, stdin=subprocess.DEVNULL)
if _run.returncode not in (0, 1):
    raise RuntimeError("llmfs grade failed (exit status %d): %s"
                       % (_run.returncode, _run.stderr.decode("utf-8", "replace")[-2000:]))
_report = json.loads(_run.stdout.decode("utf-8"))
_units = [u for u in _report["units"] if u["id"] == {unit!r}]
if _report.get("schema") != 1 or len(_units) != 1 or float(_units[0]["max_score"]) != {points!r}:
    raise RuntimeError("llmfs grade's report does not grade {unit} out of {points}")
_score = float(_units[0]["score"])
if not 0.0 <= _score <= {points!r}:
    raise RuntimeError(f"llmfs grade gave {{_score}}, outside 0..{points}")
print(f"{unit}: {{_score:g}} / {points:g} ({{_units[0]['passed']}}/{{_units[0]['total']}} tests passed)")
if _report.get("error"):
    print(_report["error"])
_failed = [_t for _t in _report["tests"] if _t["unit"] == {unit!r} and _t["status"] != "passed"]
for _t in _failed[:20]:
    _where = "hidden" if _t["hidden"] else "public"
    print(f"  {{_where}} {{_t['name']}}: " + ((_t["message"] or _t["status"]).strip().splitlines() or [""])[0])
if len(_failed) > 20:
    print(f"  ... and {{len(_failed) - 20}} more failures: run `llmfs check {unit}` for all of them")
_score
'''


def notebook(course: Course, unit: Unit, python: str | None = None) -> dict:
    """The source notebook of `unit` (nbformat 4, as a dict); `python` runs `llmfs grade`
    (default: this Python; the kernel's own if that path is gone)."""
    pkg = course.package
    mods = unit_modules(course, unit)
    reading = reading_path(course, unit)
    intro = [f"# {unit.id}: {unit.title}", ""]
    if reading:
        intro.append(f"Read the unit first: `{reading}` in the course kit.")
    intro += ["", "Fill in the TODOs in the cells below. Each cell starting `%%writefile` is one module of "
                  f"`{pkg}`: running it writes the module to a private folder (it does not run the code here). "
                  f"Run the setup cell first, then each module's cell, then the last cell: it grades your "
                  f"modules with `llmfs grade`, in its sandbox, with the course's public and hidden tests, and "
                  f"shows your score out of {unit.points:g}."]
    if any(u != unit.id for u, _ in mods):
        earlier = ", ".join(sorted({u for u, _ in mods if u != unit.id}))
        intro += ["", f"This unit's tests also run your code from {earlier}: paste your finished modules "
                      f"into their cells (only {unit.id}'s tests are graded here)."]
    cells = [_cell("markdown", "\n".join(intro) + "\n", f"llmfs_{unit.id}_intro"),
             _cell("code", SETUP.format(unit=unit.id, package=pkg), f"llmfs_{unit.id}_setup")]
    for owner, mod in mods:
        stub = read_source(course.exercises / pkg / f"{mod}.py")
        ref_path = course.solutions / pkg / f"{mod}.py"
        if not ref_path.is_file():
            raise UserError(f"{unit.id}: the nbgrader export needs the reference {ref_path}; "
                            f"export from the instructor's course, not a student release")
        body = solution_text(stub, read_source(ref_path), f"{pkg}/{mod}.py")
        head = f'%%writefile "{{LLMFS_DIR}}/{pkg}/{mod}.py"\n'
        if owner != unit.id:
            head += f"# Your {mod}.py from {owner} (this unit's tests run it).\n"
        cells.append(_cell("code", head + body, f"{unit.id}_{mod}", solution=True, locked=False))
    cells.append(_cell("code", GRADE.format(
        unit=unit.id, package=pkg, python=python or sys.executable, course=str(course.path.resolve()),
        modules=[m for _, m in mods], timeout=grade_timeout(unit), points=float(unit.points)),
        f"llmfs_{unit.id}_grade", grade=True, points=float(unit.points)))
    return {"cells": cells, "nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                         "language_info": {"name": "python"}}}


def _nb_json(nb: dict) -> str:
    # nbformat 4.5 wants cell ids; ids from the grade ids keep re-exports identical.
    for cell in nb["cells"]:
        cell.setdefault("id", cell["metadata"]["nbgrader"]["grade_id"].replace("_", "-"))
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def config_text(course: Course, units: list[Unit]) -> str:
    timeout = max(int(u.limits.submission_timeout_s) for u in units) + CELL_MARGIN_S
    return f'''\
# nbgrader configuration written by `llmfs export nbgrader` for {course.name!r}.
# Re-export to update it; an edited copy is never overwritten without --force.
c = get_config()  # noqa: F821 (nbgrader provides it)

# Where a solution region was, the student version has this comment; the
# stub's own `raise NotImplementedError(...)` stays after it.
c.ClearSolutions.code_stub = {{"python": {CODE_STUB!r}}}

# Grading a unit runs `llmfs grade` inside the grade cell: allow the units'
# submission_timeout_s (course.toml) plus a margin, not nbgrader's 30 seconds.
c.Execute.timeout = {timeout}

# A {course.package}/ folder left beside a source notebook is never released to
# students nor copied over a submission: the notebook's cells are the code.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "{course.package}"]
'''


# ---------------------------------------------------------------- writing the course


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def plan(course: Course, units: list[Unit], python: str | None = None) -> dict[str, bytes]:
    files = {CONFIG: config_text(course, units).encode("utf-8")}
    for u in units:
        files[f"source/{u.id}/{u.id}.ipynb"] = _nb_json(notebook(course, u, python)).encode("utf-8")
    return files


def _read_manifest(out: Path) -> dict[str, str] | None:
    try:
        data = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
        files = data["files"]
        if not (isinstance(files, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in files.items())):
            return None
        return files
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _safe_rel(rel: str) -> bool:
    p = Path(rel)
    return not p.is_absolute() and ".." not in p.parts


def export(course: Course, out: Path | str, unit_ids: list[str] | None = None, force: bool = False,
           python: str | None = None) -> list[str]:
    """Write the nbgrader course to `out`; returns the files written (relative paths).
    `python` is the interpreter the grade cells run `llmfs grade` with (default: this one)."""
    out = Path(out).expanduser().resolve()
    if unit_ids:
        units = [course.unit(u) for u in unit_ids]
        for u in units:
            if not u.ready:
                raise UserError(f"unit {u.id} is planned, not ready: it has nothing to export yet")
    else:
        units = list(course.ready_units)
    if not units:
        raise UserError("no ready unit to export")
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} is a file, not a folder")
    root = course.root.resolve()
    if out == root or root in out.parents or out in root.parents:
        raise UserError(f"{out} is or holds the course kit; choose a folder outside it for the nbgrader course")
    previous: dict[str, str] = {}
    if out.is_dir() and any(out.iterdir()):
        manifest = _read_manifest(out)
        if manifest is None:
            raise UserError(f"{out} is not empty and is not an earlier 'llmfs export nbgrader' (no {MANIFEST}); "
                            f"choose an empty folder")
        previous = {k: v for k, v in manifest.items() if _safe_rel(k)}
    files = plan(course, units, python)
    changed = []
    for rel in files:
        dest = out / rel
        if dest.is_file() and previous.get(rel) != _digest(dest.read_bytes()):
            changed.append(rel)  # the instructor's: not written by us, or edited since
    if changed and not force:
        raise UserError(f"{out}: {', '.join(changed)} changed since the last export (or was not written by it); "
                        f"move it away, or pass --force to keep it as <name>.bak and write the new one")
    for rel, data in files.items():
        dest = out / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if rel in changed:
            os.replace(dest, _free_backup(dest))
        _write_atomic(dest, data)
    manifest = {**previous, **{rel: _digest(data) for rel, data in files.items()}}
    _write_atomic(out / MANIFEST, (json.dumps({"schema": 1, "files": manifest}, indent=1, sort_keys=True)
                                   + "\n").encode("utf-8"))
    return list(files)


def _free_backup(dest: Path) -> Path:
    bak = dest.with_name(dest.name + ".bak")
    n = 1
    while bak.exists():
        bak = dest.with_name(f"{dest.name}.bak{n}")
        n += 1
    return bak


def _write_atomic(dest: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------- the command


def register(sub) -> None:
    p = sub.add_parser("nbgrader", help="write an nbgrader course (one notebook per unit)",
                       description="Write an nbgrader course in COURSE_DIR: nbgrader_config.py and "
                                   "source/<unit>/<unit>.ipynb per unit. Each notebook holds the unit's modules "
                                   "as solution cells (the reference inside ### BEGIN/END SOLUTION, the stub "
                                   "outside) and a grade cell worth the unit's points that grades them with "
                                   "'llmfs grade' in its sandbox. Then: cd COURSE_DIR && nbgrader "
                                   "generate_assignment UNIT.")
    p.add_argument("course_dir", metavar="COURSE_DIR",
                   help="the nbgrader course folder (empty, absent, or an earlier export)")
    p.add_argument("--unit", action="append", dest="units", metavar="UNIT",
                   help="export only this unit (repeatable; default: every ready unit)")
    p.add_argument("--python", metavar="PATH",
                   help="the Python (with the kit installed) that the grade cells run 'llmfs grade' with "
                        "(default: the one running this command)")
    p.add_argument("--force", action="store_true",
                   help="replace files the instructor changed since the last export (each is kept as NAME.bak)")
    p.set_defaults(func=_main)


def _main(args) -> int:
    from ..cli import course_from

    course = course_from(args)
    written = export(course, args.course_dir, args.units, force=args.force, python=args.python)
    units = [Path(r).parent.name for r in written if r.endswith(".ipynb")]
    print(f"wrote an nbgrader course to {Path(args.course_dir).expanduser().resolve()}: "
          f"{CONFIG} and the notebooks of {', '.join(units)}")
    print(f"next: cd {args.course_dir} && nbgrader generate_assignment {units[0]}")
    return 0
