"""`llmfs grade SUBMISSION`: grade one submission against public and hidden tests."""

from __future__ import annotations

import sys
from pathlib import Path

from . import report
from .errors import UserError
from .judge import MODES, Options, grade
from .remote import GradingRefused


def register(sub) -> None:
    p = sub.add_parser(
        "grade", help="grade one submission (a folder or .zip holding scratchllm/) with the hidden tests",
        description="Grade one submission: its code runs in a sandboxed worker process; the public and hidden "
                    "tests run here and compute the score. 'solutions' and 'exercises' grade the reference and "
                    "the stubs. The worker cannot read hidden tests or solutions and has no network: as root, and "
                    "as a normal user where Linux allows user namespaces; elsewhere grading is refused unless "
                    "--insecure.")
    p.add_argument("submission", help="a folder or .zip holding scratchllm/, or 'solutions' / 'exercises'")
    p.add_argument("--unit", action="append", dest="units", metavar="UNIT",
                   help="grade only this unit (repeatable; default: every ready unit)")
    p.add_argument("--format", choices=("text", "json", "html"), default="text",
                   help="report format (default text; html: one self-contained web page, best with --out)")
    p.add_argument("--out", metavar="FILE", help="write the report to FILE instead of standard output")
    p.add_argument("--isolation", choices=MODES, default="auto",
                   help="'auto' (default): 'root' as root, else 'userns' (the same sandbox in a user namespace) "
                        "where the kernel allows it, else 'user' (a plain process: needs --insecure)")
    p.add_argument("--insecure", action="store_true",
                   help="grade even if the worker could read hidden files (not for real grading)")
    p.set_defaults(func=_main)


def resolve_submission(course, spec: str) -> Path:
    """'solutions' (only modules with TODOs: exactly a submission), 'exercises', or a path."""

    if spec == "solutions":
        if not (course.solutions / course.package).is_dir():
            raise UserError("this course has no solutions/ (a student release?)")
        return course.solutions
    if spec == "exercises":
        return course.exercises
    path = Path(spec)
    if not path.exists():
        raise UserError(f"{spec}: no such file or folder")
    return path


def _main(args) -> int:
    from .cli import course_from

    course = course_from(args)
    for u in args.units or []:
        if not course.unit(u).ready:
            raise UserError(f"unit {u} is planned, not ready: it has nothing to grade yet")
    submission = resolve_submission(course, args.submission)
    try:
        g = grade(course, submission, Options(units=args.units, insecure=args.insecure, isolation=args.isolation))
    except GradingRefused as e:
        raise UserError(str(e)) from None
    g.submission = args.submission
    if args.format == "html":
        from .html_report import grade_html

        text = grade_html(g)
    else:
        text = report.to_json(g) if args.format == "json" else report.to_text(g)
    if args.out:
        try:
            Path(args.out).write_text(text, encoding="utf-8")
        except OSError as e:
            raise UserError(f"cannot write the report to {args.out}: {e.strerror or e}") from None
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0 if g.error is None else 1
