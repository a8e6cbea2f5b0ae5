"""Report formats for a Grade: text (people), JSON (machines), CSV (batches).

The JSON schema (version 1) is stable:

    {"schema": 1, "submission": str, "score": float, "max_score": float,
     "error": str | null, "notes": [str], "isolation": {...},
     "units": [{"id", "title", "score", "max_score", "passed", "total", "message", "depends_note"}],
     "tests": [{"name", "unit", "score", "max_score", "status", "message", "duration", "hidden"}]}
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json

from .scoring import Grade

SCHEMA_VERSION = 1

# Longest text a report shows per field; student code chooses much of it.
MAX_MESSAGE = 2000   # a test's or a unit's message, a note, the error
MAX_LINE = 500       # anything else: titles, statuses, the isolation record
MAX_NAME = 200       # the submission's name

_SAFE_WHITESPACE = {" ": " ", "\t": " "}


def printable(text, limit: int = MAX_LINE, *, multiline: bool = False) -> str:
    """`text` made safe to print, write as UTF-8 and put in a web page's text:
    control characters (ANSI escapes, \\r, backspace, ...), bidi overrides and
    other invisible format characters are shown as escapes (``\\x1b``,
    ``\\u202e``); bytes that were not UTF-8 (surrogate escapes, as in file
    names) as ``\\xff``. Newlines stay only if `multiline`. At most `limit`
    characters are kept, and the cut says how long the text was.
    HTML output must still escape ``<`` and ``&`` itself."""
    text = str(text)
    total = len(text)
    if total <= limit and all(line.isprintable() for line in (text.split("\n") if multiline else [text])):
        return text
    out = []
    for ch in text[:limit]:
        if ch.isprintable() or (ch == "\n" and multiline):
            out.append(ch)
        elif ch in _SAFE_WHITESPACE:
            out.append(_SAFE_WHITESPACE[ch])
        else:
            out.append(_escape(ord(ch)))
    if total > limit:
        out.append(f" ... [cut: {total} characters in all]")
    return "".join(out)


def _escape(code: int) -> str:
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8, kept by surrogateescape
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def sanitized(g: Grade) -> Grade:
    """A copy of `g` whose every text field has passed through `printable`."""
    return dataclasses.replace(
        g, submission=printable(g.submission, MAX_NAME),
        error=None if g.error is None else printable(g.error, MAX_MESSAGE),
        notes=[printable(n, MAX_MESSAGE) for n in g.notes],
        isolation=_plain(g.isolation),
        units=[dataclasses.replace(u, title=printable(u.title),
                                   message=printable(u.message, MAX_MESSAGE, multiline=True),
                                   depends_note=printable(u.depends_note, MAX_MESSAGE))
               for u in g.units],
        tests=[dataclasses.replace(t, name=printable(t.name), unit=printable(t.unit),
                                   message=printable(t.message, MAX_MESSAGE, multiline=True),
                                   status=printable(t.status))
               for t in g.tests])


def _plain(value):
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def to_dict(g: Grade) -> dict:
    g = sanitized(g)
    return {"schema": SCHEMA_VERSION, "submission": g.submission, "score": g.score, "max_score": g.max_score,
            "error": g.error, "notes": list(g.notes), "isolation": g.isolation,
            "units": [dataclasses.asdict(u) for u in g.units],
            "tests": [dataclasses.asdict(t) for t in g.tests]}


def to_json(g: Grade) -> str:
    return json.dumps(to_dict(g), indent=2, ensure_ascii=False)


def _num(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".") if x != int(x) else str(int(x))


def to_text(g: Grade) -> str:
    g = sanitized(g)
    out = io.StringIO()
    w = out.write
    w(f"Grading {g.submission}\n")
    if g.error:
        w(f"\n{g.error}\n")
    w(f"\n{'unit':<6} {'score':>12}  {'tests':>7}  title\n")
    for u in g.units:
        w(f"{u.id:<6} {_num(u.score):>6}/{_num(u.max_score):<5}  {u.passed:>3}/{u.total:<3}  {u.title}\n")
        if u.depends_note:
            w(f"       ! {u.depends_note}\n")
        if u.message:
            w("       ! " + u.message.replace("\n", "\n         ") + "\n")
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
    g = sanitized(g)
    by_unit = {u.id: _num(u.score) for u in g.units}
    return [g.submission, _num(g.score), _num(g.max_score), *by_unit.values(), g.error or ""]


def write_csv(rows: list[list[str]], header: list[str], fh) -> None:
    writer = csv.writer(fh, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
