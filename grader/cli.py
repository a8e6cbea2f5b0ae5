"""`llmfs`: the course's command line.

Each subcommand lives in its own module, which defines
``register(subparsers)`` to add its parser and set ``func``. Errors the user
can fix (a bad course.toml, a missing target) are printed as one line and
exit with status 2; they never show a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .course import CourseError, load_course
from .errors import UserError
from .targets import TargetError

# Modules that define a subcommand, in the order `llmfs --help` lists them.
COMMANDS = ("grader.check", "grader.grade", "grader.batch", "grader.validate", "grader.release", "grader.data_cmd",
            "grader.train_cmd", "grader.export")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmfs",
        description="llm-from-scratch: check your work, grade submissions, manage the course.",
        epilog="Run 'llmfs COMMAND --help' for the options of each command.")
    parser.add_argument("--course", metavar="PATH", default=None,
                        help="course.toml to use (default: the nearest one at or above the current folder)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def course_from(args):
    """The course named by --course, or found from the working directory."""
    return load_course(args.course)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (CourseError, TargetError, UserError) as e:
        print(f"llmfs: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("llmfs: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
