"""`llmfs grade-all DIR`: grade every submission in a folder.

Each subfolder or .zip of DIR is one submission. Each is graded by its own
``llmfs grade`` process, so one broken submission (or a grader crash on
it) never stops the batch; it gets a row with score 0 and the reason. Rows
are appended to the CSV as submissions finish, so an interrupted batch
resumes where it stopped: submissions already in the CSV are skipped unless
``--force``. Each submission's JSON report is kept beside the CSV.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from tqdm import tqdm

from . import report
from .errors import UserError
from .judge import MODES

MARGIN_S = 120  # on top of the per-submission limit, for start-up and the tests' own work


def find_submissions(folder: Path) -> list[Path]:
    subs = [p for p in sorted(folder.iterdir())
            if not p.name.startswith(".") and (p.is_dir() or p.suffix.lower() == ".zip")]
    return subs


def submission_name(path: Path) -> str:
    """The name a submission has in the CSV (and when resuming): its file or
    folder name, escaped as reports show it (a name need not be UTF-8)."""
    return report.printable(path.stem if path.suffix.lower() == ".zip" else path.name, report.MAX_NAME)


def already_graded(csv_path: Path) -> set[str]:
    if not csv_path.is_file():
        return set()
    with csv_path.open(encoding="utf-8", newline="") as fh:
        return {row["submission"] for row in csv.DictReader(fh) if row.get("submission")}


def grade_one(course, path: Path, reports_dir: Path, units: list[str], extra: list[str]) -> list[str]:
    """Grade in a child process; always returns a CSV row."""
    name = submission_name(path)
    out = reports_dir / f"{name}.json"
    cmd = [sys.executable, "-m", "grader", "--course", str(course.path), "grade", str(path),
           "--format", "json", "--out", str(out), *extra]
    for u in units:
        cmd += ["--unit", u]
    limit = course.defaults.submission_timeout_s + MARGIN_S
    error = None
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8", errors="replace",
                              timeout=limit)
        if proc.returncode not in (0, 1) or not out.is_file():
            lines = (proc.stderr or proc.stdout).strip().splitlines()
            error = f"grader failed (exit {proc.returncode}): {lines[-1] if lines else 'no output'}"
    except subprocess.TimeoutExpired:
        error = f"grading took longer than {limit:g} s"
    if error is None:
        data = json.loads(out.read_text(encoding="utf-8"))
        by_unit = {u["id"]: report._num(u["score"]) for u in data["units"]}
        return [name, report._num(data["score"]), report._num(data["max_score"]),
                *[by_unit.get(u, "0") for u in units], data.get("error") or ""]
    max_score = sum(course.unit(u).points for u in units)
    return [name, "0", report._num(max_score), *["0" for _ in units], error]


def grade_all(course, folder: Path, out_csv: Path, *, jobs: int = 1, force: bool = False,
              units: list[str] | None = None, extra: list[str] | None = None, progress: bool = True) -> int:
    units = units or [u.id for u in course.ready_units]
    subs = find_submissions(folder)
    header = report.csv_header(units)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    if force or not out_csv.is_file():
        with out_csv.open("w", encoding="utf-8", newline="") as fh:
            report.write_csv([], header, fh)
        done = set()
    else:
        with out_csv.open(encoding="utf-8", newline="") as fh:
            existing = next(csv.reader(fh), [])
        if existing != header:
            raise UserError(f"{out_csv} has other columns than this course's units; use --force or another --out")
        done = already_graded(out_csv)
    todo = [p for p in subs if submission_name(p) not in done]
    reports_dir = out_csv.with_name(out_csv.stem + "-reports")
    reports_dir.mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()
    bar = tqdm(total=len(todo), unit="submission", desc="grading", disable=not progress, file=sys.stderr)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(grade_one, course, p, reports_dir, units, extra or []): p for p in todo}
        for fut in as_completed(futures):
            row = fut.result()
            with lock, out_csv.open("a", encoding="utf-8", newline="") as fh:
                csv.writer(fh, lineterminator="\n").writerow(row)
            bar.update(1)
    bar.close()
    print(f"graded {len(todo)} submission(s), skipped {len(subs) - len(todo)} already in {out_csv}; "
          f"reports in {reports_dir}", file=sys.stderr)
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "grade-all", help="grade every submission (subfolder or .zip) in a folder into a CSV",
        description="Grade each subfolder or .zip of DIR as one submission, each in its own process, and "
                    "append one row per submission to the CSV (plus a JSON report per submission beside it). "
                    "Submissions already in the CSV are skipped, so an interrupted batch can be resumed.")
    p.add_argument("folder", metavar="DIR", help="folder holding one submission per subfolder or .zip")
    p.add_argument("--out", default="grades.csv", help="CSV file to write (default grades.csv)")
    p.add_argument("--jobs", "-j", type=int, default=1, help="submissions graded at once (default 1)")
    p.add_argument("--force", action="store_true", help="regrade everything, replacing the CSV")
    p.add_argument("--unit", action="append", dest="units", metavar="UNIT", help="grade only this unit")
    p.add_argument("--isolation", choices=MODES, default="auto", help="as for llmfs grade")
    p.add_argument("--insecure", action="store_true", help="as for llmfs grade (not for real grading)")
    p.set_defaults(func=_main)


def _main(args) -> int:
    from .cli import course_from

    course = course_from(args)
    folder = Path(args.folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder")
    if args.jobs < 1:
        raise UserError("--jobs must be at least 1")
    return grade_all(course, folder, Path(args.out), jobs=args.jobs, force=args.force, units=args.units,
                     extra=["--isolation", args.isolation, *(["--insecure"] if args.insecure else [])])
