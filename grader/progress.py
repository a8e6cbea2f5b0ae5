"""A pytest plugin that reports progress to a parent process.

``-p grader.progress`` makes pytest write one line per finished test to the
process's real stderr (file descriptor 2), even while `grader.results`
captures everything else:

    llmfs-progress DONE TOTAL

`llmfs validate` runs pytest in a child process this way and turns the lines
into a progress display; `read_progress` parses them.
"""

from __future__ import annotations

import os

PREFIX = "llmfs-progress"

_state = {"done": 0, "total": 0}


def _emit() -> None:
    line = f"{PREFIX} {_state['done']} {_state['total']}\n".encode("ascii")
    try:
        os.write(2, line)
    except OSError:  # pragma: no cover - stderr closed; progress is best effort
        pass


def pytest_collection_finish(session) -> None:
    _state["done"], _state["total"] = 0, len(session.items)
    _emit()


def pytest_runtest_logfinish(nodeid, location) -> None:
    _state["done"] += 1
    _emit()


def read_progress(line: str) -> tuple[int, int] | None:
    """(done, total) if `line` is a progress line, else None."""
    parts = line.split()
    if len(parts) == 3 and parts[0] == PREFIX and parts[1].isdigit() and parts[2].isdigit():
        return int(parts[1]), int(parts[2])
    return None
