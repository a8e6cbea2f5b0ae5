"""Grading one submission: intake, static checks, the worker, the tests, the score.

The judge is pytest running the units' public and hidden tests in this
process. It never imports submission code: its ``scratchllm`` is the
exercises tree, and the ``student`` fixture sends every probe to the worker
(`grader.remote`). Scores are computed here, from the judge's own records.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from . import forbid, intake
from .course import Course
from .pytest_plugin import set_student_runner_factory
from .remote import GradingRefused, WorkerFailure, WorkerPool, WorkerRunner
from .results import run_pytest
from .sandbox import protected_roots
from .scoring import Grade, score
from .todos import read_source

UID_BASE = 200_000  # an unused uid per grading process, so its processes are its own


@dataclass
class Options:
    units: list[str] | None = None
    insecure: bool = False
    isolation: str = "auto"  # auto | root | user
    fork_first: bool = True  # start the first worker by fork (faster); False: exec, like restarts


class _GradingPlugin:
    def __init__(self, pool: WorkerPool, blocked: dict[str, str]):
        self.pool, self.blocked = pool, blocked

    def pytest_configure(self, config):
        set_student_runner_factory(
            config, lambda unit, item: WorkerRunner(self.pool, unit, item.nodeid, self.blocked.get(unit.id)))


def test_files(course: Course, unit_ids: list[str]) -> list[str]:
    files = []
    for uid in unit_ids:
        files += sorted(str(p) for p in course.public_tests.glob(f"test_{uid}_*.py"))
        files += sorted(str(p) for p in course.hidden_tests.glob(f"test_{uid}_*.py"))
    return files


def secret_paths(course: Course) -> list[str]:
    """What student code must not be able to read when files are hidden: the
    course's hidden tests and solutions, and those of the grader's own checkout."""
    paths: list[Path] = []
    for root in protected_roots(course.root):
        hidden, solutions = root / "grader" / "hidden", root / "solutions"
        paths += [root, hidden, solutions, root / "course.toml"]
        paths += sorted(hidden.glob("*.py"))[:3] + sorted((solutions / course.package).glob("*.py"))[:3]
    paths += [course.hidden_tests, course.solutions]
    return sorted({str(p) for p in paths if p.exists()})


def choose_mode(requested: str) -> str:
    if requested == "auto":
        return "root" if os.geteuid() == 0 else "user"
    return requested


def static_problems(course: Course, staged: intake.Staged, unit_ids: list[str]) -> dict[str, str]:
    """unit -> why all its tests fail before running (bad encoding, forbidden APIs)."""
    blocked: dict[str, str] = {}
    for uid in unit_ids:
        unit = course.unit(uid)
        reasons = [staged.invalid[m] for m in unit.modules if m in staged.invalid]
        for m in unit.modules:
            if m not in staged.taken or not unit.forbid:
                continue
            try:
                found = forbid.scan(read_source(staged.package_dir / f"{m}.py"), m, unit.forbid)
            except SyntaxError:
                continue  # the worker reports it as an import error, with the line
            reasons += [str(v) for v in found]
        if reasons:
            blocked[uid] = "; ".join(reasons)
    return blocked


def grade(course: Course, submission: Path, options: Options | None = None) -> Grade:
    options = options or Options()
    unit_ids = options.units or [u.id for u in course.ready_units]
    name = Path(submission).name
    try:
        staged = intake.stage(course, Path(submission))
    except intake.IntakeError as e:
        g = score(course, [], unit_ids, name)
        g.error = f"submission refused: {e}"
        for u in g.units:
            u.message = "submission refused"
        return g

    mode = choose_mode(options.isolation)
    # The first worker is forked from this process, which holds nothing secret yet:
    # no test file and no reference module has been loaded.
    pool = WorkerPool(course, staged.package_dir, mode=mode, uid=UID_BASE + os.getpid() % 100_000,
                      limits=course.defaults, fork_first=options.fork_first)
    try:
        try:
            isolation = pool.start()
        except WorkerFailure as e:
            if mode == "root" and not options.insecure:
                raise GradingRefused(f"could not start the sandboxed worker ({e}); fix the machine, "
                                     f"or pass --insecure to grade without file hiding") from None
            raise
        readable = pool.can_read(secret_paths(course))
        if mode == "root" and readable and not options.insecure:
            raise GradingRefused(f"the worker can read {readable[0]}; refusing to grade "
                                 f"(pass --insecure to grade anyway)")
        blocked = static_problems(course, staged, unit_ids)
        torch.set_num_threads(1)
        files = test_files(course, unit_ids)
        args = [*files, "--target", "exercises", "-m", " or ".join(unit_ids), "--rootdir", str(course.root),
                "-c", str(course.root / "pyproject.toml"), "-p", "no:randomly"]
        _, collector = run_pytest(args, hidden_dir=course.hidden_tests, plugins=(_GradingPlugin(pool, blocked),))
        g = score(course, list(collector.results.values()), unit_ids, name, unit_messages=blocked)
        g.isolation = {**isolation.as_plain(), "hidden_files_readable": bool(readable),
                       "worker_restarts": pool.restarts}
        g.notes += staged.notes
        if staged.missing:
            g.notes.append(f"not in the submission (the stubs were graded): "
                           f"{', '.join(m + '.py' for m in staged.missing)}")
        for nodeid, text in collector.collect_errors:
            g.notes.append(f"grader problem collecting {nodeid}: {text.strip().splitlines()[-1][:200]}")
        return g
    finally:
        pool.close()
        staged.cleanup()
