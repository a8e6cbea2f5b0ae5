"""The public tests' stored snapshots equal what the reference produces now.

Public tests compare with expected values stored in exercises/tests/data/
(see grader/snapshots.py and docs/writing-units.md). If the reference or a
snapshot probe changes and nobody regenerates them, this fails, so stored
values cannot rot.
"""

from __future__ import annotations

import subprocess
import sys

import torch

from grader.course import load_course
from grader.snapshots import differences, encode, files_with_snapshots, read, snapshot_path

from kit import ROOT


def test_every_stored_snapshot_equals_a_fresh_one_from_the_reference():
    proc = subprocess.run([sys.executable, "-m", "grader.snapshots", "--check"], cwd=ROOT, capture_output=True,
                          text=True, encoding="utf-8", timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:] + \
        "\nregenerate with: python -m grader.snapshots"


def test_units_that_replaced_their_oracles_have_snapshots():
    files = {f.name for f in files_with_snapshots(load_course(ROOT / "course.toml"))}
    for unit in ("u02", "u03", "u05", "u06"):
        mine = [f for f in files if f.startswith(f"test_{unit}_")]
        assert mine, f"no public test file of {unit} declares snapshot probes"
        path = snapshot_path(ROOT / "exercises" / "tests" / mine[0])
        assert path is not None, f"{mine[0]} has snapshot probes but no stored snapshot"
        assert path.stat().st_size < 100_000, f"{path.name} is {path.stat().st_size // 1024} kB: keep snapshots small"


def test_snapshot_files_round_trip(tmp_path):
    snap = {"a": {"x": torch.arange(6.0).reshape(2, 3), "ids": torch.tensor([3, 1])},
            "b": {"y": torch.ones(2, dtype=torch.float64)}}
    suffix, content = encode(snap)
    (tmp_path / f"s{suffix}").write_bytes(content)
    assert suffix == ".npz" and differences(read(tmp_path / f"s{suffix}"), snap) == []
    text = {"c": {"merges": [(b"\xff", b"a")], "text": "café", "n": 3}}
    suffix, content = encode(text)
    (tmp_path / f"t{suffix}").write_bytes(content)
    back = read(tmp_path / f"t{suffix}")
    assert suffix == ".json" and back["c"]["merges"] == [[b"\xff", b"a"]] and back["c"]["text"] == "café"
    assert differences(back, text) == []
    changed = {"a": {**snap["a"], "x": snap["a"]["x"] + 1e-3}, "b": snap["b"]}
    assert differences(read(tmp_path / "s.npz"), changed) == ["a/x: values differ"]
