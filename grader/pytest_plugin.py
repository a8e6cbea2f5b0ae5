"""The pytest side of the course: targets, markers and fixtures.

Loaded by the course's root conftest.py. It gives every course test:

- ``--target exercises|solutions|PATH``: which tree ``scratchllm`` is
  (default ``exercises``); see `grader.targets`.
- markers ``u01`` .. ``u09`` (one per unit in course.toml), so ``pytest -m u04``
  selects a unit, and ``weight(n)`` for a test worth n shares of its unit.
- fixtures ``student`` and ``reference`` with ``.run(probe, *args, **kwargs)``,
  and a seeded ``rng`` (a torch.Generator) and ``seed``.

``llmfs grade`` swaps the student runner for one that talks to a worker
process, through `set_student_runner_factory`; the tests do not change.
"""

from __future__ import annotations

import os
import re
import zlib
from pathlib import Path

import pytest

from .course import Course, CourseError, load_course, unit_of_test_file
from .failures import Failure
from .forbid import OperatorCheck
from .runners import InProcessRunner
from .targets import Target, TargetError, load_package, resolve_target

COURSE_KEY = pytest.StashKey[Course]()
TARGET_KEY = pytest.StashKey[Target]()
FACTORY_KEY = pytest.StashKey[object]()
REFERENCE_NAME = "scratchllm_reference"
_loaded: dict = {}  # package name -> the Target it was loaded from


def pytest_addoption(parser):
    group = parser.getgroup("llmfs", "llm-from-scratch course")
    group.addoption("--target", default=os.environ.get("LLMFS_TARGET", "exercises"),
                    help="which scratchllm to test: 'exercises' (default), 'solutions', "
                         "or a folder holding scratchllm/")
    group.addoption("--course", default=None, help="path to course.toml (default: found from the rootdir)")


def pytest_configure(config):
    config.addinivalue_line("markers", "weight(n): this test counts n shares of its unit's points")
    try:
        course = config.stash.get(COURSE_KEY, None)  # handed over by the judge, check or validate
        if course is None:
            course = load_course(config.getoption("--course") or _find_course(config))
        config.stash[COURSE_KEY] = course
        target = resolve_target(course, config.getoption("--target"))
    except (CourseError, TargetError) as e:
        raise pytest.UsageError(str(e)) from None
    config.stash[TARGET_KEY] = target
    for unit in course.units:
        config.addinivalue_line("markers", f"{unit.id}: unit {unit.id}, {unit.title}")
    # `import scratchllm` anywhere in this session means the chosen target.
    load_package(target, course.package)
    _loaded[course.package] = target


def _find_course(config) -> Path:
    for d in (Path(config.rootpath), *Path(config.rootpath).parents):
        if (d / "course.toml").is_file():
            return d / "course.toml"
    return Path.cwd()


def pytest_report_header(config):
    target = config.stash.get(TARGET_KEY, None)
    if target is not None:
        return f"llmfs target: {target.label} ({', '.join(str(d) for d in target.dirs)})"
    return None


def set_student_runner_factory(config, factory) -> None:
    """Install `factory(unit) -> runner` for the ``student`` fixture (used by the judge)."""
    config.stash[FACTORY_KEY] = factory


def unit_of(item) -> str | None:
    """The unit a test belongs to: its uNN marker, else its file name."""
    for mark in item.iter_markers():
        if re.fullmatch(r"u\d\d", mark.name):
            return mark.name
    return unit_of_test_file(Path(str(item.fspath)).name)


def weight_of(item) -> float:
    mark = item.get_closest_marker("weight")
    return float(mark.args[0]) if mark and mark.args else 1.0


def pytest_collection_modifyitems(config, items):
    # A test in test_u04_*.py belongs to u04 even without the marker, so
    # `pytest -m u04` and the grader agree on what a unit is.
    for item in items:
        unit = unit_of(item)
        if unit and not item.get_closest_marker(unit):
            item.add_marker(getattr(pytest.mark, unit))


def _unit_for(request):
    course: Course = request.config.stash[COURSE_KEY]
    uid = unit_of(request.node)
    if uid is None:
        raise pytest.UsageError(f"{request.node.nodeid}: cannot tell which unit this test belongs to; "
                                f"mark it with @pytest.mark.uNN or name the file test_uNN_*.py")
    return course.unit(uid)


@pytest.fixture
def student(request):
    """Runs probes against the target package (the student's code)."""
    unit = _unit_for(request)
    factory = request.config.stash.get(FACTORY_KEY, None)
    if factory is not None:
        return factory(unit, request.node)
    course: Course = request.config.stash[COURSE_KEY]
    target: Target = request.config.stash[TARGET_KEY]
    return InProcessRunner(lambda: _package(course.package, target), unit.modules, "your",
                           request.node.nodeid, course.seed_secret,
                           operator_check=OperatorCheck(unit.id, unit.forbid_ops, unit.forbid))


@pytest.fixture
def reference(request):
    """Runs probes against the reference solution (absent in a student release)."""
    unit = _unit_for(request)
    course: Course = request.config.stash[COURSE_KEY]
    try:
        target = resolve_target(course, "solutions")
    except TargetError as e:
        pytest.fail(f"this test needs the reference solution: {e}", pytrace=False)
    return InProcessRunner(lambda: _package(REFERENCE_NAME, target), unit.modules, "the reference",
                           request.node.nodeid, course.seed_secret)


class HandOver:
    """A pytest plugin that gives the session a Course already loaded, so that
    `llmfs --course FILE ...` means the same course inside pytest."""

    def __init__(self, course: Course):
        self.course = course

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(self, config):
        config.stash[COURSE_KEY] = self.course


def load_reference(course: Course, modules) -> None:
    """Load the reference package and the given modules now, not at first use."""
    from .targets import import_modules

    import_modules(_package(REFERENCE_NAME, resolve_target(course, "solutions")), list(modules))


def _package(name: str, target: Target):
    import sys

    mod = sys.modules.get(name)
    if mod is None or _loaded.get(name) != target:
        mod = load_package(target, name)
        _loaded[name] = target
    return mod


@pytest.fixture
def seed(request) -> int:
    """A seed that depends only on the test's name: stable across runs and machines."""
    return zlib.crc32(request.node.nodeid.split("::", 1)[-1].encode("utf-8"))


@pytest.fixture
def rng(seed):
    """A torch.Generator seeded from the test's name."""
    import torch

    return torch.Generator().manual_seed(seed)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if call.excinfo is not None and report.when == "call":
        exc = call.excinfo.value
        report.user_properties.append(("exc_type", getattr(exc, "student_type", None) or call.excinfo.typename))
        if isinstance(exc, Failure):
            report.user_properties += list(exc.record().items())
