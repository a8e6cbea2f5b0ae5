"""Reports as one self-contained web page: `llmfs grade --format html` and `llmfs check --html`.

A page a student can open from an e-mail or a Gradescope download, offline: the
style is inline, there is no script, no link, no image and no font to fetch.
It shows the same facts as the text report, laid out for reading: a bar per
unit whose width is the unit's score (or tests passed) as a fraction, the
failures grouped under their unit with their public messages in full (a
hidden test shows only the summary `llmfs grade` shows), the dependency note
that says which earlier unit to fix first, and the isolation the code ran
under. Pass and fail are told apart by words and symbols as well as colour.

Student code chooses much of this text (test messages, exception text, file
names): every string goes through `grader.report.printable` (control
characters, ANSI escapes and bidi overrides shown as escapes) and then
`html.escape`, so nothing in it can open a tag, close a ``<pre>`` or end an
attribute. Numbers are formatted here from the judge's own figures.
"""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING

from .report import MAX_MESSAGE, _num, printable, sanitized
from .scoring import Grade

if TYPE_CHECKING:
    from .check import CheckReport, UnitCheck

PASS, PARTIAL, FAIL = "pass", "partial", "fail"
LABELS = {PASS: "\u2714 passed", PARTIAL: "\u25d0 partly", FAIL: "\u2718 failed"}  # words and symbols, not colour alone

STYLE = """
:root { --pass: #1a7f37; --partial: #9a6700; --fail: #cf222e; --ink: #1f2328; --muted: #59636e;
        --line: #d1d9e0; --soft: #f6f8fa; --note: #fff8c5; --note-line: #d4a72c; }
* { box-sizing: border-box; }
body { margin: 0; background: #fff; color: var(--ink);
       font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1080px; margin: 0 auto; padding: 28px 32px 48px; }
h1 { font-size: 28px; margin: 0 0 4px; overflow-wrap: anywhere; }
h2 { font-size: 21px; margin: 36px 0 12px; padding-bottom: 6px; border-bottom: 1px solid var(--line); }
h3 { font-size: 17px; margin: 0; }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace;
                   font-size: 14px; }
.kicker { margin: 0; color: var(--muted); font-size: 14px; letter-spacing: .04em; text-transform: uppercase; }
.summary { display: flex; align-items: center; gap: 24px; margin-top: 16px; padding: 16px 20px;
           border: 1px solid var(--line); border-radius: 8px; background: var(--soft); }
.summary .big { font-size: 40px; font-weight: 700; line-height: 1; white-space: nowrap; }
.summary .big small { font-size: 20px; font-weight: 400; color: var(--muted); }
.summary .grow { flex: 1; }
.bar { position: relative; height: 14px; border-radius: 7px; background: #e6e9ed;
       border: 1px solid #c5ccd3; overflow: hidden; min-width: 120px; }
.summary .bar { height: 20px; border-radius: 10px; }
.fill { display: block; height: 100%; background: var(--fail); }
.pass .fill { background: var(--pass); }
.partial .fill { background: var(--partial); }
.fail .fill { background: repeating-linear-gradient(135deg, var(--fail) 0 6px, #e5534b 6px 12px); }
table { width: 100%; border-collapse: collapse; }
th { text-align: left; font-size: 13px; color: var(--muted); font-weight: 600; text-transform: uppercase;
     letter-spacing: .03em; padding: 6px 10px; border-bottom: 2px solid var(--line); }
td { padding: 9px 10px; vertical-align: middle; }
tr.unit td { border-top: 1px solid var(--line); }
td.id { font-weight: 700; white-space: nowrap; }
td.barcell { width: 34%; }
td.num { white-space: nowrap; font-variant-numeric: tabular-nums; text-align: right; }
td.status { white-space: nowrap; font-weight: 600; }
.status.pass, .pass .status { color: var(--pass); }
.status.partial, .partial .status { color: var(--partial); }
.status.fail, .fail .status { color: var(--fail); }
tr.detail td { padding: 0 10px 10px 10px; }
.depends { margin: 6px 0; padding: 8px 12px; background: var(--note); border-left: 4px solid var(--note-line);
           border-radius: 4px; }
.depends strong, .problem strong { margin-right: 4px; }
.problem { margin: 6px 0; padding: 8px 12px; background: #ffebe9; border-left: 4px solid var(--fail);
           border-radius: 4px; }
.problem ul { margin: 4px 0 0; padding-left: 20px; }
.todo { margin: 6px 0; color: var(--muted); }
.todo code { color: var(--ink); background: var(--soft); padding: 1px 5px; border-radius: 4px; }
.error { margin-top: 20px; padding: 12px 16px; border: 2px solid var(--fail); border-radius: 8px;
         background: #ffebe9; }
.group { margin: 18px 0 26px; }
.group > h3 { padding: 8px 12px; background: var(--soft); border: 1px solid var(--line); border-radius: 6px; }
.group > h3 .count { font-weight: 400; color: var(--muted); }
.failure { margin: 10px 0 0 14px; padding-left: 12px; border-left: 3px solid var(--fail); }
.failure .head { margin: 0 0 4px; overflow-wrap: anywhere; }
.failure .head code { font-weight: 600; }
.tag { display: inline-block; font-size: 12px; font-weight: 700; padding: 0 7px; border-radius: 10px;
       border: 1px solid var(--line); margin-right: 6px; text-transform: uppercase; letter-spacing: .03em;
       vertical-align: 1px; }
.tag.public { background: #ddf4ff; border-color: #54aeff; }
.tag.hidden { background: #eee; border-color: #999; }
.also { margin: 4px 0; color: var(--muted); font-size: 14px; }
pre { margin: 4px 0 0; padding: 10px 12px; background: var(--soft); border: 1px solid var(--line);
      border-radius: 6px; white-space: pre-wrap; overflow-wrap: anywhere; line-height: 1.45; }
details { margin: 6px 0 0 14px; }
summary { cursor: pointer; color: var(--muted); }
ul.isolation { list-style: none; padding-left: 0; margin: 6px 0; }
ul.isolation li { padding: 3px 0; }
ul.isolation li.in .mark { color: var(--pass); font-weight: 700; }
ul.isolation li.out .mark { color: var(--fail); font-weight: 700; }
.muted { color: var(--muted); }
footer { margin-top: 40px; padding-top: 10px; border-top: 1px solid var(--line); color: var(--muted);
         font-size: 13px; }
"""


# Room for `printable`'s own "... [cut: N characters in all]": a Grade's text was cut once already.
_LIMIT = MAX_MESSAGE + 64


def _e(text, *, multiline: bool = False) -> str:
    """Any text, shown inert: made printable, then HTML-escaped (quotes too, for attributes)."""
    return html.escape(printable(text, _LIMIT, multiline=multiline), quote=True)


def _fraction(part: float, whole: float) -> float:
    """part / whole in [0, 1]; 0 when there is nothing to divide or the figures are not numbers."""
    if not whole or not math.isfinite(part) or not math.isfinite(whole) or whole <= 0:
        return 0.0
    return min(1.0, max(0.0, part / whole))


def _state(part: float, whole: float) -> str:
    if whole and part >= whole:
        return PASS
    return PARTIAL if part > 0 else FAIL


def _bar(part: float, whole: float, label: str, unit_id: str = "") -> str:
    """A bar whose filled width is part/whole; `label` says the same in words for readers without it."""
    width = f"{100 * _fraction(part, whole):.2f}".rstrip("0").rstrip(".")
    data = f' data-unit="{_e(unit_id)}"' if unit_id else ""
    return (f'<div class="bar" role="img" aria-label="{_e(label)}" title="{_e(label)}"{data}>'
            f'<span class="fill" style="width: {width}%"></span></div>')


def _page(title: str, body: str, footer: str) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n{body}"
            f"<footer>{footer}</footer>\n</main>\n</body>\n</html>\n")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def _depends(note: str) -> str:
    return f'<p class="depends"><strong>\u26a0 An earlier unit fails:</strong> {_e(note)}</p>\n'


# --- llmfs grade --format html --------------------------------------------------------

def grade_html(g: Grade) -> str:
    """The whole Grade of one submission as a page (hidden tests show only their summary)."""
    g = sanitized(g)
    parts = [_grade_header(g), _grade_units(g), _grade_failures(g)]
    if g.notes:
        parts.append('<section id="notes">\n<h2>Notes</h2>\n<ul>\n'
                     + "".join(f"<li>{_e(n)}</li>\n" for n in g.notes) + "</ul>\n</section>\n")
    parts.append(_isolation(g.isolation))
    title = f"Grade: {_e(g.submission)} \u2014 {_num(g.score)} / {_num(g.max_score)}"
    footer = ("Written by <code>llmfs grade --format html</code>. Scores are computed by the grader from its "
              "own records; hidden tests show only a summary, never expected values.")
    return _page(title, "".join(parts), footer)


def _grade_header(g: Grade) -> str:
    state = _state(g.score, g.max_score)
    pct = f"{100 * _fraction(g.score, g.max_score):.0f}%"
    label = f"{_num(g.score)} of {_num(g.max_score)} points"
    out = (f'<header>\n<p class="kicker">llmfs grade \u00b7 submission</p>\n<h1>{_e(g.submission)}</h1>\n'
           f'<div class="summary {state}" id="total">\n'
           f'<div class="big">{_num(g.score)} <small>/ {_num(g.max_score)} points</small></div>\n'
           f'<div class="grow">{_bar(g.score, g.max_score, label)}</div>\n'
           f'<div class="status {state}">{pct} \u00b7 {LABELS[state]}</div>\n</div>\n')
    if g.error:
        out += f'<div class="error" role="alert" id="error"><strong>Not graded:</strong> {_e(g.error)}</div>\n'
    return out + "</header>\n"


def _grade_units(g: Grade) -> str:
    rows = []
    for u in g.units:
        state = _state(u.score, u.max_score)
        label = f"{u.id}: {_num(u.score)} of {_num(u.max_score)} points"
        rows.append(f'<tr class="unit {state}" id="unit-{_e(u.id)}" data-unit="{_e(u.id)}">'
                    f'<td class="id">{_e(u.id)}</td><td>{_e(u.title)}</td>'
                    f'<td class="barcell">{_bar(u.score, u.max_score, label, u.id)}</td>'
                    f'<td class="num">{_num(u.score)} / {_num(u.max_score)}</td>'
                    f'<td class="num">{u.passed}/{u.total}</td>'
                    f'<td class="status">{LABELS[state]}</td></tr>\n')
        extra = _depends(u.depends_note) if u.depends_note else ""
        if u.message:
            extra += f'<div class="problem">{_e(u.message, multiline=True)}</div>\n'
        if extra:
            rows.append(f'<tr class="detail" data-unit="{_e(u.id)}"><td></td><td colspan="5">{extra}</td></tr>\n')
    return ('<section id="units">\n<h2>Units</h2>\n<table>\n<thead><tr><th>Unit</th><th>Title</th><th>Score</th>'
            '<th class="num">Points</th><th class="num">Tests</th><th>Status</th></tr></thead>\n<tbody>\n'
            + "".join(rows) + "</tbody>\n</table>\n</section>\n")


def _grade_failures(g: Grade) -> str:
    failing = [u for u in g.units if any(t.unit == u.id and t.status != "passed" for t in g.tests)]
    if not failing:
        if g.tests:
            return '<section id="failures">\n<h2>Failures</h2>\n<p>None: every test passed.</p>\n</section>\n'
        return ""
    groups = []
    for u in failing:
        failed = [t for t in g.tests if t.unit == u.id and t.status != "passed"]
        failed.sort(key=lambda t: t.hidden)  # public tests first: they say the most
        body = _depends(u.depends_note) if u.depends_note else ""
        body += "".join(_failure_block(same) for same in _same_message(failed))
        groups.append(_group(u.id, u.title, f"{len(failed)} of {u.total} tests failed", body))
    return ('<section id="failures">\n<h2>Failures, by unit</h2>\n'
            '<p class="muted">Public tests show their full message and hint; hidden tests only a summary.</p>\n'
            + "".join(groups) + "</section>\n")


def _group(unit_id: str, title: str, count: str, body: str) -> str:
    return (f'<section class="group" id="failures-{_e(unit_id)}" data-unit="{_e(unit_id)}">\n'
            f'<h3>{_e(unit_id)} \u00b7 {_e(title)} <span class="count">\u2014 {_e(count)}</span></h3>\n'
            f'{body}</section>\n')


def _same_message(tests: list) -> list[list]:
    """Failures that say exactly the same thing, together (a module that does not import fails them all).
    Each is a TestScore (grade) or a check.FailedTest (check: public tests only)."""
    groups: dict[tuple, list] = {}
    for t in tests:
        groups.setdefault((getattr(t, "hidden", False), t.status, t.message.strip()), []).append(t)
    return list(groups.values())


def _failure_block(same: list) -> str:
    first = same[0]
    hidden = getattr(first, "hidden", False)
    where = "hidden" if hidden else "public"
    status = "" if first.status == "failed" else f' <span class="muted">({_e(first.status)})</span>'
    out = (f'<article class="failure" data-test="{_e(first.name)}" data-hidden="{str(hidden).lower()}">\n'
           f'<p class="head"><span class="tag {where}">{where}</span><code>{_e(first.name)}</code>{status}</p>\n')
    out += f"<pre>{_e(first.message.strip() or first.status, multiline=True)}</pre>\n"
    if len(same) > 1:
        names = ", ".join(f"<code>{_e(t.name)}</code>" for t in same[1:])
        out += (f'<details class="also"><summary>The same message for {_plural(len(same) - 1, "more test")}'
                f"</summary>\n<p>{names}</p></details>\n")
    return out + "</article>\n"


def _isolation(iso: dict) -> str:
    out = '<section id="isolation">\n<h2>Isolation in force</h2>\n'
    if not iso:
        return out + "<p>None recorded: no student code ran.</p>\n</section>\n"
    facts = []
    if "mode" in iso:
        facts.append(f"mode <strong>{_e(iso['mode'])}</strong>")
    if "worker_restarts" in iso:
        facts.append(f"worker restarts: {_e(iso['worker_restarts'])}")
    if iso.get("hidden_files_readable"):
        facts.append('<strong class="status fail">\u2718 the worker could read hidden files '
                     '(graded with --insecure)</strong>')
    if facts:
        out += "<p>" + " \u00b7 ".join(facts) + "</p>\n"
    out += '<ul class="isolation">\n' + "".join(
        f'<li class="in"><span class="mark">\u2714</span> {_e(line)}</li>\n' for line in iso.get("in_force", []))
    missing = iso.get("missing", [])
    out += "".join(f'<li class="out"><span class="mark">\u2718 not in force:</span> {_e(line)}</li>\n'
                   for line in missing)
    out += "</ul>\n"
    if not missing:
        out += '<p class="muted">Nothing the sandbox provides was missing.</p>\n'
    return out + "</section>\n"


# --- llmfs check --html ------------------------------------------------------------------

def check_html(report: CheckReport) -> str:
    """A student's self-check as a page: tests passed per unit, what is left, what failed and why."""
    state = PASS if report.ok else PARTIAL if report.passed else FAIL
    label = f"{report.passed} of {report.total} public tests passed"
    verdict = "every test passed, no rule broken" if report.ok else "see below"
    parts = [f'<header>\n<p class="kicker">llmfs check \u00b7 public tests</p>\n'
             f'<h1>{_e(report.target)}</h1>\n'
             f'<div class="summary {state}" id="total">\n'
             f'<div class="big">{report.passed} <small>/ {report.total} tests passed</small></div>\n'
             f'<div class="grow">{_bar(report.passed, report.total, label)}</div>\n'
             f'<div class="status {state}">{LABELS[state]} \u00b7 {verdict}</div>\n</div>\n</header>\n']
    rows = []
    for u in report.units:
        s = _unit_state(u)
        bar = _bar(u.passed, u.total, f"{u.id}: {u.passed} of {u.total} tests passed", u.id)
        rows.append(f'<tr class="unit {s}" id="unit-{_e(u.id)}" data-unit="{_e(u.id)}">'
                    f'<td class="id">{_e(u.id)}</td><td>{_e(u.title)}</td><td class="barcell">{bar}</td>'
                    f'<td class="num">{u.passed}/{u.total}</td><td class="status">{LABELS[s]}</td></tr>\n')
        if u.depends_note:
            rows.append(f'<tr class="detail" data-unit="{_e(u.id)}"><td></td><td colspan="4">'
                        f"{_depends(u.depends_note)}</td></tr>\n")
    parts.append('<section id="units">\n<h2>Units</h2>\n<table>\n<thead><tr><th>Unit</th><th>Title</th>'
                 '<th>Tests passed</th><th class="num">Tests</th><th>Status</th></tr></thead>\n<tbody>\n'
                 + "".join(rows) + "</tbody>\n</table>\n</section>\n")
    groups = [_check_group(u) for u in report.units if not u.ok]
    if groups:
        parts.append('<section id="failures">\n<h2>What is left, by unit</h2>\n' + "".join(groups) + "</section>\n")
    if report.collect_errors:
        parts.append('<section id="errors">\n<h2>Test files that could not be loaded</h2>\n' + "".join(
            f"<h3><code>{_e(nodeid)}</code></h3>\n<pre>{_e(text.strip()[-800:], multiline=True)}</pre>\n"
            for nodeid, text in report.collect_errors) + "</section>\n")
    footer = ("Written by <code>llmfs check --html</code>. Your code ran on this machine, in this process, "
              "against the public tests only; <code>llmfs grade</code> adds hidden tests and a sandbox.")
    return _page(f"Check: {_e(report.target)} \u2014 {report.passed}/{report.total} tests passed",
                 "".join(parts), footer)


def _unit_state(u: UnitCheck) -> str:
    if u.problems:
        return FAIL  # the grader would fail every test of this unit
    return _state(u.passed, u.total)


def _check_group(u: UnitCheck) -> str:
    body = _depends(u.depends_note) if u.depends_note else ""
    if u.problems:
        body += ('<div class="problem"><strong>\u2718 The grader would fail every test of this unit</strong> '
                 '(docs: What a student module may use):\n<ul>\n'
                 + "".join(f"<li><code>{_e(p)}</code></li>\n" for p in u.problems) + "</ul></div>\n")
    if u.todos:
        body += ('<p class="todo">Left TODO: ' + ", ".join(f"<code>{_e(t)}</code>" for t in u.todos) + "</p>\n")
    if not u.total:
        body += '<p class="muted">No public tests found for this unit.</p>\n'
    if u.not_started:
        body += (f'<details class="not-started"><summary>{_plural(len(u.not_started), "test")} failing with '
                 'NotImplementedError (not written yet)</summary>\n<p>'
                 + ", ".join(f"<code>{_e(n)}</code>" for n in u.not_started) + "</p></details>\n")
    body += "".join(_failure_block(same) for same in _same_message(u.failed))
    count = f"{u.total - u.passed} of {u.total} tests failed" if u.total else "no tests"
    if u.problems and u.passed == u.total:
        count += "; the grader's rules are broken"
    return _group(u.id, u.title, count, body)
