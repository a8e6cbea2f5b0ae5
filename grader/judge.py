"""Grading one submission: intake, static checks, the worker, the tests, the score.

The judge is pytest running the units' public and hidden tests in this
process. It never imports submission code: its ``scratchllm`` is the
exercises tree, and the ``student`` fixture sends every probe to the worker
(`grader.remote`). Scores are computed here, from the judge's own records.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from . import forbid, intake, sandbox
from .course import Course, Limits
from .pytest_plugin import load_reference, set_student_runner_factory
from .remote import GradingRefused, WorkerFailure, WorkerPool, WorkerRunner
from .results import run_pytest
from .runners import one_thread
from .sandbox import protected_roots
from .scoring import Grade, score
from .targets import TargetError

UID_BASE = 200_000  # an unused uid per grading process, so its processes are its own


MODES = ("auto", "root", "userns", "user")
NO_ISOLATION = ("cannot hide the hidden tests and solutions from student code here: grading as a normal user "
                "needs unprivileged user namespaces (Linux; see docs/grading.md). Grade as root (in a container) "
                "or on such a kernel, or pass --insecure for a grade you do not need to trust")


@dataclass
class Options:
    units: list[str] | None = None
    insecure: bool = False
    isolation: str = "auto"  # one of MODES


class _GradingPlugin:
    """Hands the student fixture to the worker; once every test file is
    collected, loads the reference, then lets the worker begin."""

    def __init__(self, course: Course, pool: WorkerPool, blocked: dict[str, str], unit_ids: list[str],
                 options: Options):
        self.course, self.pool, self.blocked, self.unit_ids, self.options = course, pool, blocked, unit_ids, options
        self.refused: GradingRefused | None = None
        self.readable: list[str] = []

    def pytest_configure(self, config):
        set_student_runner_factory(
            config, lambda unit, item: WorkerRunner(self.pool, unit, item.nodeid, self.blocked.get(unit.id)))

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, session, config, items):
        # Everything the judge will run is loaded before student code runs at all:
        # the test files (collected by now, probes included) and the reference.
        try:
            load_reference(self.course, [m for u in self.unit_ids for m in self.course.unit(u).modules])
        except TargetError:
            pass  # a course without solutions/: no hidden test can use the reference
        try:
            self.pool.start(self.course.unit(self.unit_ids[0]).limits)
            self.readable = self.pool.can_read(secret_paths(self.course))
        except WorkerFailure as e:
            if not self.options.insecure:
                self.refused = GradingRefused(f"could not start the sandboxed worker ({e}); fix the machine, "
                                              f"or pass --insecure to grade without file hiding")
                items.clear()
                return
            raise
        if self.readable and not self.options.insecure:
            self.refused = GradingRefused(f"the worker can read {self.readable[0]}; refusing to grade "
                                          f"(pass --insecure to grade anyway)")
            items.clear()


def test_files(course: Course, unit_ids: list[str]) -> list[str]:
    files = []
    for uid in unit_ids:
        files += [str(p) for p in course.test_files(uid) + course.test_files(uid, hidden=True)]
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
    """root as root; else user namespaces where the kernel allows them; else
    plain processes (`user`), which cannot hide files."""
    if requested == "auto":
        if os.geteuid() == 0:
            return "root"
        return "userns" if sandbox.user_namespaces_work() else "user"
    return requested


def course_digest(course: Course) -> str:
    """A digest of every file the judge may load (course.toml, the grader, tests,
    solutions, the student package's given modules), here and in the grader's
    own checkout, so that a change made during grading can be detected."""
    digest = hashlib.sha256()
    for root in protected_roots(course.root):
        for folder in ("grader", "solutions", "exercises"):
            for f in sorted((root / folder).rglob("*")):
                if f.is_file() and "__pycache__" not in f.parts and f.suffix in (".py", ".toml", ".json", ".txt",
                                                                                  ".pt", ".npy", ".npz"):
                    digest.update(str(f).encode("utf-8", "surrogateescape") + b"\0" + f.read_bytes())
        for f in sorted(root.glob("*.toml")) + sorted(root.glob("*.py")):
            digest.update(str(f).encode("utf-8", "surrogateescape") + b"\0" + f.read_bytes())
    return digest.hexdigest()


def describe_limits(limits: dict[str, Limits]) -> list[str]:
    """One line per distinct set of limits, naming the units it applied to."""
    groups: dict[Limits, list[str]] = {}
    for unit, lim in sorted(limits.items()):
        groups.setdefault(lim, []).append(unit)
    return [f"limits for {', '.join(units)}: {lim.call_timeout_s:g} s CPU per call, {lim.cpu_s} CPU s per worker, "
            f"{lim.memory_mb} MB memory, {lim.processes} processes, {lim.file_size_mb} MB files, "
            f"{lim.reply_mb} MB replies" for lim, units in groups.items()]


def static_problems(course: Course, staged: intake.Staged, unit_ids: list[str]) -> dict[str, str]:
    """unit -> why all its tests fail before running (bad encoding, the rules
    of `grader.forbid`: imports, private names, dynamic access, forbidden APIs)."""
    blocked: dict[str, str] = {}
    names = sorted(p.stem for p in staged.package_dir.glob("*.py"))

    def module_file(m: str) -> Path | None:
        path = staged.package_dir / f"{m}.py"
        return path if path.is_file() else None

    for uid in unit_ids:
        unit = course.unit(uid)
        reasons = [staged.invalid[m] for m in unit.modules if m in staged.invalid]
        reasons += [str(v) for v in forbid.unit_problems(course, unit, module_file, names)]
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
        return score(course, [], unit_ids, name, {uid: "submission refused" for uid in unit_ids},
                     error=f"submission refused: {e}")

    mode = choose_mode(options.isolation)
    if mode == "user" and not options.insecure:
        staged.cleanup()
        raise GradingRefused(NO_ISOLATION)
    before = course_digest(course)
    pool = WorkerPool(course, staged.package_dir, mode=mode, uid=UID_BASE + os.getpid() % 100_000,
                      seed_secret=course.seed_secret)
    # The first worker loads torch while the judge collects the tests. It runs no
    # student code until the plugin has loaded everything the judge needs.
    pool.launch(course.unit(unit_ids[0]).limits)
    try:
        blocked = static_problems(course, staged, unit_ids)
        one_thread()
        files = test_files(course, unit_ids)
        args = [*files, "--target", "exercises", "-m", " or ".join(unit_ids), "--rootdir", str(course.root),
                "-c", str(course.root / "pyproject.toml"), "-p", "no:randomly"]
        plugin = _GradingPlugin(course, pool, blocked, unit_ids, options)
        _, collector = run_pytest(args, hidden_dir=course.hidden_tests, plugins=(plugin,), course=course)
        if plugin.refused is not None:
            raise plugin.refused
        if course_digest(course) != before:
            raise GradingRefused("the course files changed while this submission was graded; the grade is void "
                                 "(is something else writing to the course folder?)")
        isolation = pool.isolation.as_plain()
        isolation["in_force"] = [line for line in isolation["in_force"] if not line.startswith("limits:")]
        isolation["in_force"] += describe_limits(pool.limits_used)
        notes = list(staged.notes)
        if staged.missing:
            notes.append(f"not in the submission (the stubs were graded): "
                         f"{', '.join(m + '.py' for m in staged.missing)}")
        notes += [f"grader problem collecting {nodeid}: {text.strip().splitlines()[-1][:200]}"
                  for nodeid, text in collector.collect_errors]
        return score(course, list(collector.results.values()), unit_ids, name, unit_messages=blocked,
                     isolation={**isolation, "mode": mode, "hidden_files_readable": bool(plugin.readable),
                                "worker_restarts": pool.restarts},
                     notes=notes)
    finally:
        pool.close()
        staged.cleanup()
