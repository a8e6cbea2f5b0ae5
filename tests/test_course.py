"""course.toml: the real one loads; broken ones give one clear line and exit 2."""

import shutil

import pytest

from grader.course import CourseError, load_course

from kit import ROOT, llmfs

GOOD_UNIT = '''
[[unit]]
id = "u04"
title = "Attention"
modules = ["attention"]
points = 10
'''


def make_course(tmp_path, body: str, newline: str = "\n"):
    (tmp_path / "exercises" / "scratchllm").mkdir(parents=True)
    (tmp_path / "exercises" / "scratchllm" / "__init__.py").write_text("", encoding="utf-8")
    (tmp_path / "exercises" / "scratchllm" / "attention.py").write_text("", encoding="utf-8")
    text = '[course]\nname = "x"\npackage = "scratchllm"\n' + body
    (tmp_path / "course.toml").write_bytes(text.replace("\n", newline).encode("utf-8"))
    return tmp_path / "course.toml"


def test_the_course_file_declares_all_nine_units():
    course = load_course(ROOT / "course.toml")
    assert [u.id for u in course.units] == [f"u0{i}" for i in range(1, 10)]
    u04 = course.unit("u04")
    assert u04.modules == ("attention",) and u04.ready
    assert "torch.nn.functional.scaled_dot_product_attention" in u04.forbid
    assert u04.limits.call_timeout_s == 10
    assert course.unit("u09").limits.call_timeout_s == 600  # a unit's override


def test_crlf_and_bom_are_accepted(tmp_path):
    path = make_course(tmp_path, GOOD_UNIT, newline="\r\n")
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert load_course(path).unit("u04").points == 10


@pytest.mark.parametrize("body, key, line", [
    (GOOD_UNIT + "colour = 'red'\n", "colour", 10),
    (GOOD_UNIT.replace('modules = ["attention"]', 'modules = ["atention"]'), "modules", 8),
    (GOOD_UNIT + GOOD_UNIT, "id", 12),
    (GOOD_UNIT.replace("points = 10", 'points = "ten"'), "points", 9),
    (GOOD_UNIT.replace('title = "Attention"\n', ""), "title", 5),
    (GOOD_UNIT + "[unit.limits]\ncall_timeout_s = -1\n", "call_timeout_s", 11),
    (GOOD_UNIT + "[unit.limits]\nwall = 3\n", "wall", 11),
    ("[defaults]\nmemory_mb = 'lots'\n" + GOOD_UNIT, "memory_mb", 5),
    (GOOD_UNIT.replace("points = 10", "points = "), None, 9),
], ids=["unknown-key", "missing-module", "duplicate-id", "wrong-type", "missing-key",
        "negative-limit", "unknown-limit", "wrong-default-type", "bad-toml"])
def test_a_broken_course_file_names_the_key_and_line(tmp_path, body, key, line):
    path = make_course(tmp_path, body)
    with pytest.raises(CourseError) as e:
        load_course(path)
    message = str(e.value)
    assert "\n" not in message
    assert f"course.toml:{line}:" in message, message
    if key:
        assert key in message, message


def test_the_cli_reports_a_broken_course_in_one_line_with_status_2(tmp_path):
    path = make_course(tmp_path, GOOD_UNIT + "colour = 'red'\n")
    proc = llmfs("--course", str(path), "check", "u04")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "colour" in proc.stderr and "course.toml:10" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_an_unknown_unit_is_a_one_line_error():
    proc = llmfs("check", "u42")
    assert proc.returncode == 2 and "no unit 'u42'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_planned_unit_may_name_modules_that_do_not_exist_yet(tmp_path):
    path = make_course(tmp_path, GOOD_UNIT + GOOD_UNIT.replace("u04", "u05").replace(
        '"attention"', '"layers"') + 'status = "planned"\n')
    course = load_course(path)
    assert not course.unit("u05").ready
    assert course.max_score == 10


def test_copies_of_the_course_load_from_their_own_folder(tmp_path):
    shutil.copy(ROOT / "course.toml", tmp_path / "course.toml")
    shutil.copytree(ROOT / "exercises" / "scratchllm", tmp_path / "exercises" / "scratchllm")
    assert load_course(tmp_path).root == tmp_path.resolve()
