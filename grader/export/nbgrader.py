"""`llmfs export nbgrader`: being written (issue 15)."""

from __future__ import annotations

from ..errors import UserError


def register(sub) -> None:
    p = sub.add_parser("nbgrader", help="(not written yet)")
    p.set_defaults(func=_main)


def _main(args) -> int:
    raise UserError("llmfs export nbgrader is not written yet")
