"""`llmfs validate`: its checks pass on the course and fail, clearly, on broken copies of it.

The full `llmfs validate` (every ready unit, public and hidden tests, on the
reference and on the stubs) is slow and runs in CI on its own (.ci/run);
here the static checks run on the real course and the whole command on a
copy of the course with planted mistakes.
"""

from __future__ import annotations

import textwrap

import pytest

from grader.course import load_course
from grader.validate import (
    UnitCheck,
    check_course_files,
    check_modules,
    check_scans,
    hidden_test_files,
    public_test_files,
    scan_test_file,
    unit_of_file,
)

from course_copy import copy_course
from kit import ROOT, llmfs

COURSE = load_course(ROOT / "course.toml")


def test_the_static_checks_pass_on_every_ready_unit():
    problems = check_course_files(COURSE)
    for unit in COURSE.ready_units:
        c = UnitCheck(unit)
        check_modules(COURSE, c)
        check_scans(COURSE, c, [f for f in public_test_files(COURSE) if unit_of_file(f) == unit.id],
                    [f for f in hidden_test_files(COURSE) if unit_of_file(f) == unit.id])
        problems += c.problems
    assert not problems, problems


# ---------------------------------------------------------------- scanning test files

REFERENCE_LEAKS = {
    "import": "from solutions.scratchllm.attention import softmax",
    "import-module": "import scratchllm_reference.attention as ref",
    "importlib": "import importlib\nref = importlib.import_module('solutions.scratchllm.attention')",
    "dunder-import": "ref = __import__('scratchllm_reference')",
    "open": "SOURCE = open('solutions/scratchllm/attention.py', encoding='utf-8').read()",
    "path": "from pathlib import Path\nSOURCE = Path(__file__).parents[2] / 'solutions' / 'scratchllm'",
    "sys-path": "import sys\nsys.path.insert(0, '../..')",
    "sys-modules": "import sys\nREF = sys.modules.get('x')",
    "student-import": "from scratchllm import attention",
    "loads-a-target": "from grader.targets import load_package",
}


@pytest.mark.parametrize("code", REFERENCE_LEAKS.values(), ids=REFERENCE_LEAKS.keys())
def test_the_scan_finds_each_way_around_the_fixtures(tmp_path, code):
    f = tmp_path / "test_u04_x_hidden.py"
    f.write_text(code + "\n\n\ndef test_x(student, reference):\n    pass\n", encoding="utf-8")
    found = scan_test_file(f, public=False)
    assert found, code
    assert all(line >= 1 for line, _ in found)


def test_the_scan_accepts_a_hidden_test_that_uses_the_fixtures(tmp_path):
    f = tmp_path / "test_u04_x_hidden.py"
    f.write_text(textwrap.dedent('''
        """Compared with the reference solutions/ through the fixture only."""
        import torch

        def probe(pkg, x):
            return pkg.attention.softmax(x)

        def test_x(student, reference, rng):
            x = torch.randn(3, generator=rng)
            assert torch.equal(student.run(probe, x), reference.run(probe, x))
    '''), encoding="utf-8")
    assert scan_test_file(f, public=False) == []
    assert scan_test_file(f, public=True) != [], "a public test must not use the reference fixture"


def test_public_tests_may_not_use_the_reference(tmp_path):
    f = tmp_path / "test_u04_x.py"
    f.write_text("import pytest\n\n@pytest.mark.usefixtures('reference')\ndef test_a(student):\n    pass\n"
                 "\ndef test_b(request):\n    request.getfixturevalue('reference')\n", encoding="utf-8")
    assert [line for line, _ in scan_test_file(f, public=True)] == [3, 8]


# ---------------------------------------------------------------- a broken copy


LEAKY_HIDDEN = '''\
import pytest

from solutions.scratchllm.attention import causal_mask

pytestmark = pytest.mark.u04


def mask_probe(pkg, T):
    return pkg.attention.causal_mask(T)


def test_causal_mask_hidden(student):
    assert student.run(mask_probe, 4).tolist() == causal_mask(4).tolist()
'''

CANNOT_FAIL = '''\
import pytest

pytestmark = pytest.mark.u04


def heads_probe(pkg):
    return 4


def test_heads_cannot_fail(student):
    assert student.run(heads_probe) == 4


def test_wrong_fixture(student, no_such_fixture):
    pass
'''


def test_validate_fails_clearly_on_a_broken_course(tmp_path):
    course = copy_course(tmp_path)
    for folder in (course / "exercises" / "tests", course / "grader" / "hidden"):
        for f in folder.glob("test_u04_*.py"):
            f.unlink()  # only the planted tests run: a fast run with a known table row
    (course / "grader" / "hidden" / "test_u04_leaky_hidden.py").write_text(LEAKY_HIDDEN, encoding="utf-8")
    (course / "exercises" / "tests" / "test_u04_extra.py").write_text(CANNOT_FAIL, encoding="utf-8")
    proc = llmfs("--course", str(course / "course.toml"), "validate", "--unit", "u04", "--no-progress")
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert "grader/hidden/test_u04_leaky_hidden.py:3: imports the reference (solutions.scratchllm.attention)" \
           " directly; use the `reference` fixture" in out, out
    assert "public test passes on the stubs, so it cannot fail: " \
           "exercises/tests/test_u04_extra.py::test_heads_cannot_fail" in out, out
    assert "errors on the reference: exercises/tests/test_u04_extra.py::test_wrong_fixture" in out, out
    assert "fails on the stubs with a setup/fixture error, not NotImplementedError: " \
           "exercises/tests/test_u04_extra.py::test_wrong_fixture" in out, out
    row = next(line for line in out.splitlines() if line.startswith("u04 "))
    assert row.split()[1:5] == ["2", "1", "2/3", "1/3"] and row.endswith("[FAIL]"), row
    assert "Traceback" not in out + proc.stderr


def test_a_unit_whose_reference_is_missing_is_reported(tmp_path):
    course = copy_course(tmp_path)
    module = COURSE.unit("u04").modules[0]
    (course / "solutions" / COURSE.package / f"{module}.py").unlink()
    c = UnitCheck(load_course(course / "course.toml").unit("u04"))
    check_modules(load_course(course / "course.toml"), c)
    assert any(f"solutions/{COURSE.package}/{module}.py is missing" in p for p in c.problems), c.problems
