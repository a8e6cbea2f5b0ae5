"""Scoring and reports: weights, hidden messages, text output, unit independence."""

import json

from grader.course import load_course
from grader.report import to_dict, to_text
from grader.results import TestResult
from grader.scoring import HIDDEN_WITHHELD, score

from kit import ROOT, llmfs

COURSE = load_course(ROOT / "course.toml")


def result(name, outcome="passed", weight=1.0, hidden=False, message="", props=None, unit="u04"):
    return TestResult(nodeid=f"f.py::{name}", unit=unit, weight=weight, outcome=outcome, message=message,
                      hidden=hidden, props=props or {})


def test_points_are_split_by_weight_and_the_maximum_comes_from_the_course():
    results = [result("a", weight=3), result("b", "failed"), result("c")]
    g = score(COURSE, results, ["u04", "u03"], "x")
    u04, u03 = g.units
    assert u04.score == 10 * 4 / 5 and u04.passed == 2 and u04.total == 3
    assert u03.score == 0 and u03.total == 0 and "no tests" in u03.message
    assert g.max_score == 20 and g.score == 8
    assert [t.max_score for t in g.tests] == [6, 2, 2]


def test_hidden_failures_show_a_summary_never_the_assertion():
    leaky = "assert tensor([1., 2.]) == tensor([1., 3.])"
    results = [
        result("plain_assert", "failed", hidden=True, message=leaky),
        result("mismatch", "failed", hidden=True, message="Mismatch: out: 3 of 8 differ\nexpected 1.5, got 2",
               props={"summary": "out: 3 of 8 differ", "hint": "check the scale"}),
        result("crash", "failed", hidden=True, message="...",
               props={"origin": "student", "summary": "your code raised ValueError: bad"}),
        result("public", "failed", message="grader.testing.Mismatch: out: differs\nexpected 1.5, got 2"),
    ]
    msgs = {t.name: t.message for t in score(COURSE, results, ["u04"], "x").tests}
    assert msgs["plain_assert"] == HIDDEN_WITHHELD
    assert msgs["mismatch"] == "out: 3 of 8 differ (hint: check the scale)"
    assert msgs["crash"] == "your code raised ValueError: bad"
    assert msgs["public"].startswith("out: differs\nexpected 1.5")


def test_text_report_has_the_table_failures_and_isolation():
    g = score(COURSE, [result("a"), result("b", "failed", message="boom")], ["u04"], "alice")
    g.isolation = {"in_force": ["separate process"], "missing": ["network not disabled (needs root)"]}
    text = to_text(g)
    assert "u04" in text and "5/10" in text and "1/2" in text
    assert "Failures:" in text and "boom" in text
    assert "Isolation in force: separate process" in text and "Not in force: network" in text
    assert json.loads(json.dumps(to_dict(g)))["units"][0]["score"] == 5


def test_a_broken_unit_scores_zero_and_the_others_are_still_graded(tmp_path):
    pkg = tmp_path / "bob" / "scratchllm"
    pkg.mkdir(parents=True)
    (pkg / "attention.py").write_text("def broken(:\n", encoding="utf-8")
    for module in ("embeddings",):
        (pkg / f"{module}.py").write_text(
            (ROOT / "solutions" / "scratchllm" / f"{module}.py").read_text(encoding="utf-8"), encoding="utf-8")
    proc = llmfs("grade", str(pkg.parent), "--unit", "u03", "--unit", "u04", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    units = {u["id"]: u for u in r["units"]}
    assert units["u03"]["score"] == units["u03"]["max_score"] == 10
    assert units["u04"]["score"] == 0
    assert all("SyntaxError" in t["message"] for t in r["tests"] if t["unit"] == "u04")
    assert any("not in the submission" in n and "layers.py" in n for n in r["notes"]), r["notes"]


def test_llmfs_grade_explains_itself():
    proc = llmfs("grade", "--help")
    assert proc.returncode == 0
    for words in ("sandboxed worker", "--format", "--insecure", "solutions"):
        assert words in proc.stdout
    proc = llmfs("grade", "no/such/folder")
    assert proc.returncode == 2 and "no such file or folder" in proc.stderr and "Traceback" not in proc.stderr


def test_a_hidden_test_shows_the_type_and_line_of_a_student_exception_never_its_text():
    from grader.remote import StudentCodeError

    tb = ('Traceback (most recent call last):\n'
          '  File "/sandbox/scratchllm/attention.py", line 42, in causal_mask\n'
          '    raise ValueError(stolen)\n'
          'ValueError: def hidden_probe(pkg): ...')
    e = StudentCodeError("ValueError", "def hidden_probe(pkg): ...", tb, package="scratchllm")
    assert e.summary == "your code raised ValueError at scratchllm/attention.py line 42"
    assert "hidden_probe" in str(e)  # a public test still shows the student everything
    long_name = StudentCodeError("E" * 5000, "x", "", package="scratchllm")
    assert long_name.summary == "your code raised an exception"
