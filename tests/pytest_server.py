"""Runs course tests again and again in one process, for the kit's mutant tests.

Reads one JSON list of pytest arguments per line on stdin; answers each with
one JSON line: the exit code and every test's result. Starting Python and
importing torch once, instead of once per mutant, makes mutant suites several
times faster; each run still loads its own --target afresh.
"""

import dataclasses
import json
import sys

from grader.results import run_pytest


def main() -> None:
    out = sys.stdout
    for line in sys.stdin:
        args = json.loads(line)
        code, collector = run_pytest(args)
        reply = {"exit_code": code, "results": [dataclasses.asdict(r) for r in collector.results.values()],
                 "collect_errors": collector.collect_errors}
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
