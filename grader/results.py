"""Running course tests with pytest and collecting what happened to each.

`run_pytest` runs pytest in this process with a collector plugin and
returns one `TestResult` per test: outcome, unit, weight, the type of the
exception that failed it, and its message. `llmfs check`, `llmfs validate`,
the judge and the kit's own tests all read results this way, never by
parsing pytest's output.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .pytest_plugin import HandOver, unit_of, weight_of


@dataclass
class TestResult:
    __test__ = False  # not a pytest test class

    nodeid: str
    unit: str | None
    weight: float = 1.0
    outcome: str = "notrun"  # passed | failed | error | skipped | notrun (never reached)
    exc_type: str | None = None
    message: str = ""
    summary: str | None = None
    duration: float = 0.0
    hidden: bool = False
    props: dict = field(default_factory=dict)  # what the plugin recorded about the failure

    @property
    def name(self) -> str:
        return self.nodeid.split("::", 1)[-1]


@dataclass(eq=False)
class Collector:
    hidden_dir: Path | None = None
    results: dict[str, TestResult] = field(default_factory=dict)
    collect_errors: list[tuple[str, str]] = field(default_factory=list)
    items: dict[str, object] = field(default_factory=dict)

    def pytest_collection_finish(self, session):
        for item in session.items:  # after deselection by -m / -k
            hidden = bool(self.hidden_dir and Path(str(item.fspath)).resolve().is_relative_to(self.hidden_dir))
            self.results[item.nodeid] = TestResult(item.nodeid, unit_of(item), weight_of(item), hidden=hidden)

    def pytest_collectreport(self, report):
        if report.failed:
            self.collect_errors.append((report.nodeid, str(report.longrepr)))

    def pytest_runtest_logreport(self, report):
        r = self.results.get(report.nodeid)
        if r is None:
            return
        r.duration += report.duration
        props = dict(report.user_properties)
        settled = r.outcome not in ("notrun", "passed")
        if report.failed and not settled:
            r.outcome = "failed" if report.when == "call" else "error"
            r.message = _message(report)
            r.exc_type = props.get("exc_type") or _exc_type(report)
            r.summary = props.get("summary")
            r.props = {k: v for k, v in props.items() if isinstance(v, str)}
        elif report.skipped and r.outcome == "notrun":
            r.outcome = "skipped"
            r.message = _message(report)
        elif report.passed and report.when == "call" and r.outcome == "notrun":
            r.outcome = "passed"

def _message(report) -> str:
    longrepr = report.longrepr
    missing_fixture = getattr(longrepr, "errorstring", None)  # e.g. "fixture 'x' not found"
    if missing_fixture:
        return str(missing_fixture).strip().splitlines()[0]
    crash = getattr(getattr(longrepr, "reprcrash", None), "message", None)
    if crash:
        return crash
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr).strip().splitlines()[-1] if longrepr else ""


def _exc_type(report) -> str | None:
    crash = getattr(getattr(report.longrepr, "reprcrash", None), "message", "") or ""
    head = crash.split(":", 1)[0].strip()
    return head.rsplit(".", 1)[-1] if head and " " not in head else None


def run_pytest(args: list[str], *, hidden_dir: Path | None = None, quiet: bool = True,
               plugins: tuple = (), course=None) -> tuple[int, Collector]:
    """Run pytest with `args`; return its exit code and the collector. A
    `course` given here is the one the session uses (not course.toml reread)."""
    collector = Collector(hidden_dir=hidden_dir.resolve() if hidden_dir else None)
    if course is not None:
        plugins = (HandOver(course), *plugins)
    argv = ["-p", "no:cacheprovider", *args]
    if quiet:
        argv = ["-q", "--no-header", "--tb=no", "-p", "no:warnings", *argv]
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = pytest.main(argv, plugins=[collector, *plugins])
        if code in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.INTERNAL_ERROR):
            tail = out.getvalue().strip().splitlines()
            collector.collect_errors.append(("pytest", "\n".join(tail[-5:])))
    else:
        code = pytest.main(argv, plugins=[collector, *plugins])
    return int(code), collector


def main(argv: list[str] | None = None) -> int:
    """``python -m grader.results PYTEST_ARGS...``: run pytest quietly and print
    one JSON object with every test's result (for tools and the kit's tests)."""
    import dataclasses
    import json
    import sys

    argv = sys.argv[1:] if argv is None else argv
    hidden = None
    if argv[:1] == ["--hidden-dir"]:
        hidden, argv = Path(argv[1]), argv[2:]
    code, collector = run_pytest(argv, hidden_dir=hidden)
    json.dump({"exit_code": code,
               "results": [dataclasses.asdict(r) for r in collector.results.values()],
               "collect_errors": collector.collect_errors}, sys.stdout, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
