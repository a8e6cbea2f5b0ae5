"""--target decides what `scratchllm` is; nothing installed can shadow it."""

import shutil

from kit import ROOT, run_course_tests


def fake_installed_copy(tmp_path):
    """A `scratchllm` on PYTHONPATH whose attention is wrong everywhere."""
    pkg = tmp_path / "site" / "scratchllm"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("", encoding="utf-8")
    (pkg / "attention.py").write_text("raise ImportError('the installed copy was imported')\n", encoding="utf-8")
    return str(tmp_path / "site")


def test_an_installed_scratchllm_never_shadows_the_target(tmp_path):
    env = {"PYTHONPATH": fake_installed_copy(tmp_path)}
    results = run_course_tests("exercises/tests", "-m", "u04", "--target", "solutions", env=env)
    assert results and all(r["outcome"] == "passed" for r in results.values())


def test_a_path_target_lays_the_submission_over_exercises(tmp_path):
    sub = tmp_path / "alice" / "scratchllm"
    sub.mkdir(parents=True)
    shutil.copy(ROOT / "solutions" / "scratchllm" / "attention.py", sub / "attention.py")
    # no __init__.py in the submission: it comes from exercises/
    results = run_course_tests("exercises/tests", "-m", "u04", "--target", str(tmp_path / "alice"))
    assert results and all(r["outcome"] == "passed" for r in results.values())


def test_a_submission_with_crlf_and_a_bom_runs(tmp_path):
    sub = tmp_path / "bob" / "scratchllm"
    sub.mkdir(parents=True)
    text = (ROOT / "solutions" / "scratchllm" / "attention.py").read_text(encoding="utf-8")
    (sub / "attention.py").write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"))
    results = run_course_tests("exercises/tests", "-m", "u04", "--target", str(sub))
    assert results and all(r["outcome"] == "passed" for r in results.values())


def test_the_default_target_is_exercises():
    results = run_course_tests("exercises/tests", "-m", "u04")
    assert results and all(r["exc_type"] == "NotImplementedError" for r in results.values())
