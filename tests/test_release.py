"""`llmfs release`: the student release works on its own and leaks nothing.

The release is built once per module, installed into a fresh virtual
environment (with the system's site-packages, so torch is not installed
again; offline, without build isolation), and its own `pytest` and
`llmfs check` run inside it: every course test must fail there with
NotImplementedError, none for a missing file or fixture. Planted leaks, in
temporary copies of the course, must be refused with the file named and
nothing written.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from grader.course import load_course
from grader.release import (
    ORACLE_PRAGMA,
    ReleaseError,
    check_out_folder,
    find_leaks,
    forbidden_builtins,
    is_trivial,
    oracle_leaks,
    oracle_suspects,
    plan_release,
    planned_unit_of,
    release,
)
from grader.todos import read_source, todo_functions

import course_copy
from kit import ROOT, llmfs

COURSE = load_course(ROOT / "course.toml")
READY = [u.id for u in COURSE.ready_units]
PKG = COURSE.package


def public_files_of(course, unit_id):
    return sorted(course.public_tests.glob(f"test_{unit_id}_*.py"))


def clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LLMFS_TARGET")}
    return {**env, "PYTHONIOENCODING": "utf-8", "OMP_NUM_THREADS": "1"}


# ---------------------------------------------------------------- the real release


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    folder = tmp_path_factory.mktemp("release") / "student"
    proc = llmfs("release", str(folder))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "leak check" in proc.stdout
    return folder


@pytest.fixture(scope="module")
def venv(out, tmp_path_factory):
    """A fresh environment with the release installed (editable), and its python."""
    env_dir = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(env_dir)],
                   check=True, capture_output=True)
    bindir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / ("python.exe" if os.name == "nt" else "python")
    # pip comes from the system site-packages; it installs into the venv it runs in.
    proc = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                           "--no-index", "--disable-pip-version-check", "-e", str(out)],
                          capture_output=True, text=True, env=clean_env(), timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return bindir


def in_release(venv, out, *args, timeout=900) -> subprocess.CompletedProcess:
    cmd = [str(venv / args[0]), *args[1:]]
    return subprocess.run(cmd, cwd=out, capture_output=True, text=True, encoding="utf-8",
                          env=clean_env(), timeout=timeout)


@pytest.fixture(scope="module")
def release_results(venv, out):
    """Every course test run inside the release, by the release's own grader."""
    proc = in_release(venv, out, "python", "-m", "grader.results", "exercises/tests")
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(proc.stdout)
    return data


def test_the_release_has_what_students_need(out):
    for name in ("README.md", "pyproject.toml", ".gitignore", "course.toml", "conftest.py",
                 "grader/cli.py", "grader/check.py", "grader/pytest_plugin.py", f"exercises/{PKG}/__init__.py"):
        assert (out / name).is_file(), f"{name} is missing from the release"
    for unit in COURSE.ready_units:
        for m in unit.modules:
            assert (out / "exercises" / PKG / f"{m}.py").is_file(), f"{unit.id}: {m}.py is missing"
        tests = public_files_of(COURSE, unit.id)
        assert tests, f"{unit.id} has no public tests"
        for t in tests:  # identical files, so the release collects the same tests as the course
            assert (out / "exercises" / "tests" / t.name).read_bytes() == t.read_bytes()
        readings = [p.name for p in (COURSE.exercises / "units").glob(f"{unit.id}_*")]
        for r in readings:
            assert (out / "exercises" / "units" / r / "README.md").is_file(), f"{unit.id}: reading {r} missing"
            for notebook in (f"{r}.ipynb", f"{r}.py"):  # the notebook ships, as Colab opens it
                assert (out / "exercises" / "units" / r / notebook).is_file(), f"{unit.id}: {notebook} missing"
    if (ROOT / "datasets").is_dir():
        assert (out / "datasets").is_dir()


def test_the_readme_is_written_for_students(out):
    text = (out / "README.md").read_text(encoding="utf-8")
    assert COURSE.name in text
    for uid in READY:
        assert f"| {uid} |" in text
    assert "llmfs check" in text and "pytest exercises/tests" in text
    assert "Do not publish your solutions" in text
    assert "$" not in text.replace("$ ", ""), "a template placeholder was left unfilled"


def test_the_pyproject_installs_the_grader_and_tests_the_exercises(out):
    import tomllib

    student = tomllib.loads((out / "pyproject.toml").read_text(encoding="utf-8"))
    kit = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert student["project"]["dependencies"] == kit["project"]["dependencies"]
    # The grader's packages (the CLI imports grader.export), never the hidden tests.
    packages = student["tool"]["setuptools"]["packages"]
    assert "grader" in packages and not any(p.startswith("grader.hidden") for p in packages)
    assert packages == kit["tool"]["setuptools"]["packages"]
    assert student["tool"]["pytest"]["ini_options"]["testpaths"] == ["exercises/tests"]
    assert student["project"]["scripts"]["llmfs"] == "grader.cli:main"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes().replace(b"\r\n", b"\n")).hexdigest()


def test_nothing_from_solutions_or_hidden_tests_is_in_the_release(out):
    files = [p for p in out.rglob("*") if p.is_file()]
    rel = [p.relative_to(out).as_posix() for p in files]
    assert not any(r.startswith(("solutions/", "grader/hidden/")) for r in rel)
    assert not any(r.endswith("_hidden.py") for r in rel)
    secret = {_digest(p): p for d in (ROOT / "solutions", ROOT / "grader" / "hidden")
              for p in d.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.read_bytes().strip()}
    copies = {p: secret[_digest(p)] for p in files if _digest(p) in secret}
    assert not copies, copies
    assert find_leaks(COURSE, out) == []


def test_the_stubs_in_the_release_still_have_their_todos(out):
    for unit in COURSE.ready_units:
        for m in unit.modules:
            if (ROOT / "solutions" / PKG / f"{m}.py").is_file():
                shipped = todo_functions(out / "exercises" / PKG / f"{m}.py")
                assert shipped and shipped == todo_functions(COURSE.exercises / PKG / f"{m}.py")


def test_planned_units_are_left_out(out):
    for f in COURSE.exercises.rglob("*"):
        rel = f.relative_to(ROOT).as_posix()
        if f.is_file() and planned_unit_of(COURSE, rel):
            assert not (out / rel).exists(), f"{rel} belongs to a planned unit but was released"


def test_the_installed_grader_is_the_releases(venv, out, tmp_path):
    proc = subprocess.run([str(venv / "python"), "-c", "import grader; print(grader.__file__)"],
                          cwd=tmp_path, capture_output=True, text=True, env=clean_env())
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()).resolve().is_relative_to(out.resolve()), proc.stdout


def test_every_course_test_fails_in_the_release_with_not_implemented(release_results):
    assert not release_results["collect_errors"], release_results["collect_errors"]
    results = release_results["results"]
    assert {r["unit"] for r in results} == set(READY)
    wrong = {r["nodeid"]: (r["outcome"], r["exc_type"], r["message"][:200]) for r in results
             if r["outcome"] != "failed" or r["exc_type"] != "NotImplementedError"}
    assert not wrong, wrong


def test_plain_pytest_in_the_release_collects_the_course_tests(venv, out, release_results):
    proc = in_release(venv, out, "python", "-m", "pytest", "-q", "-p", "no:randomly")
    summary = proc.stdout.strip().splitlines()[-1]
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"{len(release_results['results'])} failed" in summary and "error" not in summary, summary


def test_llmfs_check_in_the_release_reports_zero_for_every_unit(venv, out, release_results):
    proc = in_release(venv, out, "llmfs", "check")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    for uid in READY:
        n = sum(r["unit"] == uid for r in release_results["results"])
        assert any(line.split()[:2] == [uid, f"0/{n}"] for line in proc.stdout.splitlines()), proc.stdout
    assert "left TODO" in proc.stdout
    assert "error collecting" not in proc.stdout


def test_validate_refuses_to_run_in_a_release(venv, out):
    proc = in_release(venv, out, "llmfs", "validate")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "needs the reference" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_release_refuses_to_run_without_the_reference(out, tmp_path):
    with pytest.raises(ReleaseError, match="needs the reference"):
        release(load_course(out / "course.toml"), tmp_path / "again")
    assert not (tmp_path / "again").exists()


# ---------------------------------------------------------------- where it writes


def test_a_non_empty_folder_is_refused_and_force_replaces_it_keeping_git(tmp_path):
    target = tmp_path / "student"
    (target / ".git").mkdir(parents=True)
    (target / ".git" / "HEAD").write_text("ref: refs/heads/main\n", encoding="utf-8")
    (target / "old.txt").write_text("from last term\n", encoding="utf-8")
    with pytest.raises(ReleaseError, match="not empty"):
        release(COURSE, target)
    assert sorted(p.name for p in target.iterdir()) == [".git", "old.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["student"], "a half-built release was left behind"

    release(COURSE, target, force=True)
    assert not (target / "old.txt").exists()
    assert (target / ".git" / "HEAD").is_file() and (target / "course.toml").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["student"]


def test_the_release_may_not_go_inside_the_course_it_releases():
    # check_out_folder only decides; calling release() here could, if it were wrong, replace the course.
    for where in (ROOT, ROOT.parent, ROOT / "exercises" / "out", ROOT / "grader" / "dist", ROOT / "solutions"):
        with pytest.raises(ReleaseError):
            check_out_folder(COURSE, where.resolve(), force=True)


# ---------------------------------------------------------------- planted leaks


def copy_course(tmp_path: Path) -> Path:
    """A copy of the course, solutions and hidden tests included, with a hidden test of our own."""
    dest = course_copy.copy_course(tmp_path)
    (dest / "grader" / "hidden" / "test_u04_planted_hidden.py").write_text(
        '"""A hidden test of the copy."""\n\nimport pytest\n\npytestmark = pytest.mark.u04\n\n\n'
        'def causal_probe(pkg, T):\n    return pkg.attention.causal_mask(T)\n\n\n'
        'def test_causal_mask_matches_the_reference(student, reference):\n'
        '    assert student.run(causal_probe, 5).tolist() == reference.run(causal_probe, 5).tolist()\n',
        encoding="utf-8")
    return dest


def reference_function(course_dir: Path) -> tuple[str, str, str]:
    """(module, name, source) of the first top-level function of a ready unit's reference whose
    body is not trivial: the body a leak would copy."""
    course = load_course(course_dir / "course.toml")
    for unit in course.ready_units:
        for m in unit.modules:
            sol = course_dir / "solutions" / PKG / f"{m}.py"
            if not sol.is_file():
                continue
            text = read_source(sol)
            for node in ast.parse(text).body:
                if isinstance(node, ast.FunctionDef):
                    body = node.body[1:] if ast.get_docstring(node) is not None else node.body
                    if not is_trivial(body):
                        return m, node.name, ast.get_source_segment(text, node)
    pytest.skip("no ready unit has a reference function to plant")


def renamed(source: str, name: str, new_name: str) -> str:
    return source.replace(f"def {name}(", f"def {new_name}(", 1)


def plant_in_stub(course: Path, module: str, name: str, source: str) -> str:
    stub = course / "exercises" / PKG / f"{module}.py"
    text = read_source(stub)
    node = next(n for n in ast.parse(text).body if isinstance(n, ast.FunctionDef) and n.name == name)
    lines = text.splitlines(keepends=True)
    start = min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1
    stub.write_text("".join(lines[:start]) + source + "\n" + "".join(lines[node.end_lineno:]), encoding="utf-8")
    return f"exercises/{PKG}/{module}.py"


def plant_in_test_helper(course, module, name, source):
    test = sorted((course / "exercises" / "tests").glob("test_u04_*.py"))[0]
    with test.open("a", encoding="utf-8") as f:
        f.write("\n\n" + renamed(source, name, "my_helper") + "\n")
    return f"exercises/tests/{test.name}"


def plant_hidden_test(course, module, name, source):
    shutil.copy(course / "grader" / "hidden" / "test_u04_planted_hidden.py",
                course / "exercises" / "tests" / "test_u04_more.py")
    return "exercises/tests/test_u04_more.py"


def plant_solution_file(course, module, name, source):
    dest = course / "exercises" / "units" / "u04_attention" / "worked_answer.py"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes((course / "solutions" / PKG / f"{module}.py").read_bytes().replace(b"\n", b"\r\n"))
    return "exercises/units/u04_attention/worked_answer.py"


def plant_in_notebook(course, module, name, source):
    nb = {"cells": [{"cell_type": "markdown", "source": ["# Try it\n"]},
                    {"cell_type": "code", "source": ["%matplotlib inline\n", "import torch\n", "\n",
                                                     *renamed(source, name, "demo").splitlines(keepends=True)]}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    dest = course / "exercises" / "units" / "u04_attention" / "demo.ipynb"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    return "exercises/units/u04_attention/demo.ipynb"


def plant_in_reading(course, module, name, source):
    reading = course / "exercises" / "units" / "u04_attention" / "README.md"
    reading.parent.mkdir(parents=True, exist_ok=True)
    with reading.open("a", encoding="utf-8") as f:
        f.write("\n\nHere is one way to write it:\n\n```python\n" + source + "\n```\n")
    return "exercises/units/u04_attention/README.md"


def plant_in_grader(course, module, name, source):
    with (course / "grader" / "testing.py").open("a", encoding="utf-8") as f:
        f.write("\n\nclass _Helper:\n    " + renamed(source, name, "run").replace("\n", "\n    ") + "\n")
    return "grader/testing.py"


PLANTS = {
    "reference body in the stub": plant_in_stub,
    "reference body in a public test helper": plant_in_test_helper,
    "hidden test in the public tests": plant_hidden_test,
    "reference file in the readings (CRLF)": plant_solution_file,
    "reference body in a notebook": plant_in_notebook,
    "reference body in a reading's code block": plant_in_reading,
    "reference body as a method in the grader": plant_in_grader,
}


@pytest.mark.parametrize("plant", PLANTS.values(), ids=PLANTS.keys())
def test_a_planted_leak_is_refused_and_nothing_is_written(tmp_path, plant):
    course_dir = copy_course(tmp_path)
    module, name, source = reference_function(course_dir)
    where = plant(course_dir, module, name, source)
    out = tmp_path / "out" / "student"
    with pytest.raises(ReleaseError) as e:
        release(load_course(course_dir / "course.toml"), out)
    message = str(e.value)
    assert where in message, message
    assert not out.exists()
    assert list((tmp_path / "out").iterdir()) == [], "a half-built release was left behind"


def test_the_command_names_the_file_and_the_function_and_exits_1(tmp_path):
    course_dir = copy_course(tmp_path)
    module, name, source = reference_function(course_dir)
    where = plant_in_stub(course_dir, module, name, source)
    out = tmp_path / "student"
    proc = llmfs("--course", str(course_dir / "course.toml"), "release", str(out))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "refusing" in proc.stderr and where in proc.stderr and f"{module}.py" in proc.stderr
    assert f"the body of {name}()" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_a_clean_copy_of_the_course_releases(tmp_path):
    course_dir = copy_course(tmp_path)
    summary = release(load_course(course_dir / "course.toml"), tmp_path / "student")
    assert summary.protected_bodies > 0 and summary.files == len(plan_release(load_course(course_dir)))
    assert not (tmp_path / "student" / "grader" / "hidden").exists()


def test_given_code_passes_only_when_declared(tmp_path):
    course_dir = copy_course(tmp_path)
    helper = ('def describe(x):\n    """Given to students."""\n    shape = "x".join(str(n) for n in x.shape)\n'
              '    return f"{x.dtype} tensor of shape {shape}"\n')
    stub = course_dir / "exercises" / PKG / "attention.py"
    sol = course_dir / "solutions" / PKG / "attention.py"
    stub.write_text(read_source(stub) + "\n\n" + helper, encoding="utf-8")
    sol.write_text(read_source(sol) + "\n\n" + helper, encoding="utf-8")
    with pytest.raises(ReleaseError, match="describe"):
        release(load_course(course_dir / "course.toml"), tmp_path / "a")
    sol.write_text(read_source(sol).replace("def describe(x):", "def describe(x):  # llmfs: given"),
                   encoding="utf-8")
    summary = release(load_course(course_dir / "course.toml"), tmp_path / "b")
    assert any(g.endswith("describe") for g in summary.given)


@pytest.mark.parametrize("body, trivial", [
    ("pass", True),
    ('"""doc only"""', True),
    ("raise NotImplementedError('u04: softmax')", True),
    ("return x", True),
    ("super().__init__()", True),
    ("return self.weight * x + self.bias", False),
    ("return torch.tril(torch.ones(T, T, dtype=torch.bool))", False),
    ("B, T, _ = x.shape\nreturn x", False),
])
def test_the_triviality_threshold(body, trivial):
    assert is_trivial(ast.parse(body).body) == trivial


# ---------------------------------------------------------------- the oracle check

# What a leaked oracle looks like: an independent solution of a stub, in a public test file.
PLANTED_ORACLE = '''
def sinusoid_formula(T, dim):
    """PE[pos, 2i] = sin(pos / 10000^(2i/dim)), PE[pos, 2i+1] = cos(...)."""
    pe = torch.zeros(T, dim, dtype=torch.float64)
    pos = torch.arange(T, dtype=torch.float64)
    for i in range(dim // 2):
        angle = pos / 10000.0 ** (2 * i / dim)
        pe[:, 2 * i] = torch.sin(angle)
        pe[:, 2 * i + 1] = torch.cos(angle)
    return pe.float()
'''


def test_a_planted_oracle_in_a_public_test_is_refused(tmp_path):
    course_dir = copy_course(tmp_path)
    test = sorted((course_dir / "exercises" / "tests").glob("test_u03_*.py"))[0]
    text = read_source(test)
    test.write_text(text + "\n" + PLANTED_ORACLE, encoding="utf-8")
    line = len(text.splitlines()) + 3  # after a blank line and PLANTED_ORACLE's own first newline
    out = tmp_path / "out" / "student"
    proc = llmfs("--course", str(course_dir / "course.toml"), "release", str(out))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"exercises/tests/{test.name}:{line}" in proc.stderr and "sinusoid_formula()" in proc.stderr, proc.stderr
    assert "oracle check" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


def test_the_real_public_tests_pass_the_oracle_check(out):
    leaks, declared = oracle_leaks(COURSE, out)
    assert leaks == []
    assert all(f"{ORACLE_PRAGMA}" in read_source(out / d.split(":")[0]) for d in declared)


FORBIDDEN = forbidden_builtins(COURSE, "u05")


@pytest.mark.parametrize("source, refused", [
    (PLANTED_ORACLE, True),
    # a probe: it only calls into the student's package
    ("def p(pkg, x):\n" + "    y = pkg.layers.gelu(x)\n" * 8 + "    return y.exp().sqrt()\n", False),
    # a test function
    ("def test_x(student):\n" + "    y = torch.exp(torch.sin(torch.ones(3)))\n" * 8, False),
    # the oracle is a built-in that a unit forbids (resolved through the import alias)
    ("import torch.nn.functional as F\ndef oracle(x, w):\n    x = x.exp()\n    x = x.sin()\n    x = x.cos()\n"
     "    x = x.tanh()\n    return F.layer_norm(x, (3,), w)\n", False),
    # builds inputs: plain Python or drawing random numbers, below the plain limit
    ("def corpus(seed):\n    g = torch.Generator().manual_seed(seed)\n    x = torch.randn(3, generator=g)\n"
     "    y = torch.randint(0, 5, (3,), generator=g)\n    z = x * 2\n    w = z + y\n    return w\n", False),
    # scalar maths (math.sqrt) is not tensor maths
    ("def w(o, i, g):\n    a = 1\n    b = 2\n    c = 3\n    d = math.sqrt(i)\n"
     "    return torch.randn(o, i, generator=g) / d\n", False),
    # a RoPE in four lines of tensor maths is more than the tensor limit
    ("def rope(x, pos):\n    d = x.shape[-1]\n    z = torch.complex(x[..., 0::2], x[..., 1::2])\n"
     "    a = pos[..., None] * 10000 ** (-torch.arange(0, d, 2) / d)\n    z = z * torch.polar(torch.ones_like(a), a)\n"
     "    return torch.stack([z.real, z.imag], -1).flatten(-2)\n", True),
    # a plain-Python trainer (a BPE loop) is more than the plain limit
    ("def train(words, n):\n    merges = []\n" + "    merges.append(n)\n" * 12 + "    return merges\n", True),
    # declared, with a reason
    ("def big(x):  # " + ORACLE_PRAGMA + " (draws weights)\n" + "    x = x.exp()\n" * 9 + "    return x\n", False),
], ids=["sinusoid-oracle", "probe", "test", "forbidden-built-in", "input-builder", "scalar-math", "rope-oracle",
        "plain-trainer", "declared"])
def test_the_oracle_check(source, refused):
    found, declared = oracle_suspects("import math\nimport torch\n" + source, FORBIDDEN)
    assert bool(found) == refused, found
    assert bool(declared) == (ORACLE_PRAGMA in source)
