"""`llmfs grade` and `llmfs grade-all` against honest and hostile submissions.

All sample submissions are graded once, by one `grade-all` run on a copy of
the course whose call timeout is 3 s (so hangs cost little), and each test
reads its submission's JSON report. The rule for every attack: it scores
exactly what the control (the same code with the attacked function simply
not written) scores, and the batch goes on.
"""

import csv
import json
import os
import re
import socket

import pytest

from grader.course import load_course

import adversarial as adv
from course_copy import allow_imports, copy_course
from kit import ROOT, llmfs

IS_ROOT = os.geteuid() == 0
UNIT = "u04"


# What the attacks on the worker process need to import, past the static scan.
SANDBOX_ATTACK_IMPORTS = ["os", "sys", "signal", "socket", "glob", "importlib", "pytest", "grader"]


def course_with_short_timeouts(tmp_path):
    """A copy of the course whose calls time out after 3 s, so hangs cost little,
    and whose student modules may import what the sandbox attacks need."""
    course = copy_course(tmp_path)
    text = (course / "course.toml").read_text(encoding="utf-8")
    text = re.sub(r"(?m)^call_timeout_s = \d+", "call_timeout_s = 3", text, count=1)
    (course / "course.toml").write_text(text, encoding="utf-8")
    allow_imports(course, SANDBOX_ATTACK_IMPORTS)
    return course


@pytest.fixture(scope="module")
def server():
    """A listening socket on loopback: reachable unless the worker has its own network."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    yield s.getsockname()[1]
    s.close()


@pytest.fixture(scope="module")
def batch(tmp_path_factory, server):
    base = tmp_path_factory.mktemp("grading")
    course = course_with_short_timeouts(base)
    subs = base / "subs"
    subs.mkdir()
    for name, source in {**adv.ATTACKS, **adv.PROCESS_ATTACKS, **adv.FORBID_ATTACKS}.items():
        adv.write_submission(subs, name, source)
    adv.write_submission(subs, "network", adv.network_attack(server))
    adv.write_submission(subs, "honest", adv.REFERENCE)
    adv.write_submission(subs, "honest_again", adv.REFERENCE)
    adv.write_submission(subs, "crlf_bom", adv.REFERENCE, crlf_bom=True)
    adv.write_submission(subs, "static_forbidden", adv.STATIC_FORBIDDEN)
    adv.write_submission(subs, "runtime_forbidden", adv.RUNTIME_FORBIDDEN)
    adv.write_submission(subs, "syntax_error", adv.SYNTAX_ERROR)
    adv.write_submission(subs, "raises_at_import", adv.RAISES_AT_IMPORT)
    adv.write_submission(subs, "second_reply", adv.SECOND_REPLY)
    adv.write_symlinked(subs, "symlinked")
    ref = adv.REFERENCE.encode("utf-8")
    adv.write_zip(subs, "zipped", {"alice/scratchllm/attention.py": ref, "alice/scratchllm/__pycache__/x.pyc": b"\0"})
    adv.write_zip(subs, "zip_slip", {"scratchllm/attention.py": ref, "../../evil.py": b"x = 1"})
    adv.write_zip(subs, "zip_symlink", {"scratchllm/attention.py": ref}, symlink="scratchllm/passwd.py")
    adv.write_zip(subs, "zip_data_file", {"scratchllm/attention.py": ref, "scratchllm/weights.bin": b"\0" * 10})
    (subs / "not_a_zip.zip").write_bytes(b"this is not a zip file")
    out = base / "out" / "grades.csv"
    out.parent.mkdir()
    proc = llmfs("--course", str(course / "course.toml"), "grade-all", str(subs), "--jobs", "2",
                 "--out", str(out), "--unit", UNIT, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in (base / "out" / "grades-reports").glob("*.json")}
    with out.open(encoding="utf-8", newline="") as fh:
        rows = {r["submission"]: r for r in csv.DictReader(fh)}
    return {"reports": reports, "rows": rows, "course": course, "subs": subs, "out": out, "stderr": proc.stderr}


def statuses(report):
    return {t["name"]: t["status"] for t in report["tests"]}


def test_every_submission_got_a_row(batch):
    expected = set(adv.ATTACKS) | set(adv.PROCESS_ATTACKS) | set(adv.FORBID_ATTACKS) | {"network", "honest", "honest_again", "crlf_bom", "static_forbidden",
                                   "runtime_forbidden", "syntax_error", "raises_at_import", "second_reply",
                                   "symlinked", "zipped", "zip_slip", "zip_symlink", "zip_data_file", "not_a_zip"}
    assert set(batch["rows"]) == expected


def test_the_reference_gets_full_marks(batch):
    for name in ("honest", "crlf_bom", "zipped"):
        r = batch["reports"][name]
        assert r["score"] == r["max_score"] == 10, (name, [t for t in r["tests"] if t["status"] != "passed"])


def test_the_control_gets_the_honest_part_only(batch):
    r = batch["reports"]["control"]
    failed = [t["name"] for t in r["tests"] if t["status"] != "passed"]
    assert failed and all(n.startswith(CAUSAL) for n in failed), failed
    assert 0 < r["score"] < r["max_score"]


CAUSAL, HEADS = "test_causal_mask", "test_mha_rejects_heads"  # the tests that reach each attacked spot
ATTACKS = [(a, "control", CAUSAL) for a in sorted(set(adv.ATTACKS) - {"control"})] + \
    [(a, "control_heads", HEADS) for a in sorted(set(adv.PROCESS_ATTACKS) - {"control_heads"})]


def attacked_tests(report, prefix):
    return [t for t in report["tests"] if t["name"].startswith(prefix)]


@pytest.mark.parametrize("attack, control_name, attacked", ATTACKS, ids=[a[0] for a in ATTACKS])
def test_an_attack_scores_exactly_its_honest_part(batch, attack, control_name, attacked):
    control, got = batch["reports"][control_name], batch["reports"][attack]
    if attack in adv.NEEDS_FILE_HIDING and not IS_ROOT:
        assert got["isolation"]["hidden_files_readable"] is True  # and the report says so
        assert any("hidden files readable" in m for m in got["isolation"]["missing"])
        return
    differ = {k: v for k, v in statuses(got).items() if statuses(control)[k] != v}
    assert not differ, differ
    assert got["score"] == control["score"] < got["max_score"]
    assert batch["rows"][attack]["score"] == batch["rows"][control_name]["score"]
    assert all(t["name"].startswith(attacked) for t in got["tests"] if t["status"] != "passed")


# (attack, what a public test says, what a hidden test says). A hidden test shows the
# grader's own words, or the type of the student's exception and its line: never text
# the student's code chose (a message, a class's qualified name).
@pytest.mark.parametrize("attack, public, hidden", [
    ("hang", "3 s of CPU time", "3 s of CPU time"),
    ("sys_exit", "sys.exit(0)", "your code raised SystemExit at scratchllm/attention.py line"),
    ("os_exit", "worker exited with code 0 during the call", "worker exited with code 0 during the call"),
    ("crash", "segmentation fault", "segmentation fault"),
    ("base_exception", "Escape", "your code raised Escape at scratchllm/attention.py line"),
    ("keyboard_interrupt", "KeyboardInterrupt", "your code raised KeyboardInterrupt at"),
    ("memory_bomb", "MemoryError", "your code raised MemoryError at"),
    ("always_equal", "not plain data", "not plain data"),
    ("tensor_subclass", "torch.Tensor subclass", "your code returned something that is not plain data"),
    ("float_subclass", "float subclass", "your code returned something that is not plain data"),
])
def test_failures_are_explained_plainly(batch, attack, public, hidden):
    attacked = CAUSAL if attack in adv.ATTACKS else HEADS
    tests = attacked_tests(batch["reports"][attack], attacked)
    assert tests
    for t in tests:
        assert (hidden if t["hidden"] else public) in t["message"], t


def test_the_grader_survives_bombs_and_floods(batch):
    for attack in ("fork_bomb", "huge_output", "fill_disk", "memory_bomb", "hang"):
        r = batch["reports"][attack]
        assert r["isolation"]["worker_restarts"] <= 1, (attack, r["isolation"])
        passed = sum(t["status"] == "passed" for t in r["tests"])
        assert passed == len(r["tests"]) - 1, attack


def test_the_stubs_and_syntax_errors_score_zero_with_the_error_shown(batch):
    r = batch["reports"]["syntax_error"]
    assert r["score"] == 0
    assert all("SyntaxError" in t["message"] and "line" in t["message"] for t in r["tests"]), r["tests"][0]
    r = batch["reports"]["raises_at_import"]
    assert r["score"] == 0
    for t in r["tests"]:
        words = "your package could not be imported: RuntimeError at" if t["hidden"] else "broken at import"
        assert words in t["message"], t


def test_forbidden_apis_fail_the_unit_naming_call_and_line(batch):
    r = batch["reports"]["static_forbidden"]
    assert r["score"] == 0
    assert all("scaled_dot_product_attention" in t["message"] and "line" in t["message"] for t in r["tests"])
    r = batch["reports"]["runtime_forbidden"]
    failed = [t for t in r["tests"] if t["status"] != "passed"]
    assert failed and any(not t["hidden"] for t in failed)
    for t in failed:
        if t["hidden"]:
            assert "your code raised ForbiddenOperatorError at scratchllm/attention.py line" in t["message"], t
        else:
            assert "aten::_log_softmax" in t["message"] and "unit u04" in t["message"], t
    assert all(t["status"] == "failed" for t in attacked_tests(r, "test_sdpa"))
    assert all(t["status"] == "passed" for t in attacked_tests(r, "test_softmax"))  # the honest part


FORBID_STATIC = sorted(set(adv.FORBID_ATTACKS) - adv.FORBID_RUNTIME - {"control_softmax"})


@pytest.mark.parametrize("attack", sorted(set(adv.FORBID_ATTACKS) - {"control_softmax"}))
def test_a_forbidden_api_under_any_name_scores_no_more_than_leaving_it_unwritten(batch, attack):
    control, got = batch["reports"]["control_softmax"], batch["reports"][attack]
    assert 0 < control["score"] < control["max_score"]
    assert got["score"] <= control["score"]
    assert float(batch["rows"][attack]["score"]) <= float(batch["rows"]["control_softmax"]["score"])


@pytest.mark.parametrize("attack", FORBID_STATIC)
def test_the_static_scan_refuses_the_unit_with_one_line_naming_file_and_line(batch, attack):
    r = batch["reports"][attack]
    assert r["score"] == 0
    for t in r["tests"]:
        assert t["status"] != "passed" and "\n" not in t["message"], t
        assert re.match(r"scratchllm/attention\.py line \d+: ", t["message"]), t["message"]


@pytest.mark.parametrize("attack", sorted(adv.FORBID_RUNTIME))
def test_the_operator_check_fails_each_call_naming_the_operator(batch, attack):
    r = batch["reports"][attack]
    failed = [t for t in r["tests"] if t["status"] != "passed"]
    assert failed and any(not t["hidden"] for t in failed)
    for t in failed:  # hidden tests show the exception's type only
        assert "ForbiddenOperatorError" in t["message"], t
        if not t["hidden"]:
            assert "your code ran aten::_" in t["message"] and "unit u04" in t["message"], t


def test_a_second_reply_is_never_taken_as_an_answer(batch):
    # Every causal_mask call is answered honestly, then again with a forged value. Were a
    # stray reply ever taken as the answer to a later call, that test would fail.
    r = batch["reports"]["second_reply"]
    assert r["score"] == r["max_score"], [t for t in r["tests"] if t["status"] != "passed"]


@pytest.mark.parametrize("name, words", [
    ("symlinked", "symbolic link"), ("zip_slip", "parent path"), ("zip_symlink", "symbolic link"),
    ("zip_data_file", "not a Python file"), ("not_a_zip", "not a readable zip"),
])
def test_unsafe_submissions_are_refused_with_a_reason(batch, name, words):
    r = batch["reports"][name]
    assert r["score"] == 0 and r["max_score"] == 10
    assert words in r["error"]
    assert words in batch["rows"][name]["error"]


def test_network_is_off_in_the_worker_as_root(batch):
    r = batch["reports"]["network"]
    causal = {t["name"]: t["status"] for t in attacked_tests(r, CAUSAL)}
    if IS_ROOT:
        assert set(causal.values()) == {"failed"}
    else:
        assert set(causal.values()) == {"passed"}
        assert any("network" in m for m in r["isolation"]["missing"])


def test_forged_files_change_nothing(batch):
    assert not (ROOT / "forged.json").exists() and not (ROOT / "tests" / "forged.json").exists()
    assert batch["rows"]["forged_files"]["score"] == batch["rows"]["control"]["score"]


def test_printed_output_cannot_change_the_score(batch):
    assert batch["reports"]["fake_results"]["score"] == batch["reports"]["control"]["score"]


def test_hidden_failures_never_show_expected_values(batch):
    r = batch["reports"]["monkeypatch"]
    for t in r["tests"]:
        if t["hidden"] and t["status"] == "failed":
            assert "expected" not in t["message"], t["message"]


def test_reports_state_the_isolation_in_force(batch):
    iso = batch["reports"]["honest"]["isolation"]
    assert "separate process" in iso["in_force"]
    if IS_ROOT:
        assert iso["hidden_files_readable"] is False
        assert any("network off" in s for s in iso["in_force"])
        assert any("hidden files unreachable" in s for s in iso["in_force"])
    else:
        assert iso["hidden_files_readable"] is True


def test_grading_is_deterministic(batch):
    a, b = batch["reports"]["honest"], batch["reports"]["honest_again"]
    strip = [{k: v for k, v in t.items() if k != "duration"} for t in a["tests"]]
    assert strip == [{k: v for k, v in t.items() if k != "duration"} for t in b["tests"]]


def test_grade_all_resumes_and_skips_what_is_graded(batch):
    proc = llmfs("--course", str(batch["course"] / "course.toml"), "grade-all", str(batch["subs"]),
                 "--out", str(batch["out"]), "--unit", UNIT)
    assert proc.returncode == 0
    assert "graded 0 submission(s)" in proc.stderr
    with batch["out"].open(encoding="utf-8") as fh:
        assert sum(1 for _ in fh) == len(batch["rows"]) + 1


def test_json_schema_is_stable(batch):
    r = batch["reports"]["honest"]
    assert {"schema", "score", "max_score", "units", "tests", "isolation", "error", "notes"} <= set(r)
    assert set(r["tests"][0]) == {"name", "unit", "score", "max_score", "status", "message", "duration", "hidden"}
    assert set(r["units"][0]) >= {"id", "title", "score", "max_score", "passed", "total"}
    assert abs(sum(t["max_score"] for t in r["tests"]) - r["max_score"]) < 1e-4  # shares rounded to 1e-6


def test_nothing_is_left_running_or_lying_around(batch):
    from grader.judge import UID_BASE

    leftovers = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}").st_uid >= UID_BASE:
                leftovers.append(pid)
        except OSError:
            pass
    assert not leftovers, "processes of sandbox users still running after the batch"
    subs = batch["subs"]
    assert not list(subs.glob("*/fill*")) and not list(subs.glob("*/scratchllm/*.json"))


@pytest.mark.parametrize("target, full", [("solutions", True), ("exercises", False)])
def test_the_reference_gets_full_marks_and_the_stubs_zero_on_every_ready_unit(target, full):
    proc = llmfs("grade", target, "--format", "json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(proc.stdout)
    assert r["max_score"] > 0 and r["score"] == (r["max_score"] if full else 0), \
        [(t["name"], t["message"][:200]) for t in r["tests"] if (t["status"] == "passed") != full][:5]
    assert {u["id"] for u in r["units"]} == {u.id for u in load_course(ROOT / "course.toml").ready_units}
    if not full:
        assert all("NotImplementedError" in t["message"] for t in r["tests"])
