"""What Gradescope's ``run_autograder`` runs for each submission.

``python -m grader.export.gradescope_run --root /autograder [--unit U ...]``

1. Arranges ``ROOT/submission`` for ``llmfs grade``, never changing it.
   Students may upload a ``scratchllm/`` folder (graded where it is), the
   module files themselves (``attention.py`` at the top: copied into a fresh
   ``scratchllm/`` in a scratch folder), or one .zip holding ``scratchllm/``.
2. Grades it in a child process: ``llmfs grade SUB --format json``, with a
   time limit of its own.
3. Writes ``ROOT/results/results.json`` in Gradescope's format
   (https://gradescope-autograders.readthedocs.io/en/latest/specs/): the
   score and every test's score are the ones ``llmfs grade`` gave; each
   test's output is the message its report shows (for hidden tests, only the
   summary it shows; the report is already sanitized, so nothing is
   re-derived here); the top-level output is the report's unit table, notes
   and isolation (`grader.report.to_text`).

Whatever goes wrong (nothing usable uploaded, a corrupt zip, the grader
failing or running out of time), results.json is still written: a score of
0 and one line saying why. What only instructors should see goes to
standard output, which Gradescope keeps hidden from students here.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Sequence

from .. import report
from ..course import load_course
from ..intake import MAX_ENTRIES, MAX_FILE_BYTES
from ..scoring import Grade, TestScore, UnitScore
from .gradescope import HIDDEN_VISIBILITIES, TIMEOUT_MARGIN_S

DEFAULT_ROOT = "/autograder"
ROOT_VARIABLE = "LLMFS_AUTOGRADER_ROOT"
ACCEPTED = "a {package}/ folder, the module files themselves ({modules}), or one .zip file holding {package}/"
SHOWN_WHEN = {"after_published": "once grades are published", "after_due_date": "after the due date",
              "hidden": "to instructors only"}


class SubmissionError(Exception):
    """Nothing gradable was uploaded; the message says what to upload instead."""


# --- 1. the submission -------------------------------------------------------

def _entries(folder: Path) -> list[os.DirEntry]:
    with os.scandir(folder) as it:
        return sorted((e for _, e in zip(range(MAX_ENTRIES), it)), key=lambda e: e.name)


def _has_package(folder: Path, package: str) -> bool:
    """Something named `package` at the top or in a folder one down, where
    `llmfs grade` looks for it (it refuses links and files there itself)."""
    for e in _entries(folder):
        if e.name == package or (e.is_dir(follow_symlinks=False) and os.path.lexists(Path(e.path) / package)):
            return True
    return False


def accepted(package: str, modules: list[str]) -> str:
    """What a student may upload, in their terms."""
    shown = ", ".join(f"{m}.py" for m in modules[:3]) + (", ..." if len(modules) > 3 else "")
    return ACCEPTED.format(package=package, modules=shown)


def arrange(submission: Path, scratch: Path, package: str, modules: list[str],
            upload: str = "") -> tuple[Path, list[str]]:
    """The path to hand to `llmfs grade` (a folder holding `package`/, or a .zip),
    and notes on what was done. Reads `submission`; writes only under `scratch`.
    `upload` says what may be uploaded instead, when nothing here can be graded."""
    upload = upload or accepted(package, modules)
    if not submission.is_dir():
        raise SubmissionError(f"no submission folder was found; upload {upload}")
    if _has_package(submission, package):
        return submission, []
    entries = _entries(submission)
    wanted = {f"{m}.py" for m in modules}
    files = [e for e in entries if e.name in wanted]
    if files:
        pkg = scratch / package
        pkg.mkdir(parents=True)
        for e in files:
            if not e.is_file(follow_symlinks=False):
                raise SubmissionError(f"{report.printable(e.name)} is not a regular file; upload the file itself")
            with open(os.open(e.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK), "rb") as f:
                if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                    raise SubmissionError(f"{report.printable(e.name)} is not a regular file")
                data = f.read(MAX_FILE_BYTES + 1)
            if len(data) > MAX_FILE_BYTES:
                raise SubmissionError(f"{e.name} is larger than {MAX_FILE_BYTES} bytes")
            (pkg / e.name).write_bytes(data)
        names = ", ".join(e.name for e in files)
        return scratch, [f"graded the module files uploaded without a {package}/ folder: {names}"]
    zips = [e for e in entries if e.name.lower().endswith(".zip") and e.is_file(follow_symlinks=False)]
    if len(zips) == 1:
        return Path(zips[0].path), []
    if len(zips) > 1:
        shown = ", ".join(report.printable(e.name, 100) for e in zips[:5])
        raise SubmissionError(f"several .zip files were uploaded ({shown}); upload one")
    raise SubmissionError(f"nothing to grade was found in the upload; upload {upload}")


# --- 2. grading --------------------------------------------------------------

def grade(source: Path, target: Path, units: list[str], out: Path, timeout_s: float) -> tuple[dict | None, str]:
    """Run `llmfs grade` on `target` in a child process; (its JSON report, or
    None and one line saying why)."""
    cmd = [sys.executable, "-m", "grader", "--course", str(source / "course.toml"), "grade", str(target),
           "--format", "json", "--out", str(out)]
    for u in units:
        cmd += ["--unit", u]
    proc = subprocess.Popen(cmd, cwd=source, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return None, f"grading took longer than {timeout_s:g} s and was stopped"
    err = stderr.decode("utf-8", "replace")
    sys.stdout.write(err)  # for the instructor (standard output is hidden from students)
    if proc.returncode in (0, 1) and out.is_file():
        try:
            return json.loads(out.read_text(encoding="utf-8")), ""
        except ValueError:
            return None, "the grader's report could not be read"
    lines = err.strip().splitlines()
    last = lines[-1] if lines else f"no message (exit status {proc.returncode})"
    return None, "the grader failed: " + report.printable(last.removeprefix("llmfs: "), 300)


# --- 3. results.json ---------------------------------------------------------

def _grade_from(data: dict) -> Grade:
    """The Grade that `llmfs grade --format json` wrote (its schema 1)."""
    def build(cls, d):
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})
    return Grade(submission=data["submission"], score=data["score"], max_score=data["max_score"],
                 units=[build(UnitScore, u) for u in data["units"]], tests=[build(TestScore, t) for t in data["tests"]],
                 isolation=data.get("isolation") or {}, notes=list(data.get("notes") or []), error=data.get("error"))


def to_results(data: dict, hidden_visibility: str, notes: Sequence[str] = (), execution_time: float = 0.0,
               upload: str = "") -> dict:
    """Gradescope's results.json from `llmfs grade`'s JSON report. `upload`
    (what may be uploaded) is added to the output when grading was refused."""
    g = _grade_from(data)
    g.notes = [*notes, *g.notes]
    # The unit table, dependency notes, notes and isolation; the tests are listed one by one below.
    output = report.to_text(dataclasses.replace(g, submission="your submission", tests=[]))
    if g.error and upload:
        output += f"\nYou may upload {upload}.\n"
    if any(t.hidden for t in g.tests):
        output += (f"\nHidden tests count in the scores above; each one's result is shown "
                   f"{SHOWN_WHEN.get(hidden_visibility, hidden_visibility)}, with a summary only.\n")
    tests = []
    for t in g.tests:
        where = "hidden" if t.hidden else "public"
        tests.append({"name": f"{t.unit} {where}: {t.name}", "score": t.score, "max_score": t.max_score,
                      "status": "passed" if t.status == "passed" else "failed",
                      "output": t.message if t.status != "passed" else "",
                      "visibility": hidden_visibility if t.hidden else "visible",
                      "tags": [t.unit]})
    return {"score": g.score, "execution_time": math.ceil(execution_time), "output": output,
            "stdout_visibility": "hidden", "tests": tests}


def failed_results(reason: str, execution_time: float = 0.0) -> dict:
    """results.json for a submission that could not be graded: 0 points, one line why."""
    return {"score": 0, "execution_time": math.ceil(execution_time),
            "output": f"This submission could not be graded (score 0): {reason}\n",
            "stdout_visibility": "hidden", "tests": []}


def write_results(path: Path, results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=1, ensure_ascii=True), encoding="utf-8")
    os.replace(tmp, path)


# --- all of it ---------------------------------------------------------------

def run(root: Path, units: list[str], hidden_visibility: str, timeout_s: float | None) -> dict:
    """Grade ROOT/submission; the results.json to write (never raises for a bad submission)."""
    start = time.monotonic()
    source = root / "source"
    course = load_course(source / "course.toml")
    graded = units or [u.id for u in course.ready_units]
    modules = [m for u in course.ready_units for m in u.modules]
    upload = accepted(course.package, [m for u in graded for m in course.unit(u).modules])
    limit = timeout_s if timeout_s is not None else course.defaults.submission_timeout_s + TIMEOUT_MARGIN_S
    scratch = Path(tempfile.mkdtemp(prefix="llmfs-gradescope-"))
    try:
        try:
            target, notes = arrange(root / "submission", scratch / "upload", course.package, modules, upload)
        except (SubmissionError, OSError) as e:
            reason = str(e) if isinstance(e, SubmissionError) else f"the upload could not be read ({e.strerror})"
            return failed_results(reason, time.monotonic() - start)
        data, reason = grade(source, target, graded, scratch / "grade.json", limit)
        if data is None:
            return failed_results(reason, time.monotonic() - start)
        return to_results(data, hidden_visibility, notes, time.monotonic() - start, upload)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m grader.export.gradescope_run",
                                description="Grade a Gradescope submission and write results.json.")
    p.add_argument("--root", default=os.environ.get(ROOT_VARIABLE) or DEFAULT_ROOT,
                   help=f"the autograder folder (default: ${ROOT_VARIABLE}, else {DEFAULT_ROOT})")
    p.add_argument("--unit", action="append", dest="units", default=[], metavar="UNIT")
    p.add_argument("--hidden-visibility", choices=HIDDEN_VISIBILITIES, default="after_published")
    p.add_argument("--timeout-s", type=float, default=None)
    args = p.parse_args(argv)
    root = Path(args.root)
    try:
        results = run(root, args.units, args.hidden_visibility, args.timeout_s)
    except Exception as e:  # the autograder's own failure: still a results.json, and the details for the instructor
        traceback.print_exc(file=sys.stdout)
        results = failed_results(f"the autograder failed ({type(e).__name__}); please tell your instructor")
    write_results(root / "results" / "results.json", results)
    print(f"score {results['score']}; {len(results['tests'])} tests")
    print(results["output"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
