"""Report formats for a Grade: text (people), JSON (machines), CSV (batches).

The JSON schema (version 1) is stable:

    {"schema": 1, "submission": str, "score": float, "max_score": float,
     "error": str | null, "notes": [str], "isolation": {...},
     "units": [{"id", "title", "score", "max_score", "passed", "total", "message"}],
     "tests": [{"name", "unit", "score", "max_score", "status", "message", "duration", "hidden"}]}
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json

from .scoring import Grade

SCHEMA_VERSION = 1


def to_dict(g: Grade) -> dict:
    return {"schema": SCHEMA_VERSION, "submission": g.submission, "score": g.score, "max_score": g.max_score,
            "error": g.error, "notes": list(g.notes), "isolation": g.isolation,
            "units": [dataclasses.asdict(u) for u in g.units],
            "tests": [dataclasses.asdict(t) for t in g.tests]}


def to_json(g: Grade) -> str:
    return json.dumps(to_dict(g), indent=2, ensure_ascii=False)


def _num(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".") if x != int(x) else str(int(x))


def to_text(g: Grade) -> str:
    out = io.StringIO()
    w = out.write
    w(f"Grading {g.submission}\n")
    if g.error:
        w(f"\n{g.error}\n")
    w(f"\n{'unit':<6} {'score':>12}  {'tests':>7}  title\n")
    for u in g.units:
        w(f"{u.id:<6} {_num(u.score):>6}/{_num(u.max_score):<5}  {u.passed:>3}/{u.total:<3}  {u.title}\n")
        if u.message:
            w(f"       ! {u.message}\n")
    w(f"\nTotal: {_num(g.score)} / {_num(g.max_score)}\n")
    failures = [t for t in g.tests if t.status != "passed"]
    if failures:
        w("\nFailures:\n")
        for t in failures:
            where = "hidden" if t.hidden else "public"
            lines = t.message.strip().splitlines() or [t.status]
            w(f"  {t.unit} {where} {t.name}\n")
            for line in lines[:6]:
                w(f"      {line}\n")
    if g.notes:
        w("\nNotes:\n")
        for n in g.notes:
            w(f"  - {n}\n")
    if g.isolation:
        w("\nIsolation in force: " + "; ".join(g.isolation.get("in_force", [])) + "\n")
        for m in g.isolation.get("missing", []):
            w(f"Not in force: {m}\n")
    return out.getvalue()


def csv_header(unit_ids: list[str]) -> list[str]:
    return ["submission", "score", "max_score", *unit_ids, "error"]


def csv_row(g: Grade) -> list[str]:
    by_unit = {u.id: _num(u.score) for u in g.units}
    return [g.submission, _num(g.score), _num(g.max_score), *by_unit.values(), g.error or ""]


def write_csv(rows: list[list[str]], header: list[str], fh) -> None:
    writer = csv.writer(fh, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
