"""`llmfs export gradescope`, run the way Gradescope runs it.

The autograder zip is built for two units (u01, u04: the fast ones), unpacked
into a simulated /autograder (``LLMFS_AUTOGRADER_ROOT``), and its real
``run_autograder`` grades uploads there: the reference as loose module files,
the stubs as a scratchllm/ folder, and uploads that cannot be graded. Each
results.json is checked against Gradescope's format
(tests/data/gradescope_results.schema.json) and against ``llmfs grade
--format json`` on the same files, test by test. setup.sh is run with fake
``apt-get`` and ``python3`` that record what they are asked to install.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema
import pytest

from grader import cli
from grader.course import load_course
from grader.export import gradescope_run

from course_copy import copy_course
from kit import ROOT, llmfs

UNITS = ("u01", "u04")
SCHEMA = json.loads((Path(__file__).parent / "data" / "gradescope_results.schema.json").read_text(encoding="utf-8"))
MARKER = "STUDENT-TEXT-7f3a"  # a student's own words: shown by public tests, never by hidden ones
UNIT_ARGS = [arg for u in UNITS for arg in ("--unit", u)]


@pytest.fixture(scope="module")
def autograder_zip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "autograder.zip"
    assert cli.main(["--course", str(ROOT / "course.toml"), "export", "gradescope", str(out), *UNIT_ARGS]) == 0
    return out


def unpack(zip_path: Path, dest: Path) -> None:
    """Unzip as Gradescope does, keeping each entry's Unix mode."""
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            zf.extract(info, dest)
            os.chmod(dest / info.filename, (info.external_attr >> 16) & 0o777)


def autograder_root(zip_path: Path, tmp_path: Path) -> Path:
    root = tmp_path / "autograder"
    (root / "submission").mkdir(parents=True)
    unpack(zip_path, root / "source")
    return root


def run_autograder(root: Path) -> dict:
    """Run the real run_autograder against `root`; its results.json, checked against the schema."""
    env = {**os.environ, "LLMFS_AUTOGRADER_ROOT": str(root),
           "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    proc = subprocess.run([str(root / "source" / "run_autograder")], cwd=root, env=env, capture_output=True,
                          text=True, encoding="utf-8", timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((root / "results" / "results.json").read_text(encoding="utf-8"))
    jsonschema.validate(results, SCHEMA)
    return results


def grade_json(root: Path, submission: str | Path) -> dict:
    """`llmfs grade --format json` on the same course (the unpacked copy) and submission."""
    # Run from the unpacked copy, as run_autograder does: the grader checks that no course file (its own
    # included) changes while it grades, so it must not run from a checkout that is being edited.
    proc = llmfs("--course", str(root / "source" / "course.toml"), "grade", str(submission), "--format", "json",
                 *UNIT_ARGS, cwd=root / "source")
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout)


def assert_same_scores(results: dict, report: dict) -> None:
    """results.json gives every test, unit and the total exactly the score `llmfs grade` gave."""
    assert results["score"] == report["score"]
    assert len(results["tests"]) == len(report["tests"])
    want = {f"{t['unit']} {'hidden' if t['hidden'] else 'public'}: {t['name']}": t for t in report["tests"]}
    got = {t["name"]: t for t in results["tests"]}
    assert got.keys() == want.keys()
    for name, t in got.items():
        w = want[name]
        assert (t["score"], t["max_score"]) == (w["score"], w["max_score"]), name
        assert t["status"] == ("passed" if w["status"] == "passed" else "failed"), name
        assert t["visibility"] == ("after_published" if w["hidden"] else "visible"), name
        assert t["output"] == (w["message"] if w["status"] != "passed" else ""), name
    for unit in report["units"]:
        mine = [t["score"] for t in results["tests"] if t["tags"] == [unit["id"]]]
        assert sum(mine) == pytest.approx(unit["score"], abs=1e-4), unit["id"]


def test_reference_as_loose_files_scores_full_marks_equal_to_llmfs_grade(autograder_zip, tmp_path):
    root = autograder_root(autograder_zip, tmp_path)
    for f in (ROOT / "solutions" / "scratchllm").glob("*.py"):  # attention.py, ... at the top of the upload
        shutil.copy(f, root / "submission" / f.name)
    before = {p.name: p.read_bytes() for p in (root / "submission").iterdir()}
    results = run_autograder(root)
    course = load_course(root / "source" / "course.toml")
    full = sum(course.unit(u).points for u in UNITS)
    assert results["score"] == full
    assert all(t["status"] == "passed" and t["score"] == t["max_score"] for t in results["tests"])
    assert {t["visibility"] for t in results["tests"]} == {"visible", "after_published"}
    assert_same_scores(results, grade_json(root, "solutions"))
    for unit in UNITS:
        assert any(line.startswith(unit) and course.unit(unit).title in line for line in results["output"].splitlines())
    assert "Isolation in force:" in results["output"] and "hidden files unreachable" in results["output"]
    assert results["stdout_visibility"] == "hidden" and results["execution_time"] >= 1
    assert {p.name: p.read_bytes() for p in (root / "submission").iterdir()} == before  # the upload is untouched


def test_stubs_score_zero_and_hidden_outputs_hold_no_student_text(autograder_zip, tmp_path):
    root = autograder_root(autograder_zip, tmp_path)
    package = root / "submission" / "scratchllm"
    package.mkdir()
    for f in (ROOT / "exercises" / "scratchllm").glob("*.py"):
        text = f.read_text(encoding="utf-8").replace('NotImplementedError("', f'NotImplementedError("{MARKER} ')
        (package / f.name).write_text(text, encoding="utf-8")
    results = run_autograder(root)
    assert results["score"] == 0
    assert all(t["status"] == "failed" and t["score"] == 0 for t in results["tests"])
    assert_same_scores(results, grade_json(root, root / "submission"))
    hidden = [t for t in results["tests"] if t["visibility"] == "after_published"]
    public = [t for t in results["tests"] if t["visibility"] == "visible"]
    assert hidden and public
    assert any(MARKER in t["output"] for t in public)  # the marker does reach what a report shows
    assert not any(MARKER in t["output"] for t in hidden)
    assert all(t["output"] for t in hidden)  # a summary, not nothing
    assert MARKER not in results["output"]


def test_corrupt_zip_scores_zero_with_a_readable_reason(autograder_zip, tmp_path):
    root = autograder_root(autograder_zip, tmp_path)
    upload = root / "submission" / "homework.zip"
    upload.write_bytes(b"PK\x03\x04 this is not really a zip file")
    results = run_autograder(root)
    report = grade_json(root, upload)
    assert results["score"] == 0 and report["score"] == 0
    assert results["tests"] == report["tests"] == []
    assert report["error"] and report["error"] in results["output"]
    assert "homework.zip is not a readable zip file" in results["output"]
    assert "You may upload a scratchllm/ folder" in results["output"]


def test_upload_without_python_scores_zero_with_a_readable_reason(autograder_zip, tmp_path):
    root = autograder_root(autograder_zip, tmp_path)
    (root / "submission" / "notes.pdf").write_bytes(b"%PDF-1.4 not python")
    results = run_autograder(root)
    assert results["score"] == 0 and results["tests"] == []
    assert results["output"].count("\n") == 1  # one line: why, and what to upload instead
    assert "nothing to grade was found in the upload" in results["output"]
    assert "autograd.py, attention.py" in results["output"]  # the modules of the units it grades


def test_arrange_finds_the_package_and_refuses_what_it_cannot_grade(tmp_path):
    sub, scratch = tmp_path / "submission", tmp_path / "scratch"
    modules = ["autograd", "attention"]
    (sub / "hw" / "scratchllm").mkdir(parents=True)  # one folder down: graded where it is
    assert gradescope_run.arrange(sub, scratch, "scratchllm", modules) == (sub, [])
    shutil.rmtree(sub / "hw")
    (sub / "attention.py").write_text("x = 1\r\n", encoding="utf-8")
    (sub / "helpers.py").write_text("y = 2\n", encoding="utf-8")
    target, notes = gradescope_run.arrange(sub, scratch, "scratchllm", modules)
    assert target == scratch and [p.name for p in (scratch / "scratchllm").iterdir()] == ["attention.py"]
    assert (scratch / "scratchllm" / "attention.py").read_bytes() == b"x = 1\r\n"  # intake normalises, not us
    assert "attention.py" in notes[0]
    (sub / "attention.py").unlink()
    (sub / "autograd.py").symlink_to("/etc/passwd")
    with pytest.raises(gradescope_run.SubmissionError, match="autograd.py is not a regular file"):
        gradescope_run.arrange(sub, tmp_path / "scratch2", "scratchllm", modules)
    (sub / "autograd.py").unlink()
    (sub / "a.zip").write_bytes(b"")
    assert gradescope_run.arrange(sub, tmp_path / "scratch3", "scratchllm", modules) == (sub / "a.zip", [])
    (sub / "b.zip").write_bytes(b"")
    with pytest.raises(gradescope_run.SubmissionError, match="several .zip files were uploaded"):
        gradescope_run.arrange(sub, tmp_path / "scratch4", "scratchllm", modules)
    with pytest.raises(gradescope_run.SubmissionError, match="no submission folder"):
        gradescope_run.arrange(tmp_path / "missing", tmp_path / "scratch5", "scratchllm", modules)


def test_results_are_written_when_python_cannot_run(autograder_zip, tmp_path):
    root = autograder_root(autograder_zip, tmp_path)
    fake = root / "venv" / "bin" / "python"  # run_autograder prefers setup.sh's virtual environment
    fake.parent.mkdir(parents=True)
    fake.write_text("#!/bin/sh\necho 'python is broken' >&2\nexit 3\n", encoding="utf-8")
    fake.chmod(0o755)
    results = run_autograder(root)
    assert results["score"] == 0 and results["tests"] == []
    assert "could not run" in results["output"]


def test_results_are_written_when_grading_runs_out_of_time(autograder_zip, tmp_path):
    root = autograder_root(autograder_zip, tmp_path)
    for f in (ROOT / "solutions" / "scratchllm").glob("*.py"):
        shutil.copy(f, root / "submission" / f.name)
    # Grading two units cannot finish in a fifth of a second (starting Python and torch alone takes longer).
    code = gradescope_run.main(["--root", str(root), *UNIT_ARGS, "--timeout-s", "0.2"])
    assert code == 0
    results = json.loads((root / "results" / "results.json").read_text(encoding="utf-8"))
    jsonschema.validate(results, SCHEMA)
    assert results["score"] == 0 and results["tests"] == []
    assert "took longer than 0.2 s" in results["output"]


def test_hidden_visibility_flag_reaches_every_hidden_test(tmp_path):
    out = tmp_path / "ag.zip"
    assert cli.main(["--course", str(ROOT / "course.toml"), "export", "gradescope", str(out), "--unit", "u04",
                     "--hidden-visibility", "hidden"]) == 0
    with zipfile.ZipFile(out) as zf:
        script = zf.read("run_autograder").decode("utf-8")
    assert "--unit u04 --hidden-visibility hidden" in script
    report = {"submission": "s", "score": 1.0, "max_score": 2.0, "error": None, "notes": [], "isolation": {},
              "units": [{"id": "u04", "title": "Attention", "score": 1.0, "max_score": 2.0, "passed": 1,
                         "total": 2, "message": "", "depends_note": ""}],
              "tests": [{"name": "test_a", "unit": "u04", "score": 1.0, "max_score": 1.0, "status": "passed",
                         "message": "", "duration": 0.1, "hidden": False},
                        {"name": "test_a", "unit": "u04", "score": 0.0, "max_score": 1.0, "status": "error",
                         "message": "wrong result (hidden test: details withheld)", "duration": 0.1, "hidden": True}]}
    results = gradescope_run.to_results(report, "hidden")
    jsonschema.validate(results, SCHEMA)
    assert [(t["name"], t["visibility"], t["status"]) for t in results["tests"]] == [
        ("u04 public: test_a", "visible", "passed"), ("u04 hidden: test_a", "hidden", "failed")]
    assert "to instructors only" in results["output"]


def test_zip_has_the_scripts_at_its_root_executable_and_no_caches(tmp_path):
    course = copy_course(tmp_path)
    planted = [course / "grader" / "__pycache__" / "cli.cpython-311.pyc", course / "exercises" / "tests" / "x.pyc",
               course / "exercises" / ".venv" / "pyvenv.cfg", course / "solutions" / ".pytest_cache" / "v",
               course / ".git" / "HEAD", course / "data" / "tinyshakespeare.txt", course / "tests" / "test_x.py"]
    for name in ("README.md", "LICENSE"):  # pip needs the README that pyproject.toml names
        shutil.copy(ROOT / name, course / name)
    for p in planted:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("x", encoding="utf-8")
    out = tmp_path / "ag.zip"
    assert cli.main(["--course", str(course / "course.toml"), "export", "gradescope", str(out)]) == 0
    with zipfile.ZipFile(out) as zf:
        infos = {i.filename: i for i in zf.infolist()}
    for script in ("setup.sh", "run_autograder"):
        assert script in infos
        assert (infos[script].external_attr >> 16) & 0o111 == 0o111, f"{script} is not executable"
    names = set(infos)
    assert not any("__pycache__" in n or n.endswith(".pyc") or ".venv" in n or ".pytest_cache" in n for n in names)
    assert not any(n.split("/")[0] in (".git", "data", "tests") for n in names)
    for needed in ("course.toml", "pyproject.toml", "README.md", "grader/judge.py", "grader/export/gradescope_run.py",
                   "grader/hidden/test_u04_attention_hidden.py", "solutions/scratchllm/attention.py",
                   "exercises/scratchllm/attention.py", "exercises/tests/test_u04_attention.py",
                   "datasets/manifest.toml"):
        assert needed in names, needed
    assert any(n.startswith("exercises/tests/data/") for n in names)  # the public tests' snapshots


def test_setup_installs_cpu_torch_then_the_kit(autograder_zip, tmp_path):
    root = tmp_path / "autograder"
    unpack(autograder_zip, root / "source")
    script = root / "source" / "setup.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    # Fakes on PATH that record their arguments; `python3 -m venv DIR` makes DIR/bin/python, a fake too.
    fakes, log = tmp_path / "bin", tmp_path / "calls.log"
    fakes.mkdir()
    recorder = f'#!/bin/bash\necho "$(basename "$0") $*" >> {log}\n'
    (fakes / "apt-get").write_text(recorder, encoding="utf-8")
    (fakes / "python3").write_text(recorder + 'if [ "$1 $2" = "-m venv" ]; then mkdir -p "$3/bin"; '
                                   'cp "$0" "$3/bin/python"; fi\n', encoding="utf-8")
    for f in fakes.iterdir():
        f.chmod(0o755)
    env = {"PATH": f"{fakes}:/usr/bin:/bin", "LLMFS_AUTOGRADER_ROOT": str(root), "HOME": str(tmp_path)}
    proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, encoding="utf-8",
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    calls = log.read_text(encoding="utf-8").splitlines()
    pip = [c for c in calls if c.startswith("python -m pip install")]
    torch_line = "python -m pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0"
    kit_line = f"python -m pip install -e {root}/source"
    assert torch_line in pip and kit_line in pip
    assert pip.index(torch_line) < pip.index(kit_line)  # torch is there before the kit asks for "torch"
    assert [c for c in pip if any(word.startswith("torch") for word in c.split())] == [torch_line]
    assert f"python3 -m venv {root}/venv" in calls
    assert any(c.startswith("apt-get install") and "python3-venv" in c for c in calls)
