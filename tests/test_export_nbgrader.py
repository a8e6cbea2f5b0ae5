"""`llmfs export nbgrader`: real nbgrader grades the notebooks as `llmfs grade` does.

One module-scoped run (units u01 and u04 of a course copy) drives nbgrader
itself: export, ``nbgrader generate_assignment``, submissions made from the
release notebook, ``nbgrader autograde``, then the gradebook (SQLite, through
nbgrader's Gradebook API). Students:

- ``ref``: the reference. For u01 the solution cell is the reference file as it
  is; for u04 it is the source notebook's cell (the stub with the reference in
  its solution regions), so the export's merged text is graded too;
- ``stub``: the release notebook as handed out, with a reference module planted
  beside it (``scratchllm/attention.py``), and one left in ``source/u04/`` as an
  instructor might (trap 1: autograde copies source files over submissions;
  neither file may be graded);
- ``kill`` (u04): the solution cell kills the kernel (trap 3: a grade cell left
  without output would get full points).

A second export (u04) names a stand-in for the Python that runs ``llmfs
grade`` (``--python``): it is killed, or prints no report. The reference then
scores 0 under nbgrader, never full points. Trap 2 (nbgrader's 30 s cell
timeout) is checked on the configuration nbgrader loads.

Measured on a shared 2-core machine: 1.7 to 3.5 minutes for the whole file
(one module-scoped setup), most of it `llmfs grade` (u01 ~20 s, u04 ~11 s a run).
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbgrader  # noqa: F401  (the 'test' extra installs it: missing, this file fails, never skips)
import pytest

from grader.cli import main as llmfs
from grader.course import load_course
from grader.export import nbgrader as nbexport

from course_copy import copy_course
from kit import ROOT

UNITS = ("u01", "u04")
MODULE = {"u01": "autograd", "u04": "attention"}


def _nbgrader(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd, capture_output=True, text=True,
                          encoding="utf-8", timeout=1200)


def _llmfs_grade(course: Path, folder: Path) -> dict:
    """{unit: score} from `llmfs grade --format json` for the units under test."""
    proc = subprocess.run([sys.executable, "-m", "grader", "--course", str(course / "course.toml"), "grade",
                           str(folder), *[a for u in UNITS for a in ("--unit", u)], "--format", "json"],
                          capture_output=True, text=True, encoding="utf-8", timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {u["id"]: u["score"] for u in json.loads(proc.stdout)["units"]}


def _read_nb(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _write_nb(path: Path, nb: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb, indent=1), encoding="utf-8")


def _solution_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("solution")]


def _text(cell: dict) -> str:
    src = cell["source"]
    return src if isinstance(src, str) else "".join(src)


def _set_text(cell: dict, text: str) -> None:
    cell["source"] = text


def _scores(course_dir: Path, unit: str) -> dict:
    from nbgrader.api import Gradebook

    out = {}
    with Gradebook(f"sqlite:///{course_dir / 'gradebook.db'}") as gb:
        for sub in gb.assignment_submissions(unit):
            grades = [g for nb in sub.notebooks for g in nb.grades]
            out[sub.student.id] = (sub.score, sub.max_score, [g.needs_manual_grade for g in grades])
    return out


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nbgrader")
    course = copy_course(tmp)
    ours = load_course(course / "course.toml")
    nbc = tmp / "nbcourse"
    nbexport.export(ours, nbc, list(UNITS))
    reference = {u: (course / "solutions/scratchllm" / f"{MODULE[u]}.py").read_text(encoding="utf-8")
                 for u in UNITS}
    # Trap 1, the instructor's side: a module (the reference!) left beside a source notebook.
    planted = nbc / "source/u04/scratchllm/attention.py"
    planted.parent.mkdir()
    planted.write_text(reference["u04"], encoding="utf-8")

    for u in UNITS:
        proc = _nbgrader(nbc, "generate_assignment", u, "--force")
        assert proc.returncode == 0, proc.stderr[-3000:]
    for u in UNITS:
        release = _read_nb(nbc / "release" / u / f"{u}.ipynb")
        _write_nb(nbc / "submitted/stub" / u / f"{u}.ipynb", release)
        ref = json.loads(json.dumps(release))
        [cell] = _solution_cells(ref)
        if u == "u01":    # the reference file as a student might paste it
            magic = _text(cell).split("\n", 1)[0]
            _set_text(cell, magic + "\n" + reference[u])
        else:             # the source notebook's cell: the stub with the reference in its regions
            [src] = _solution_cells(_read_nb(nbc / "source" / u / f"{u}.ipynb"))
            _set_text(cell, _text(src))
        _write_nb(nbc / "submitted/ref" / u / f"{u}.ipynb", ref)
    # Trap 1, the student's side: a module file handed in beside the stub notebook.
    beside = nbc / "submitted/stub/u04/scratchllm/attention.py"
    beside.parent.mkdir()
    beside.write_text(reference["u04"], encoding="utf-8")
    # Trap 3: a kernel that dies.
    kill = json.loads(json.dumps(_read_nb(nbc / "submitted/ref/u04/u04.ipynb")))
    _set_text(_solution_cells(kill)[0], "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    _write_nb(nbc / "submitted/kill/u04/u04.ipynb", kill)

    # Trap 3 again, in a second export: the Python its grade cells run `llmfs grade` with
    # stands in for a broken grader: it is killed, or it prints no report at all.
    broken = tmp / "broken"
    fake = tmp / "fake-python"
    fake.write_text(f"#!{sys.executable}\n"
                    "import os, signal, sys\n"
                    "folder = sys.argv[sys.argv.index('grade') + 1]\n"
                    "text = open(os.path.join(folder, 'scratchllm', 'attention.py'), encoding='utf-8').read()\n"
                    "if '# crash' in text:\n"
                    "    os.kill(os.getpid(), signal.SIGKILL)\n"
                    "sys.exit(0)\n", encoding="utf-8")
    fake.chmod(0o755)
    nbexport.export(ours, broken, ["u04"], python=str(fake))
    proc = _nbgrader(broken, "generate_assignment", "u04")
    assert proc.returncode == 0, proc.stderr[-3000:]
    shutil.copytree(nbc / "submitted/ref/u04", broken / "submitted/ref/u04")
    crash = _read_nb(nbc / "submitted/ref/u04/u04.ipynb")
    [cell] = _solution_cells(crash)
    _set_text(cell, _text(cell) + "\n# crash\n")
    _write_nb(broken / "submitted/crash/u04/u04.ipynb", crash)

    logs = {}
    for u in UNITS:
        proc = _nbgrader(nbc, "autograde", u)
        logs[u] = proc.stderr
    proc = _nbgrader(broken, "autograde", "u04")
    logs["broken"] = proc.stderr

    # The same code, graded by `llmfs grade`: the reference and the stubs.
    ref_dir, stub_dir = tmp / "ref_sub/scratchllm", tmp / "stub_sub/scratchllm"
    for d, top in ((ref_dir, "solutions"), (stub_dir, "exercises")):
        d.mkdir(parents=True)
        for u in UNITS:
            shutil.copy(course / top / "scratchllm" / f"{MODULE[u]}.py", d)
    return {"course": course, "nbc": nbc, "broken": broken, "logs": logs, "ours": ours,
            "llmfs_ref": _llmfs_grade(course, ref_dir.parent), "llmfs_stub": _llmfs_grade(course, stub_dir.parent)}


@pytest.mark.parametrize("unit", UNITS)
def test_autograde_scores_equal_llmfs_grade(graded, unit):
    points = graded["ours"].unit(unit).points
    scores = _scores(graded["nbc"], unit)
    log = graded["logs"][unit][-3000:]
    assert graded["llmfs_ref"][unit] == points and graded["llmfs_stub"][unit] == 0
    assert scores["ref"][:2] == (graded["llmfs_ref"][unit], points), log
    assert scores["stub"][:2] == (graded["llmfs_stub"][unit], points), log
    assert not any(scores["ref"][2]) and not any(scores["stub"][2])


def test_files_beside_the_notebooks_are_not_graded(graded):
    # trap 1: a reference module in source/u04/ and one beside the stub student's notebook
    assert not (graded["nbc"] / "release/u04/scratchllm").exists(), "a module in source/ was released to students"
    copied = graded["nbc"] / "autograded/stub/u04/scratchllm"
    assert not copied.exists(), "a module file was copied beside the graded notebook"
    assert _scores(graded["nbc"], "u04")["stub"][0] == 0


def test_a_dead_kernel_scores_zero(graded):
    score, points, manual = _scores(graded["nbc"], "u04")["kill"]
    assert (score, points) == (0, 10) and all(manual), graded["logs"]["u04"][-3000:]
    assert "Kernel died" in graded["logs"]["u04"]


def test_broken_grading_scores_zero_never_full_points(graded):
    scores = _scores(graded["broken"], "u04")
    assert set(scores) == {"ref", "crash"}, scores
    for student in ("ref", "crash"):
        assert scores[student][:2] == (0, 10), (student, graded["logs"]["broken"][-3000:])
    outputs = {s: _read_nb(graded["broken"] / "autograded" / s / "u04/u04.ipynb")["cells"][-1]["outputs"]
               for s in scores}
    assert [o["output_type"] for o in outputs["ref"]][-1] == "error"
    assert "exit status -9" in outputs["crash"][-1]["evalue"]


def test_release_holds_the_stub_and_no_reference_body(graded):
    nbc, course = graded["nbc"], graded["course"]
    for u in UNITS:
        release = _read_nb(nbc / "release" / u / f"{u}.ipynb")
        text = "".join(_text(c) for c in release["cells"])
        assert "BEGIN SOLUTION" not in text
        reference = (course / "solutions/scratchllm" / f"{MODULE[u]}.py").read_text(encoding="utf-8")
        stub = (course / "exercises/scratchllm" / f"{MODULE[u]}.py").read_text(encoding="utf-8")
        stub_lines = set(stub.split("\n"))
        leaked = [line for line in reference.split("\n")
                  if len(line.strip()) > 12 and line not in stub_lines and line in text.split("\n")]
        assert not leaked, leaked[:5]
        [cell] = _solution_cells(release)
        magic, module = _text(cell).split("\n", 1)
        assert magic == f'%%writefile "{{LLMFS_DIR}}/scratchllm/{MODULE[u]}.py"'
        kept = [line for line in module.split("\n") if line.strip() != nbexport.CODE_STUB]
        assert "\n".join(kept).rstrip("\n") == stub.rstrip("\n")


def test_config_timeout_covers_grading(graded):
    from traitlets.config.loader import PyFileConfigLoader

    cfg = PyFileConfigLoader(nbexport.CONFIG, path=str(graded["nbc"])).load_config()
    longest = max(graded["ours"].unit(u).limits.submission_timeout_s for u in UNITS)
    assert cfg.Execute.timeout > longest + nbexport.GRADE_MARGIN_S > 30
    grade_cell = _read_nb(graded["nbc"] / "source/u04/u04.ipynb")["cells"][-1]
    assert f"timeout={int(longest) + nbexport.GRADE_MARGIN_S}," in _text(grade_cell)


# ---------------------------------------------------------------- the export alone (no nbgrader run)


@pytest.mark.parametrize("module", sorted(p.stem for p in (ROOT / "solutions/scratchllm").glob("*.py")))
def test_solution_text_is_the_stub_outside_and_the_reference_inside(module):
    stub = (ROOT / "exercises/scratchllm" / f"{module}.py").read_text(encoding="utf-8")
    reference = (ROOT / "solutions/scratchllm" / f"{module}.py").read_text(encoding="utf-8")
    text = nbexport.solution_text(stub, reference, module)
    # outside the regions: the stub, line for line (what generate_assignment hands out)
    student, inside = [], False
    for line in text.split("\n"):
        if line.strip() == nbexport.BEGIN:
            inside = True
        elif line.strip() == nbexport.END:
            inside = False
        elif not inside:
            student.append(line)
    assert "\n".join(student).strip() == stub.strip()
    # with the regions: every reference function body and module-level statement, in effect
    ours, ref = ast.parse(text), ast.parse(reference)
    ours_defs, ref_defs = nbexport._defs(ours), nbexport._defs(ref)
    for qual, fn in ref_defs.items():
        if isinstance(fn, ast.ClassDef):
            continue
        body = nbexport._docstring_free(ours_defs[qual].body)
        if body and nbexport._is_todo_raise(body[-1]):
            body = body[:-1]
            if isinstance(body[-1], ast.Return) and body[-1].value is None:
                body = body[:-1]
        want = nbexport._docstring_free(fn.body)
        assert [ast.dump(s) for s in body] == [ast.dump(s) for s in want], qual
    top = {ast.dump(n) for n in ours.body if not isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    for n in nbexport._docstring_free(ref.body):
        if not isinstance(n, (ast.FunctionDef, ast.ClassDef)):
            assert ast.dump(n) in top, ast.unparse(n)


def _export_cli(out: Path, *extra: str) -> int:
    return llmfs(["--course", str(ROOT / "course.toml"), "export", "nbgrader", str(out), "--unit", "u04", *extra])


def test_refuses_a_folder_that_is_not_an_earlier_export(tmp_path, capsys):
    out = tmp_path / "course"
    out.mkdir()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    assert _export_cli(out) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("llmfs: ") and "not empty" in err and "\n" not in err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_reexport_keeps_the_instructors_files(tmp_path, capsys):
    out = tmp_path / "course"
    assert _export_cli(out) == 0
    nb = out / "source/u04/u04.ipynb"
    first = nb.read_bytes()
    (out / "gradebook.db").write_bytes(b"grades")
    (out / "source/u04/data.csv").write_text("1,2\n", encoding="utf-8")
    assert _export_cli(out) == 0                      # unchanged since the last export: replaced
    assert nb.read_bytes() == first
    assert (out / "gradebook.db").read_bytes() == b"grades"
    assert (out / "source/u04/data.csv").read_text(encoding="utf-8") == "1,2\n"
    config = out / nbexport.CONFIG
    config.write_text(config.read_text(encoding="utf-8") + "c.Execute.timeout = 5000\n", encoding="utf-8")
    edited = config.read_bytes()
    capsys.readouterr()
    assert _export_cli(out) == 2                      # edited by the instructor: refused, nothing written
    assert "nbgrader_config.py changed" in capsys.readouterr().err
    assert config.read_bytes() == edited
    assert _export_cli(out, "--force") == 0           # forced: the edit is kept beside the new file
    assert (out / "nbgrader_config.py.bak").read_bytes() == edited
    assert b"5000" not in config.read_bytes()
    assert (out / "gradebook.db").read_bytes() == b"grades"
