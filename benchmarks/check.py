"""How long a student waits for `llmfs check`, against grading the same unit.

For each unit asked for, in the same run and interleaved:

- baseline "grade": ``llmfs grade solutions --unit UNIT`` (public and hidden
  tests, the sandboxed worker), what an instructor's grader spends on it;
- "check": ``llmfs check UNIT --target solutions`` (public tests, in-process),
  what a student waits for at home.

It prints the median wall time of each over --repeat runs and the ratio
check/grade per unit. Goal: check at most 1.5x grading the unit alone (it
was 2-3x when check ran torch on every core while grading pins one thread).

    python benchmarks/check.py [--unit u06 ...] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader.course import load_course  # noqa: E402


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, encoding="utf-8")
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--unit", action="append", dest="units", help="unit(s) to time (default: every ready unit)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side (default 3)")
    args = parser.parse_args()
    units = args.units or [u.id for u in load_course(ROOT / "course.toml").ready_units]

    print(f"{'unit':<6} {'grade (baseline)':>18} {'check':>10} {'check/grade':>12}")
    for unit in units:
        grade = [sys.executable, "-m", "grader", "grade", "solutions", "--unit", unit, "--format", "json"]
        check = [sys.executable, "-m", "grader", "check", unit, "--target", "solutions"]
        g, c = [], []
        for _ in range(args.repeat):  # interleaved, so drifts in machine load hit both alike
            g.append(timed(grade))
            c.append(timed(check))
        gm, cm = statistics.median(g), statistics.median(c)
        print(f"{unit:<6} {gm:>16.2f} s {cm:>8.2f} s {cm / gm:>11.2f}x", flush=True)


if __name__ == "__main__":
    main()
