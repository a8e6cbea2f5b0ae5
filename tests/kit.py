"""Helpers for the kit's own tests: run course tests in a fresh process."""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_course_tests(*args: str, cwd: Path = ROOT, env: dict | None = None) -> dict:
    """Run pytest on course tests in a subprocess; return {nodeid: result dict}."""
    proc = subprocess.run([sys.executable, "-m", "grader.results", *args], cwd=cwd,
                          capture_output=True, text=True, encoding="utf-8",
                          env={**os.environ, **(env or {})}, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(proc.stdout)
    assert not data["collect_errors"], data["collect_errors"]
    return {r["nodeid"]: r for r in data["results"]}


_server: subprocess.Popen | None = None


def run_course_tests_reusing_process(*args: str, timeout: float = 600) -> dict:
    """Like run_course_tests, in one long-lived pytest process (tests/pytest_server.py)."""
    global _server
    if _server is None or _server.poll() is not None:
        _server = subprocess.Popen([sys.executable, str(Path(__file__).with_name("pytest_server.py"))],
                                   cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                   encoding="utf-8", env={**os.environ, "PYTHONPATH": str(ROOT)})
    _server.stdin.write(json.dumps(list(args)) + "\n")
    _server.stdin.flush()
    ready, _, _ = select.select([_server.stdout], [], [], timeout)
    if not ready:
        _server.kill()
        _server = None
        raise AssertionError(f"course tests did not finish within {timeout} s: {args}")
    line = _server.stdout.readline()
    if not line:
        _server = None
        raise AssertionError(f"the pytest server died running {args}")
    data = json.loads(line)
    assert not data["collect_errors"], data["collect_errors"]
    return {r["nodeid"]: r for r in data["results"]}


def llmfs(*args: str, cwd: Path = ROOT, timeout: int = 1200) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grader", *args], cwd=cwd, capture_output=True,
                          text=True, encoding="utf-8", timeout=timeout)


def plant_mutant(tmp_path: Path, module: str, old: str, new: str) -> Path:
    """A submission folder: the reference with `old` replaced by `new` in `module`."""
    src = (ROOT / "solutions" / "scratchllm" / f"{module}.py").read_text(encoding="utf-8")
    assert old in src, f"mutant no longer applies: {old!r} not in solutions/scratchllm/{module}.py"
    pkg = tmp_path / "mutant" / "scratchllm"
    pkg.mkdir(parents=True)
    for f in (ROOT / "solutions" / "scratchllm").glob("*.py"):
        shutil.copy(f, pkg / f.name)
    (pkg / f"{module}.py").write_text(src.replace(old, new), encoding="utf-8")
    return pkg.parent


def assert_mutant_caught(tmp_path: Path, unit: str, module: str, description: str, old: str, new: str,
                         tests: str = "exercises/tests", says: str | None = None) -> None:
    """The unit's tests in `tests`, run on the mutant, fail at least once for a real reason.

    With `says`, the first failure's message (hint included) must contain it: the
    feedback a student gets for this bug names this bug.
    """
    target = plant_mutant(tmp_path, module, old, new)
    # One real failure is enough: stop there (tests after it report "notrun").
    results = run_course_tests_reusing_process(tests, "-m", unit, "--target", str(target), "-x")
    caught = [k for k, r in results.items()
              if r["outcome"] == "failed" and r["exc_type"] != "NotImplementedError"]
    assert results, f"no {unit} tests ran"
    assert caught, f"no {unit} test in {tests} catches: {description}"
    if says is not None:
        first = results[caught[0]]["message"]
        assert says in first, f"{caught[0]} catches {description!r} but its message does not say {says!r}:\n{first}"
