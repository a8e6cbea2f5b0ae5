"""What reports show: student-controlled text made safe, and hidden summaries
that carry nothing derived from the expected values."""

import csv
import io
import json

import numpy as np
import pytest
import torch

from grader.report import MAX_MESSAGE, csv_row, printable, to_json, to_text
from grader.scoring import Grade, TestScore, UnitScore
from grader.testing import Mismatch, assert_close, assert_equal

from kit import llmfs

# What a student's exception message or file name may hold to fool a terminal or a reader:
# clear the screen and colour, a carriage return that overwrites the line, a backspace, a bidi
# override (text shown reversed), a zero-width space, an OSC title change, a byte that was not UTF-8.
HOSTILE = "\x1b[2J\x1b[1;32mALL TESTS PASSED 10/10\x1b[0m\rok\x08\u202etxt.py\u200b\x1b]0;owned\x07\udcff"
FORBIDDEN = ["\x1b", "\r", "\x08", "\u202e", "\u200b", "\x07", "\udcff"]


def hostile_grade(message: str = HOSTILE) -> Grade:
    g = Grade(submission="alice" + HOSTILE, score=0.0, max_score=10.0, error="submission refused: " + HOSTILE,
              notes=["ignored: " + HOSTILE])
    g.units = [UnitScore("u04", "Attention", 0.0, 10.0, 0, 1, message="could not import: " + HOSTILE)]
    g.tests = [TestScore(name="test_x", unit="u04", score=0.0, max_score=10.0, status="failed",
                         message="your code raised ValueError: " + message + "\nsecond line", duration=0.1,
                         hidden=False)]
    return g


def assert_safe(text: str) -> None:
    for ch in FORBIDDEN:
        assert ch not in text, f"{ch!r} reached the report"
    assert all(c.isprintable() or c == "\n" for c in text)
    text.encode("utf-8")


def test_the_text_report_shows_escapes_not_raw_control_characters():
    text = to_text(hostile_grade())
    assert_safe(text)
    assert "\\x1b[2J" in text and "\\u202e" in text and "\\xff" in text  # shown, not hidden
    assert "second line" in text  # a message keeps its lines


def test_the_json_report_and_the_csv_row_carry_no_control_characters():
    data = json.loads(to_json(hostile_grade()))
    strings = []

    def walk(v):
        if isinstance(v, str):
            strings.append(v)
        elif isinstance(v, dict):
            for k, x in v.items():
                walk(k)
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
    walk(data)
    for s in strings:
        assert_safe(s)
    out = io.StringIO()
    csv.writer(out).writerow(csv_row(hostile_grade()))
    assert_safe(out.getvalue().rstrip("\r\n"))


def test_student_text_is_capped():
    g = hostile_grade(message="A" * 10_000_000)  # a message the worker could send
    text, doc = to_text(g), to_json(g)
    assert len(text) < 4 * MAX_MESSAGE and len(doc) < 4 * MAX_MESSAGE
    assert "10000" in json.loads(doc)["tests"][0]["message"]  # the cut says how long it was


def test_printable_keeps_ordinary_text_as_it_is():
    plain = "expected shape (2, 3), got (3, 2): attention weights per row sum to 1 — café ≤ 1e-5"
    assert printable(plain) == plain
    assert printable("line 1\nline 2", multiline=True) == "line 1\nline 2"
    assert printable("line 1\nline 2") == "line 1\\x0aline 2"


def test_a_hostile_exception_message_gets_a_safe_report_through_llmfs_grade(tmp_path):
    pkg = tmp_path / "sub" / "scratchllm"
    pkg.mkdir(parents=True)
    (pkg / "attention.py").write_text(f"raise RuntimeError({HOSTILE[:-1]!r})\n", encoding="utf-8")
    proc = llmfs("grade", str(pkg.parent), "--unit", "u04", timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Total: 0 / 10" in proc.stdout
    assert_safe(proc.stdout)
    assert "\\x1b[1;32mALL TESTS PASSED" in proc.stdout  # the message is there, escaped


# --- hidden summaries ------------------------------------------------------------

def summary_of(check, *args, **kwargs) -> Mismatch:
    with pytest.raises(Mismatch) as e:
        check(*args, **kwargs)
    return e.value


GEN = torch.Generator().manual_seed(0)
SAME_SHAPE = [  # (got, several expected values of one shape: the summaries must not tell them apart)
    (torch.zeros(2, 3), [torch.randn(2, 3, generator=GEN) * s for s in (1.0, 100.0)] + [torch.eye(2, 3)]),
    (torch.full((4,), float("nan")), [torch.ones(4), torch.tensor([0.0, 5.0, 0.0, 0.0])]),
    (torch.zeros(5, dtype=torch.long), [torch.tensor([1, 2, 3, 4, 5]), torch.tensor([0, 0, 0, 0, 9])]),
    (np.zeros(3), [np.array([1.0, 2.0, 3.0]), np.array([0.0, 0.0, 1e6])]),
    ([torch.zeros(2), torch.zeros(3)], [[torch.zeros(2), torch.ones(3)], [torch.ones(2), torch.zeros(3)]]),
]


@pytest.mark.parametrize("got, wants", SAME_SHAPE, ids=["floats", "nan", "ints", "numpy", "list_of_tensors"])
def test_a_summary_depends_on_the_expected_values_only_through_their_shape(got, wants):
    summaries = {summary_of(assert_close, got, w).summary for w in wants}
    assert len(summaries) == 1, summaries  # zeros against max|expected| = 1 or 100: the same words


def test_a_token_list_summary_does_not_say_where_it_first_differs():
    got = [5, 5, 5, 5, 5, 5]
    summaries = {summary_of(assert_equal, got, w).summary for w in ([1, 5, 5, 5, 5, 5], [5, 5, 5, 5, 1, 5])}
    assert len(summaries) == 1, summaries
    nested = {summary_of(assert_equal, [[5], [5, 5]], w).summary for w in ([[1], [5, 5]], [[5], [5, 1]])}
    assert len(nested) == 1, nested


def test_the_public_message_keeps_the_detail_and_the_hint():
    e = summary_of(assert_close, torch.zeros(2, 3), torch.full((2, 3), 2.0), what="logits", hint="scale by 1/sqrt(d)")
    assert e.summary == "logits: values differ (shape (2, 3))"
    text = str(e)
    assert "6 of 6 values differ" in text and "largest error 2" in text
    assert "first difference at index [0, 0]: expected 2, got 0" in text and "hint: scale by 1/sqrt(d)" in text
    nan = summary_of(assert_close, torch.tensor([1.0, float("inf")]), torch.ones(2))
    assert nan.summary.endswith("got inf or nan")
    tokens = summary_of(assert_equal, [1, 2, 3], [1, 2, 4], what="ids")
    assert tokens.summary == "ids: values differ (length 3)" and "ids[2]: expected 4, got 3" in str(tokens)
    assert summary_of(assert_close, torch.zeros(2), torch.zeros(3)).summary == \
        "output: wrong shape: expected (3), got (2)"
