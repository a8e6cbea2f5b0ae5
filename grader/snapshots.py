"""Snapshots: expected values stored as data, for the public tests.

Public tests are shipped to students, so their judges may not be Python
code that computes what a stub computes (see docs/writing-units.md). Where
torch has no built-in that the unit forbids to compare with, a public test
compares with a *snapshot*: seeded inputs and the reference's outputs on
them, generated once and checked in beside the tests.

A public test file declares its snapshots as **snapshot probes**:
module-level functions named ``snapshot_<name>(pkg)``. Like any probe they
only call into the package; they build their own seeded inputs and return
``{case: {field: value}}``, inputs and outputs together. This module runs
each one on the reference and stores the result in
``exercises/tests/data/<test file stem>.<npz|json>``:

- ``.npz`` when every value is a tensor (read with ``allow_pickle=False``);
- ``.json`` otherwise (UTF-8; bytes are written as ``{"$bytes": "<hex>"}``,
  tuples as lists).

A test reads them with ``load_snapshot(__file__)``: ``{case: {field:
value}}``, tensors as torch tensors. The test gives the stored inputs to its
ordinary probes and compares the student's outputs with the stored ones,
with tolerances, so implementations written differently pass.

Regenerate after changing a reference or a snapshot probe::

    python -m grader.snapshots              # every ready unit
    python -m grader.snapshots --unit u03   # one unit
    python -m grader.snapshots --check      # compare only; exit 1 if stale

tests/test_snapshots.py runs the comparison, so stored snapshots cannot rot.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import io
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

SNAPSHOT_PREFIX = "snapshot_"
DATA_DIR = "data"
# Reference outputs regenerated on another machine may differ in the last
# bits of float32 (another CPU's vector kernels); anything more is a change.
ATOL, RTOL = 1e-6, 1e-5


# ---------------------------------------------------------------- reading (used by public tests)


def snapshot_path(test_file: str | Path) -> Path | None:
    """The stored snapshot of a test file, or None if it has none."""
    test_file = Path(test_file)
    for suffix in (".npz", ".json"):
        p = test_file.parent / DATA_DIR / (test_file.stem + suffix)
        if p.is_file():
            return p
    return None


class Snapshot:
    """The stored snapshot of a test file, read on first use: ``snap[case][field]``.

    Reading late lets `python -m grader.snapshots` import a test file whose
    snapshot does not exist yet.
    """

    def __init__(self, test_file: str | Path):
        self.test_file = Path(test_file)
        self._data: dict | None = None

    def __getitem__(self, case: str) -> dict:
        if self._data is None:
            path = snapshot_path(self.test_file)
            if path is None:
                raise FileNotFoundError(f"no snapshot for {self.test_file.name} in "
                                        f"{self.test_file.parent / DATA_DIR}; generate it with "
                                        f"`python -m grader.snapshots`")
            self._data = read(path)
        return self._data[case]


def load_snapshot(test_file: str | Path) -> Snapshot:
    """The snapshot stored for `test_file` (pass ``__file__``): ``snap[case][field]``."""
    return Snapshot(test_file)


def read(path: Path) -> dict:
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            flat = {k: torch.from_numpy(data[k].copy()) for k in data.files}
        return _unflatten(flat)
    return json.loads(path.read_text(encoding="utf-8"), object_hook=_decode)


def _decode(obj: dict):
    return bytes.fromhex(obj["$bytes"]) if set(obj) == {"$bytes"} else obj


def _unflatten(flat: dict) -> dict:
    out: dict = {}
    for key, value in flat.items():
        case, _, name = key.partition("/")
        out.setdefault(case, {})[name] = value
    return out


# ---------------------------------------------------------------- writing


def _plain(value):
    """`value` as JSON-ready data: bytes as {"$bytes": hex}, tuples as lists."""
    if isinstance(value, bytes):
        return {"$bytes": value.hex()}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    raise TypeError(f"a JSON snapshot cannot hold a {type(value).__name__}")


def _all_tensors(snap: dict) -> bool:
    return all(isinstance(v, torch.Tensor) for case in snap.values() for v in case.values())


def encode(snap: dict) -> tuple[str, bytes]:
    """(suffix, file content) for a snapshot ``{case: {field: value}}``."""
    if not isinstance(snap, dict) or not all(isinstance(c, dict) for c in snap.values()):
        raise TypeError("a snapshot probe must return {case: {field: value}}")
    if snap and _all_tensors(snap):
        buf = io.BytesIO()
        np.savez_compressed(buf, **{f"{case}/{name}": t.detach().cpu().numpy()
                                    for case, fields in snap.items() for name, t in fields.items()})
        return ".npz", buf.getvalue()
    text = json.dumps(_plain(snap), ensure_ascii=False, indent=0, separators=(",", ":"), sort_keys=True)
    return ".json", (text + "\n").encode("utf-8")


def snapshot_probes(test_module: ModuleType) -> list:
    """The snapshot probes of a test module, in source order."""
    found = [f for name, f in vars(test_module).items()
             if name.startswith(SNAPSHOT_PREFIX) and inspect.isfunction(f)
             and f.__module__ == test_module.__name__]
    return sorted(found, key=lambda f: f.__code__.co_firstlineno)


def generate(test_file: Path, package: ModuleType) -> dict:
    """Run the snapshot probes of `test_file` on `package`; ``{case: {field: value}}``."""
    module = _import_test_file(test_file)
    snap: dict = {}
    for probe in snapshot_probes(module):
        torch.manual_seed(0)
        for case, fields in probe(package).items():
            if case in snap:
                raise ValueError(f"{test_file.name}: two snapshot probes both return the case {case!r}")
            snap[case] = fields
    return snap


def _import_test_file(path: Path) -> ModuleType:
    name = f"_llmfs_snapshot_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, f"cannot import {path}"
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def differences(stored: dict, fresh: dict, prefix: str = "") -> list[str]:
    """What differs between a stored snapshot and a fresh one (empty if they agree)."""
    if isinstance(fresh, torch.Tensor):
        if not isinstance(stored, torch.Tensor):
            return [f"{prefix}: stored a {type(stored).__name__}, now a tensor"]
        if stored.shape != fresh.shape or stored.dtype != fresh.dtype:
            return [f"{prefix}: stored {stored.dtype} {tuple(stored.shape)}, now {fresh.dtype} {tuple(fresh.shape)}"]
        if fresh.is_floating_point():
            same = torch.allclose(stored, fresh.detach().cpu(), atol=ATOL, rtol=RTOL, equal_nan=True)
        else:
            same = torch.equal(stored, fresh.detach().cpu())
        return [] if same else [f"{prefix}: values differ"]
    if isinstance(fresh, dict):
        if not isinstance(stored, dict) or set(map(str, stored)) != set(map(str, fresh)):
            return [f"{prefix or 'snapshot'}: stored keys differ from the fresh ones"]
        return [d for k in fresh for d in differences(stored[str(k)], fresh[k], f"{prefix}/{k}".lstrip("/"))]
    if _plain(fresh) != _plain(stored):
        return [f"{prefix}: values differ"]
    return []


# ---------------------------------------------------------------- the command


def _reference(course):
    from .pytest_plugin import REFERENCE_NAME
    from .targets import import_modules, load_package, resolve_target

    package = load_package(resolve_target(course, "solutions"), REFERENCE_NAME)
    import_modules(package, [m for u in course.ready_units for m in u.modules])
    return package


def files_with_snapshots(course, unit: str | None = None) -> list[Path]:
    files = []
    for u in course.ready_units:
        if unit and u.id != unit:
            continue
        for f in course.test_files(u.id):
            if SNAPSHOT_PREFIX in f.read_text(encoding="utf-8"):
                files.append(f)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader.snapshots",
                                     description="Regenerate the public tests' stored expected values "
                                                 "(exercises/tests/data/) from the reference.")
    parser.add_argument("--unit", help="only this unit (e.g. u03)")
    parser.add_argument("--course", help="course.toml (default: found from the current folder)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a snapshot is stale")
    args = parser.parse_args(argv)
    from .course import load_course

    torch.set_num_threads(1)
    course = load_course(args.course)
    package = _reference(course)
    stale = 0
    for f in files_with_snapshots(course, args.unit):
        fresh = generate(f, package)
        suffix, content = encode(fresh)
        out = f.parent / DATA_DIR / (f.stem + suffix)
        old = snapshot_path(f)
        diffs = differences(read(old), fresh) if old else ["missing"]
        if args.check:
            if diffs:
                stale += 1
                print(f"{out.relative_to(course.root)}: stale: {'; '.join(diffs[:5])}")
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        if old and old != out:
            old.unlink()
        if diffs:
            out.write_bytes(content)
        print(f"{out.relative_to(course.root)}: {'written' if diffs else 'unchanged'} "
              f"({len(fresh)} cases, {len(content) // 1024} kB)")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
