"""What the sandboxed worker costs: grading u04 in the worker vs in-process.

Both sides run the same tests (u04's public and hidden tests) against the
reference, each in a fresh Python process, so both pay for starting Python,
importing torch and collecting the tests:

- baseline "in-process": plain pytest with ``--target solutions`` (probes
  called directly, as under ``pytest`` on a student's laptop);
- "worker": ``llmfs grade solutions --unit u04`` (intake, static checks,
  the sandboxed worker, probes sent over the wire, scoring).

It prints the median wall time of each over --repeat runs and their ratio.
Goal: the worker costs at most 1.5x the in-process run.

    python benchmarks/grading.py [--unit u04] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(cmd: list[str]) -> float:
    # One torch thread on both sides, as grading uses, so only the worker differs.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, encoding="utf-8", env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0,):
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--unit", default="u04", help="unit to grade (default u04)")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each side (default 5)")
    args = parser.parse_args()

    tests = sorted(str(p) for p in (ROOT / "exercises" / "tests").glob(f"test_{args.unit}_*.py"))
    tests += sorted(str(p) for p in (ROOT / "grader" / "hidden").glob(f"test_{args.unit}_*.py"))
    in_process = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests,
                  "--target", "solutions", "-m", args.unit]
    worker = [sys.executable, "-m", "grader", "grade", "solutions", "--unit", args.unit, "--format", "json"]

    times: dict[str, list[float]] = {"in-process (baseline)": [], "worker": []}
    for i in range(args.repeat):  # interleaved, so drifts in machine load hit both sides alike
        times["in-process (baseline)"].append(timed(in_process))
        times["worker"].append(timed(worker))
        print(f"run {i + 1}/{args.repeat}: in-process {times['in-process (baseline)'][-1]:.2f} s, "
              f"worker {times['worker'][-1]:.2f} s", file=sys.stderr)

    base = statistics.median(times["in-process (baseline)"])
    work = statistics.median(times["worker"])
    print(f"grading {args.unit} ({len(tests)} test files) against the reference, median of {args.repeat}:")
    print(f"  in-process (baseline)  {base:7.2f} s")
    print(f"  worker                 {work:7.2f} s")
    print(f"  ratio worker / in-process: {work / base:.2f}x (goal <= 1.5x)")


if __name__ == "__main__":
    main()
