"""Grading as a real unprivileged user: the same sandbox as root's, in a user namespace.

The test (which runs as root in CI) creates a throwaway user, gives it a
copy of the course that it owns, as an instructor's own files would be, and
runs `llmfs grade-all` as that user on the reference, the stubs and three
attacks that all worked before user namespaces: taking over a reference
module the judge loads later, leaving a .pth file that runs in the next
Python, and reaching the judge through /proc. Each must score what the
control scores and leave no trace.
"""

from __future__ import annotations

import json
import os
import pwd
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from grader.sandbox import user_namespaces_work

import adversarial as adv
import sandbox_attacks as sa
from course_copy import copy_course
from kit import ROOT

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create a throwaway user (CI runs as root)")
USER = "llmfs-kit-grader"
UNIT = "u04"


def traversable_for_others(paths: list[Path]) -> list[tuple[Path, int]]:
    """Give 'others' search permission on every folder above `paths`; return what to restore."""
    changed = []
    for path in paths:
        for folder in [*reversed(path.parents)]:
            mode = folder.stat().st_mode
            if not mode & stat.S_IXOTH:
                os.chmod(folder, mode | stat.S_IXOTH)
                changed.append((folder, mode))
    return changed


@pytest.fixture(scope="module")
def unprivileged():
    """A throwaway user who can run this Python and read the kit, and a folder of its own."""
    if shutil.which("useradd") is None:
        pytest.fail("useradd is needed to test grading as a normal user")
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", USER], check=True)
    user = pwd.getpwnam(USER)
    restore = traversable_for_others([Path(sys.executable).resolve(), Path(sys.executable).absolute(),
                                      Path(sys.prefix), ROOT / "grader"])
    home = Path(tempfile.mkdtemp(prefix="llmfs-user-"))
    os.chown(home, user.pw_uid, user.pw_gid)
    os.chmod(home, 0o755)
    try:
        yield user, home
    finally:
        for folder, mode in reversed(restore):
            os.chmod(folder, mode)
        shutil.rmtree(home, ignore_errors=True)


def run_as(user, cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
    command = f"cd {shlex.quote(str(cwd))} && env {exports} {shlex.quote(sys.executable)} -m grader " + \
        " ".join(shlex.quote(a) for a in args)
    return subprocess.run(["su", "-s", "/bin/sh", user.pw_name, "-c", command], capture_output=True, text=True,
                          encoding="utf-8", timeout=1200)


@pytest.fixture(scope="module")
def graded(unprivileged):
    user, home = unprivileged
    course = copy_course(home)
    sa.let_attacks_past_the_static_check(course)
    site = Path(user.pw_dir) / ".local" / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    solutions_file = course / "solutions" / "scratchllm" / "attention.py"
    subs = home / "subs"
    subs.mkdir()
    submissions = {
        "control": adv.with_causal_mask(sa.CONTROL),
        "takeover": sa.takeover(str(solutions_file)),
        "pth": sa.plant_pth(str(site)),
        "proc": sa.reach_the_judge("--course"),  # in the judge's command line, not the worker's
    }
    for name, source in submissions.items():
        adv.write_submission(subs, name, source)
    shutil.copytree(ROOT / "solutions", subs / "reference")
    shutil.copytree(ROOT / "exercises", subs / "stubs", ignore=shutil.ignore_patterns("tests", "units"))
    subprocess.run(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", str(home)], check=True)
    before = solutions_file.read_bytes()
    out = home / "out" / "grades.csv"
    proc = run_as(user, course, "--course", str(course / "course.toml"), "grade-all", str(subs), "--jobs", "2",
                  "--out", str(out), "--unit", UNIT, env={sa.CANARY_VAR: sa.CANARY, "HOME": user.pw_dir})
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in (out.parent / "grades-reports").glob("*.json")}
    assert set(reports) == {*submissions, "reference", "stubs"}, proc.stderr[-2000:]
    return {"reports": reports, "solutions_file": solutions_file, "before": before, "site": site}


def test_user_namespaces_are_available_here():
    # The machines this kit is built and graded on allow them; without them the
    # tests below would be testing the refusal instead.
    assert user_namespaces_work()


def test_a_normal_user_gets_the_full_sandbox(graded):
    iso = graded["reports"]["reference"]["isolation"]
    assert iso["mode"] == "userns" and iso["hidden_files_readable"] is False, iso
    assert any("hidden files unreachable" in line for line in iso["in_force"])


def test_the_reference_gets_full_marks_and_the_stubs_zero(graded):
    ref, stubs = graded["reports"]["reference"], graded["reports"]["stubs"]
    assert ref["score"] == ref["max_score"] == 10, [t for t in ref["tests"] if t["status"] != "passed"][:3]
    assert stubs["score"] == 0 and all("NotImplementedError" in t["message"] for t in stubs["tests"])


@pytest.mark.parametrize("attack", ["takeover", "pth", "proc"])
def test_an_attack_scores_what_the_control_scores(graded, attack):
    got, control = graded["reports"][attack], graded["reports"]["control"]
    assert got["score"] == control["score"] < got["max_score"]


def test_no_trace_is_left(graded):
    assert graded["solutions_file"].read_bytes() == graded["before"]
    assert not (graded["site"] / "llmfs_owned.pth").exists()
    user = pwd.getpwnam(USER)
    left = [pid for pid in filter(str.isdigit, os.listdir("/proc"))
            if _uid_of(pid) == user.pw_uid]
    assert not left, "processes of the grading user outlived grading"


def _uid_of(pid: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None
