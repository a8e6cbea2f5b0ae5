"""Helpers for the kit's own tests: run course tests in a fresh process."""

from __future__ import annotations

import json
import os
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


def llmfs(*args: str, cwd: Path = ROOT, timeout: int = 1200) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grader", *args], cwd=cwd, capture_output=True,
                          text=True, encoding="utf-8", timeout=timeout)
