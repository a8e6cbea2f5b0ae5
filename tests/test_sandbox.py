"""The sandbox as a whole, as root: its environment, memory, shared memory,
replies, CPU share, per-unit limits and death with the judge.

Every attack is graded by one `grade-all --jobs 2` run on a copy of the
course whose calls time out after 3 s of CPU time, and scores what the
control scores (the attacked function left unwritten): see
tests/sandbox_attacks.py. The non-root path is in tests/test_sandbox_user.py.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from grader.judge import UID_BASE

import adversarial as adv
import sandbox_attacks as sa
from course_copy import copy_course
from kit import ROOT, llmfs

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the cgroup and namespace sandbox is root's (CI runs as root)")
UNIT = "u04"
CPU_S_FOR_U04 = 200  # a per-unit limit, different from [defaults]


def sandbox_course(tmp_path: Path) -> Path:
    course = copy_course(tmp_path)
    text = (course / "course.toml").read_text(encoding="utf-8")
    text = re.sub(r"(?m)^call_timeout_s = \d+", "call_timeout_s = 3", text, count=1)
    start = text.index('id = "u04"')
    end = text.index("\n[[unit]]", start)  # u04's block ends where the next unit starts
    assert "[unit.limits]" not in text[start:end]
    text = text[:end] + f"\n[unit.limits]\ncpu_s = {CPU_S_FOR_U04}\n" + text[end:]
    (course / "course.toml").write_text(text, encoding="utf-8")
    sa.let_attacks_past_the_static_check(course)
    return course


def sandbox_processes() -> list[int]:
    """Processes of the uids the judge gives its sandboxes."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}").st_uid >= UID_BASE:
                found.append(int(pid))
        except OSError:
            pass
    return found


def shared_memory_segments(size: int) -> int:
    with open("/proc/sysvipc/shm", encoding="ascii") as f:
        return sum(1 for line in f.readlines()[1:] if line.split()[3] == str(size))


SUBMISSIONS = {
    "control": adv.with_causal_mask(sa.CONTROL),
    "control_heads": adv.with_heads_branch('raise NotImplementedError("u04: reject bad n_heads")'),
    "honest": adv.REFERENCE,
    "read_environment": sa.READ_ENVIRONMENT,
    "guess_the_test": sa.GUESS_THE_TEST,
    "memory_in_children": sa.MEMORY_IN_CHILDREN,
    "shared_memory": sa.SHARED_MEMORY,
    "huge_reply": sa.HUGE_REPLY,
    "sleeper": sa.SLEEPER,
    "busy_neighbour": sa.BUSY_NEIGHBOUR,
    "leak_through_message": sa.LEAK_THROUGH_MESSAGE,
}


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    base = tmp_path_factory.mktemp("sandbox")
    course = sandbox_course(base)
    subs = base / "subs"
    subs.mkdir()
    for name, source in SUBMISSIONS.items():
        adv.write_submission(subs, name, source)
    out = base / "out" / "grades.csv"
    out.parent.mkdir()
    shm_before = shared_memory_segments(48 << 20)
    leftovers_before = leftovers()
    env = {**os.environ, sa.CANARY_VAR: sa.CANARY}
    proc = subprocess.run([sys.executable, "-m", "grader", "--course", str(course / "course.toml"), "grade-all",
                           str(subs), "--jobs", "2", "--out", str(out), "--unit", UNIT],
                          cwd=ROOT, env=env, capture_output=True, text=True, encoding="utf-8", timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in (out.parent / "grades-reports").glob("*.json")}
    assert set(reports) == set(SUBMISSIONS), proc.stderr[-2000:]
    return {"reports": reports, "shm_before": shm_before, "leftovers_before": leftovers_before}


def statuses(report) -> dict:
    return {t["name"]: t["status"] for t in report["tests"]}


@pytest.mark.parametrize("attack, control", [
    ("read_environment", "control"), ("guess_the_test", "control"), ("memory_in_children", "control"),
    ("shared_memory", "control"), ("huge_reply", "control"), ("sleeper", "control"),
    ("busy_neighbour", "control_heads"), ("leak_through_message", "control"),
])
def test_an_attack_on_the_sandbox_scores_what_its_control_scores(batch, attack, control):
    got, want = batch["reports"][attack], batch["reports"][control]
    assert got["score"] <= want["score"] < got["max_score"], \
        [t for t in got["tests"] if statuses(want)[t["name"]] != t["status"]]


def test_the_honest_neighbour_of_a_busy_submission_keeps_full_marks(batch):
    r = batch["reports"]["honest"]
    assert r["score"] == r["max_score"], [t for t in r["tests"] if t["status"] != "passed"]


def test_memory_is_limited_for_the_sandbox_as_a_whole(batch):
    r = batch["reports"]["memory_in_children"]
    assert any("cgroup" in line for line in r["isolation"]["in_force"]), r["isolation"]


def test_shared_memory_does_not_outlive_the_sandbox(batch):
    assert shared_memory_segments(48 << 20) == batch["shm_before"]


def causal_mask_messages(report) -> list[str]:
    return [t["message"] for t in report["tests"] if t["name"].startswith("test_causal_mask")]


def test_a_reply_too_large_is_refused_with_the_limit_named(batch):
    messages = causal_mask_messages(batch["reports"]["huge_reply"])
    assert messages and all("larger than the 32 MB a reply may be" in m for m in messages), messages


def test_code_that_waits_is_stopped_by_the_wall_clock(batch):
    messages = causal_mask_messages(batch["reports"]["sleeper"])
    assert any("timed out: waited" in m and "3 s of CPU time" in m for m in messages), messages


def test_each_unit_runs_under_its_own_limits_and_the_report_says_which(batch):
    lines = batch["reports"]["honest"]["isolation"]["in_force"]
    assert any(line.startswith("limits for u04: 3 s CPU per call, 200 CPU s per worker") for line in lines), lines


def leftovers() -> set[str]:
    """Worker scratch folders and sandbox cgroups that exist now."""
    found = {str(d) for d in Path(tempfile.gettempdir()).glob("llmfs-worker-*")}
    return found | {str(d) for d in Path("/sys/fs/cgroup").glob("*/**/llmfs-*") if d.is_dir()}


def test_nothing_is_left_behind(batch):
    assert not sandbox_processes()
    with open("/proc/self/mounts", encoding="utf-8") as f:
        assert not [line for line in f if "llmfs" in line], "a sandbox mount is visible outside it"
    left = leftovers() - batch["leftovers_before"]
    assert not left, f"left behind: {sorted(left)[:3]}"


def test_the_sandbox_dies_with_the_judge(tmp_path):
    course = sandbox_course(tmp_path)
    sub = adv.write_submission(tmp_path, "sleeper", sa.SLEEPER)
    judge = subprocess.Popen([sys.executable, "-m", "grader", "--course", str(course / "course.toml"), "grade",
                              str(sub), "--unit", UNIT], cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    uid = UID_BASE + judge.pid % 100_000  # the sandbox uid this judge gives its workers

    def its_sandbox() -> list[int]:
        return [pid for pid in sandbox_processes() if _uid(pid) == uid]

    try:
        deadline = time.monotonic() + 120
        while not its_sandbox() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert its_sandbox(), "the sandbox never started"
    finally:
        judge.send_signal(signal.SIGKILL)  # as soon as its sandbox exists: the likeliest race
        judge.wait()
    deadline = time.monotonic() + 15
    while its_sandbox() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not its_sandbox(), "sandbox processes outlived the judge"


def _uid(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def test_without_isolation_hidden_tests_are_not_graded_unless_insecure():
    proc = llmfs("grade", "solutions", "--unit", UNIT, "--isolation", "user")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "--insecure" in proc.stderr, proc.stderr


def test_seeds_are_keyed_so_the_worker_cannot_tell_which_test_calls():
    from grader.course import load_course
    from grader.runners import call_seed

    course = load_course(ROOT / "course.toml")
    name = "test_causal_mask_allows_the_past_and_the_diagonal[1]"
    assert course.seed_secret  # the kit has hidden tests
    assert call_seed(name, 1, course.seed_secret) != sa.old_seed(name, 1)


def test_hidden_reports_carry_no_text_chosen_by_student_code(batch):
    for t in batch["reports"]["leak_through_message"]["tests"]:
        if t["hidden"] and t["status"] != "passed":
            assert sa.LEAK_MARK not in t["message"], t["message"][:300]
            assert t["message"].startswith("your code raised ValueError at scratchllm/attention.py line")


def test_a_killed_judge_leaves_nothing_the_next_grading_does_not_sweep(tmp_path, monkeypatch):
    from grader import remote

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    stale = tmp_path / f"{remote.SCRATCH_PREFIX}{dead.pid}-abc"
    live = tmp_path / f"{remote.SCRATCH_PREFIX}{os.getpid()}-abc"
    for folder in (stale, live):
        (folder / "root").mkdir(parents=True)
    remote.sweep_stale_scratch()
    assert not stale.exists() and live.exists()
