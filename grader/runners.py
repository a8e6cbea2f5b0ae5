"""Running a probe against a package: `student.run(probe, *args)`.

`InProcessRunner` calls the probe right here, which is what plain
``pytest`` uses, so tracebacks and ``pdb`` work as students expect. It still
enforces the rules the worker will: the probe must be shippable, arguments
and results must be plain data with exact types, arguments are copied so
the callee cannot change the caller's inputs, and the unit's forbidden
operators fail the call (`grader.forbid.OperatorCheck`). A test that passes in-process
therefore means the same thing under ``llmfs grade``, where
`grader.worker.WorkerRunner` sends the same call to another process.
"""

from __future__ import annotations

import hashlib
import hmac
import random
from types import ModuleType
from typing import Callable

import numpy as np
import torch

from .failures import StudentResultError
from .probes import describe
from .targets import import_modules
from .wire import NotPlainData, check_plain, copy_plain


def call_seed(nodeid: str, call_index: int, secret: bytes = b"") -> int:
    """The seed for the n-th probe call of a test: the same for the student and
    the reference, and on every regrade. Keyed by the course's `secret` (see
    `grader.course.Course.seed_secret`), so the worker cannot tell from its seed
    which test is calling it."""
    message = f"{nodeid.split('::', 1)[-1]}#{call_index}".encode("utf-8")
    return int.from_bytes(hmac.new(secret, message, hashlib.sha256).digest()[:4], "little")


def one_thread() -> None:
    """Run torch on one thread, in the judge, in `llmfs check` and in the worker
    alike: the same work then takes the same time everywhere, and concurrent
    gradings do not fight over cores."""
    torch.set_num_threads(1)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch before a probe call, so grading is repeatable."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def check_arguments(args: tuple, kwargs: dict) -> None:
    check_plain(list(args), "the probe's arguments")
    check_plain(kwargs, "the probe's keyword arguments")


class InProcessRunner:
    """Runs probes against a package loaded in this process."""

    def __init__(self, load_package: Callable[[], ModuleType], modules: tuple[str, ...], label: str,
                 nodeid: str = "", seed_secret: bytes = b"", operator_check=None):
        self._load = load_package
        self.modules = modules
        self.label = label
        self.nodeid = nodeid
        self.seed_secret = seed_secret
        self.operator_check = operator_check  # grader.forbid.OperatorCheck for the unit, or None
        self.calls = 0

    def run(self, probe, *args, **kwargs):
        __tracebackhide__ = True  # in a failure, pytest shows the test and the student's code, not this
        describe(probe)  # refuse probes the worker could not run
        check_arguments(args, kwargs)
        pkg = self._load()
        import_modules(pkg, self.modules)
        self.calls += 1
        seed_everything(call_seed(self.nodeid, self.calls, self.seed_secret))
        if self.operator_check is None:
            result = probe(pkg, *copy_plain(list(args)), **copy_plain(kwargs))
        else:
            with self.operator_check.active():
                result = probe(pkg, *copy_plain(list(args)), **copy_plain(kwargs))
        try:
            check_plain(result, f"the result of {probe.__name__}")
        except NotPlainData as e:
            raise StudentResultError(f"{self.label} code returned something that is not plain data: {e}") from None
        return result

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label}>"
