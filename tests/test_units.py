"""Every ready unit: its public tests pass on the reference and fail on the stubs.

"Fail on the stubs" means fail with NotImplementedError raised by the stub,
not with an import error, a fixture error or a typo in the test.
"""

import pytest

from grader.course import load_course

from kit import ROOT, llmfs, run_course_tests

COURSE = load_course(ROOT / "course.toml")
READY = [u.id for u in COURSE.ready_units]


@pytest.fixture(scope="module")
def on_solutions():
    return run_course_tests("exercises/tests", "--target", "solutions")


@pytest.fixture(scope="module")
def on_stubs():
    return run_course_tests("exercises/tests", "--target", "exercises")


def of_unit(results, unit):
    mine = {k: r for k, r in results.items() if r["unit"] == unit}
    assert mine, f"no public tests found for {unit}"
    return mine


@pytest.mark.parametrize("unit", READY)
def test_public_tests_pass_on_the_reference(on_solutions, unit):
    failed = {k: r["message"] for k, r in of_unit(on_solutions, unit).items() if r["outcome"] != "passed"}
    assert not failed, failed


@pytest.mark.parametrize("unit", READY)
def test_public_tests_fail_on_the_stubs_with_not_implemented(on_stubs, unit):
    wrong = {k: (r["outcome"], r["exc_type"], r["message"]) for k, r in of_unit(on_stubs, unit).items()
             if r["outcome"] != "failed" or r["exc_type"] != "NotImplementedError"}
    assert not wrong, wrong


def test_every_test_file_belongs_to_a_unit(on_stubs):
    assert all(r["unit"] in READY for r in on_stubs.values()), {r["unit"] for r in on_stubs.values()}


def test_llmfs_check_reports_zero_on_the_stubs():
    proc = llmfs("check", "u04")
    assert proc.returncode == 1
    n = sum(1 for r in run_course_tests("exercises/tests", "-m", "u04").values())
    assert f"0/{n}" in proc.stdout
    assert "left TODO: attention.softmax" in proc.stdout


def test_llmfs_check_passes_on_the_reference():
    proc = llmfs("check", "u04", "--target", "solutions")  # every unit: test_public_tests_pass_on_the_reference
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "left TODO" not in proc.stdout
