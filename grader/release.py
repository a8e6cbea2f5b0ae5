"""`llmfs release OUT [--force]`: build the student distribution, leaking nothing.

The release holds what students need and nothing else:

- ``exercises/``: the stub package, the public tests and the readings, for
  the ready units (and every module, test helper or reading that belongs to
  no unit); the pieces of ``planned`` units are left out;
- ``datasets/``, ``course.toml``, ``conftest.py``;
- ``grader/`` without ``grader/hidden/``, so ``llmfs check`` works;
- a README for students (from ``grader/templates/student_README.md``), a
  pyproject.toml (the course's dependencies; only the ``grader`` package is
  installed; pytest's testpaths is ``exercises/tests``) and a .gitignore.

Before anything is written to OUT, the **leak check** compares the release
with the instructor's files:

1. paths: no file under ``solutions/`` or ``grader/hidden/``, and no file
   named like a hidden test (``*_hidden.py``);
2. content: no file whose content (UTF-8 BOM dropped, CRLF read as LF) is
   that of any file under ``solutions/`` or ``grader/hidden/``;
3. code: no function or method body of the reference. Every function in
   ``solutions/**/*.py`` whose body is not trivial is compared as an AST
   (``ast.dump`` without positions, docstring dropped) with the code of the
   release: every ``.py`` file, the code cells of every ``.ipynb`` and the
   fenced code blocks of every ``.md``. See `is_trivial` for the threshold.

4. oracles in public tests: the **oracle check** (`oracle_suspects`). A public
   test's judge is a torch built-in that some unit forbids, or expected
   values stored as data (`grader.snapshots`); never Python code that
   computes what a stub computes. So in every public test file
   (``exercises/tests/**/test_*.py``) a module-level function, or a method
   of a module-level class, that is not a test (``test_*``), not a probe
   (first parameter ``pkg``: it only calls into the student's package) and
   not a pytest fixture is refused when it is big enough to hold a
   solution: more than MAX_TENSOR_HELPER statements if it computes with
   torch, numpy or math, more than MAX_HELPER statements otherwise, and it
   names no built-in that a unit forbids (a dotted ``forbid`` entry of
   course.toml, resolved through the file's imports, e.g.
   ``F.scaled_dot_product_attention``). A helper that is big but no oracle
   (it builds inputs, draws weights, computes statistics) says so on its
   def line: ``# llmfs: not an oracle (why)``; the release lists them.
   It catches a reference re-implemented in a test helper (a BPE trainer,
   a sinusoid table, a RoPE, a functional GPT); it does not see oracle
   code written inline in a test function body, nor a small formula.

A leak refuses the release and names the file (and the function). The
release is built in a temporary folder beside OUT and moved into place only
once it passed, so a refused or failed release leaves OUT as it was.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import shutil
import string
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .course import Course, load_course, unit_of_test_file

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

TEMPLATES = Path(__file__).resolve().parent / "templates"
SKIP_NAMES = {"__pycache__", ".ipynb_checkpoints", ".pytest_cache", ".hypothesis", ".mypy_cache",
              ".ruff_cache", ".DS_Store", ".git"}
SKIP_SUFFIXES = (".pyc", ".pyo")
GIVEN_PRAGMA = "llmfs: given"
ORACLE_PRAGMA = "llmfs: not an oracle"
# The oracle check: a helper of a public test may hold at most this many
# statements (nested ones included, docstring not) unless it names a
# built-in some unit forbids or carries ORACLE_PRAGMA.
MAX_TENSOR_HELPER = 4   # helpers that do tensor maths (NUMERIC_OPS or the @ operator)
MAX_HELPER = 12         # other helpers (building inputs, drawing weights, plumbing)
# Functions and methods whose use makes a helper "do maths": what the stubs compute is made of
# them. Drawing random numbers, building, indexing and comparing tensors is not on the list.
NUMERIC_OPS = frozenset("""
    sin cos tan tanh exp expm1 log log1p log2 sqrt rsqrt erf sigmoid softmax log_softmax logsumexp
    polar complex view_as_complex view_as_real outer matmul mm bmm einsum linear
    var std cumsum cumprod
""".split())
# A one-statement body with fewer AST nodes than this (not counting Load/Store
# contexts) is trivial: `return x`, `super().__init__()`, `return self.w * x`.
MIN_NODES = 10
GITIGNORE = """\
# Python
__pycache__/
*.py[cod]
*.egg-info/
build/
dist/
# environments and tools
.venv/
venv/
.pytest_cache/
.hypothesis/
.ipynb_checkpoints/
# data downloaded or generated while you work
/data/
*.pt
*.ckpt
"""


class ReleaseError(Exception):
    """The release cannot be built; the message says why and what to do."""


# ---------------------------------------------------------------- what goes in


def _walk(folder: Path):
    """Files under `folder`, in a stable order, skipping caches and VCS folders."""
    if not folder.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_NAMES)
        for name in sorted(filenames):
            if name not in SKIP_NAMES and not name.endswith(SKIP_SUFFIXES):
                yield Path(dirpath) / name


def planned_unit_of(course: Course, rel: str) -> str | None:
    """The planned unit that an exercises/ path belongs to, if any."""
    planned = {u.id for u in course.units if not u.ready}
    parts = rel.split("/")
    if len(parts) == 3 and parts[:2] == ["exercises", course.package] and parts[2].endswith(".py"):
        owner = course.unit_of_module(parts[2][:-3])
        return owner.id if owner and owner.id in planned else None
    if len(parts) >= 3 and parts[:2] == ["exercises", "tests"]:
        unit = unit_of_test_file(parts[-1])
        return unit if unit in planned else None
    if len(parts) >= 3 and parts[:2] == ["exercises", "units"]:
        m = re.match(r"(u\d\d)(_|$)", parts[2])
        return m.group(1) if m and m.group(1) in planned else None
    return None


def plan_release(course: Course) -> dict[str, Path | bytes]:
    """{path in the release: the file to copy, or the bytes to write}."""
    root = course.root
    plan: dict[str, Path | bytes] = {}
    for top in ("exercises", "datasets", "grader"):
        for f in _walk(root / top):
            rel = f.relative_to(root).as_posix()
            if rel.startswith("grader/hidden/") or rel.startswith("grader/templates/"):
                continue
            if top == "exercises" and planned_unit_of(course, rel):
                continue
            plan[rel] = f
    for name in ("course.toml", "conftest.py"):
        if (root / name).is_file():
            plan[name] = root / name
    for f in sorted(root.glob("LICENSE*")):
        if f.is_file():
            plan[f.name] = f
    plan["README.md"] = student_readme(course).encode("utf-8")
    plan["pyproject.toml"] = student_pyproject(course).encode("utf-8")
    plan[".gitignore"] = GITIGNORE.encode("utf-8")
    return plan


def student_readme(course: Course) -> str:
    template = string.Template((TEMPLATES / "student_README.md").read_text(encoding="utf-8"))
    rows = []
    for u in course.ready_units:
        readings = sorted(p for p in (course.exercises / "units").glob(f"{u.id}_*") if p.is_dir())
        reading = f"`exercises/units/{readings[0].name}/`" if readings else "-"
        modules = ", ".join(f"`{m}.py`" for m in u.modules) or "(assembly)"
        rows.append(f"| {u.id} | {u.title}: {modules} | {u.points:g} | {reading} |")
    forbidden = [f"- **{u.id}**: " + ", ".join(f"`{api}`" for api in u.forbid)
                 for u in course.ready_units if u.forbid]
    forbidden_text = ("Each unit asks you to write things that libraries already provide, so some\n"
                      "library functions are off limits there (the grader checks):\n\n"
                      + "\n".join(forbidden)) if forbidden else ""
    return template.substitute(course_name=course.name, package=course.package,
                               units_table="\n".join(rows) or "| - | (no unit is ready yet) | | |",
                               forbidden=forbidden_text)


def _toml_value(value) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise ReleaseError(f"pyproject.toml: cannot write the value {value!r}")


def student_pyproject(course: Course) -> str:
    """The course's pyproject.toml, cut down to what a student installs."""
    path = course.root / "pyproject.toml"
    if not path.is_file():
        raise ReleaseError(f"{path} is missing: the release takes its dependencies from it")
    data = tomllib.loads(path.read_bytes().decode("utf-8-sig"))
    project = data.get("project", {})
    packages = [p for p in data.get("tool", {}).get("setuptools", {}).get("packages", ["grader"])
                if not (p == "grader.hidden" or p.startswith("grader.hidden."))] or ["grader"]
    lines = ["[build-system]", 'requires = ["setuptools>=64"]', 'build-backend = "setuptools.build_meta"', "",
             "[project]",
             f"name = {_toml_value(project.get('name', 'course') + '-student')}",
             f"version = {_toml_value(project.get('version', '0.1.0'))}",
             f"description = {_toml_value('Student release of ' + course.name)}",
             'readme = "README.md"']
    for key in ("requires-python", "license"):
        if key in project:
            lines.append(f"{key} = {_toml_value(project[key])}")
    lines.append("dependencies = [")
    lines += [f"    {_toml_value(d)}," for d in project.get("dependencies", [])]
    lines.append("]")
    extras = project.get("optional-dependencies", {})
    if extras:
        lines += ["", "[project.optional-dependencies]"]
        lines += [f"{_toml_value(k)} = {_toml_value(v)}" for k, v in extras.items()]
    lines += ["", "[project.scripts]"]
    scripts = project.get("scripts", {"llmfs": "grader.cli:main"})
    lines += [f"{_toml_value(k)} = {_toml_value(v)}" for k, v in scripts.items()]
    lines += ["", "[tool.setuptools]", "# Only the grader is installed; your package is found by the tests",
              "# in exercises/ (see `llmfs check --help`).",
              f"packages = {_toml_value(packages)}", "",
              "[tool.pytest.ini_options]", 'testpaths = ["exercises/tests"]',
              'addopts = "-p no:cacheprovider"', ""]
    return "\n".join(lines)


# ---------------------------------------------------------------- the leak check


@dataclass(frozen=True)
class Leak:
    path: str  # in the release
    what: str

    def __str__(self) -> str:
        return f"{self.path}: {self.what}"


def _normalized(data: bytes) -> bytes:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return data.replace(b"\r\n", b"\n")


def _digest(data: bytes) -> str | None:
    data = _normalized(data)
    return hashlib.sha256(data).hexdigest() if data.strip() else None  # empty files prove nothing


def _dump(node: ast.AST) -> str:
    return ast.dump(node, annotate_fields=True, include_attributes=False)


def _strip_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        return body[1:]
    return body


def _is_placeholder(stmt: ast.stmt) -> bool:
    if isinstance(stmt, ast.Pass):
        return True
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):  # `...` or a string
        return True
    if isinstance(stmt, ast.Raise) and stmt.exc is not None:
        exc = stmt.exc.func if isinstance(stmt.exc, ast.Call) else stmt.exc
        return isinstance(exc, ast.Name) and exc.id == "NotImplementedError"
    return False


def node_count(stmts: list[ast.stmt]) -> int:
    """AST nodes in `stmts`, not counting Load/Store/Del contexts."""
    return sum(1 for s in stmts for n in ast.walk(s) if not isinstance(n, ast.expr_context))


def is_trivial(body: list[ast.stmt]) -> bool:
    """Whether a function body (docstring already dropped) is too small to count as a leak.

    Trivial: empty; only `pass`, `...`, strings or `raise NotImplementedError`;
    or a single statement of fewer than MIN_NODES AST nodes (`return x`,
    `super().__init__()`). Two statements or more are never trivial.
    """
    if all(_is_placeholder(s) for s in body):
        return True
    return len(body) == 1 and node_count(body) < MIN_NODES


def _functions(tree: ast.AST, prefix: str = ""):
    """(qualified name, node) for every function and method, nested ones too."""
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield prefix + child.name, child
            yield from _functions(child, prefix + child.name + ".")
        elif isinstance(child, ast.ClassDef):
            yield from _functions(child, prefix + child.name + ".")
        else:
            yield from _functions(child, prefix)


def _declared_given(fn: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str]) -> bool:
    """`# llmfs: given` on the def line (or its decorators or signature lines)."""
    return _declared(fn, lines, GIVEN_PRAGMA)


@dataclass
class Protected:
    """What the release must not contain."""

    digests: dict[str, str] = field(default_factory=dict)  # sha256 -> instructor file
    bodies: dict[tuple[str, ...], str] = field(default_factory=dict)  # statement dumps -> "file:line name"
    given: list[str] = field(default_factory=list)  # bodies let through by `# llmfs: given`

    @property
    def first_statements(self) -> dict[str, list[tuple[str, ...]]]:
        index: dict[str, list[tuple[str, ...]]] = {}
        for key in self.bodies:
            index.setdefault(key[0], []).append(key)
        return index


def protected_files(course: Course) -> list[Path]:
    return [*_walk(course.solutions), *_walk(course.hidden_tests)]


def collect_protected(course: Course) -> Protected:
    prot = Protected()
    root = course.root
    for f in protected_files(course):
        digest = _digest(f.read_bytes())
        if digest:
            prot.digests.setdefault(digest, f.relative_to(root).as_posix())
    for f in _walk(course.solutions):
        if f.suffix != ".py":
            continue
        text = _normalized(f.read_bytes()).decode("utf-8")
        rel = f.relative_to(root).as_posix()
        try:
            tree = ast.parse(text, filename=rel)
        except SyntaxError as e:
            raise ReleaseError(f"{rel}:{e.lineno}: cannot parse the reference, so cannot check "
                               f"the release for leaks: {e.msg}") from None
        lines = text.splitlines()
        for qualname, fn in _functions(tree):
            body = _strip_docstring(fn.body)
            if is_trivial(body):
                continue
            where = f"{rel}:{fn.lineno} {qualname}"
            if _declared_given(fn, lines):
                prot.given.append(where)
                continue
            prot.bodies.setdefault(tuple(_dump(s) for s in body), where)
    return prot


def _code_blocks(path: Path, data: bytes) -> list[tuple[str, int]]:
    """(Python source, first line) of the code in a release file."""
    text = _normalized(data).decode("utf-8", "replace")
    if path.suffix == ".py":
        return [(text, 1)]
    if path.suffix == ".ipynb":
        try:
            cells = json.loads(text).get("cells", [])
        except (ValueError, AttributeError):
            return []
        out = []
        for i, cell in enumerate(cells):
            if isinstance(cell, dict) and cell.get("cell_type") == "code":
                src = cell.get("source", "")
                src = "".join(src) if isinstance(src, list) else str(src)
                # IPython magics and shell escapes are not Python; blank them out.
                src = "\n".join("" if ln.lstrip().startswith(("%", "!")) else ln for ln in src.splitlines())
                out.append((src, i + 1))
        return out
    if path.suffix in (".md", ".markdown", ".rst", ".txt"):
        blocks = []
        for m in re.finditer(r"^([ \t]*)(```|~~~)[^\n]*\n(.*?)^\1\2[ \t]*$", text, re.M | re.S):
            src = "\n".join(ln[len(m.group(1)):] if ln.startswith(m.group(1)) else ln
                            for ln in m.group(3).splitlines())
            blocks.append((src, text.count("\n", 0, m.start()) + 2))
        return blocks
    return []


def _statement_lists(tree: ast.AST):
    """Every list of statements in `tree`, with the function it belongs to (or None)."""
    def visit(node, owner):
        for name in ("body", "orelse", "finalbody", "handlers"):
            value = getattr(node, name, None)
            if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
                yield value, owner
        for child in ast.iter_child_nodes(node):
            yield from visit(child, child if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else owner)

    yield from visit(tree, None)


def find_leaks(course: Course, release: Path, prot: Protected | None = None) -> list[Leak]:
    """Everything in the folder `release` that comes from solutions/ or grader/hidden/."""
    prot = prot or collect_protected(course)
    index = prot.first_statements
    leaks: list[Leak] = []
    for f in _walk(release):
        rel = f.relative_to(release).as_posix()
        if rel.startswith(("solutions/", "grader/hidden/")):
            leaks.append(Leak(rel, "is under solutions/ or grader/hidden/"))
            continue
        if re.search(r"_hidden\.py$", f.name):
            leaks.append(Leak(rel, "is named like a hidden test (*_hidden.py)"))
        data = f.read_bytes()
        source = prot.digests.get(_digest(data) or "")
        if source:
            leaks.append(Leak(rel, f"is a copy of {source}"))
            continue
        for src, first_line in _code_blocks(f, data):
            try:
                tree = ast.parse(src)
            except SyntaxError as e:
                if f.suffix == ".py":
                    leaks.append(Leak(rel, f"line {e.lineno}: cannot parse ({e.msg}), so cannot check it"))
                continue
            leaks += _body_leaks(rel, tree, first_line, prot, index)
    return leaks


def _body_leaks(rel: str, tree: ast.AST, first_line: int, prot: Protected, index) -> list[Leak]:
    found = []
    for stmts, owner in _statement_lists(tree):
        fn_body = owner is not None and stmts is owner.body
        if fn_body:
            stmts = _strip_docstring(stmts)
        dumps = [_dump(s) for s in stmts]
        for i, d in enumerate(dumps):
            for key in index.get(d, ()):
                whole = fn_body and i == 0 and len(key) == len(dumps)
                # A one-statement reference body counts only as a whole function
                # body; longer ones also count inside other code.
                if tuple(dumps[i:i + len(key)]) == key and (whole or len(key) > 1):
                    line = stmts[i].lineno + first_line - 1
                    name = f"the body of {owner.name}()" if whole else "code"
                    found.append(Leak(f"{rel}:{line}", f"{name} is the reference's {prot.bodies[key]}"))
    return found


def forbidden_builtins(course: Course, unit_id: str | None = None) -> set[str]:
    """Built-ins a public test of `unit_id` may use as its oracle: the dotted forbid entries of
    every unit (APIs that would do some unit's work), and every forbid entry of its own unit
    (a whole package, such as torch for the numpy-only u01)."""
    apis = {api for u in course.units for api in u.forbid if "." in api}
    own = [u for u in course.units if u.id == unit_id]
    return apis | {api for u in own for api in u.forbid}


def _aliases(tree: ast.AST) -> dict[str, str]:
    """{name bound by an import anywhere in `tree`: the dotted name it stands for}."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                names[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                names[a.asname or a.name] = f"{node.module}.{a.name}"
    return names


def _dotted_uses(fn: ast.AST, aliases: dict[str, str]) -> set[str]:
    """Dotted names that `fn` uses, with import aliases resolved (`F.gelu` -> torch.nn.functional.gelu)."""
    local = {**aliases, **_aliases(fn)}
    found = set()
    for node in ast.walk(fn):
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name) and node.id in local:
            found.add(".".join([local[node.id], *reversed(parts)]))
    return found


def _does_maths(fn: ast.AST) -> bool:
    """Whether `fn` calls one of NUMERIC_OPS (as torch.sin, np.exp, x.sqrt(), ...) or uses `@`."""
    for node in ast.walk(fn):
        if isinstance(node, (ast.BinOp, ast.AugAssign)) and isinstance(node.op, ast.MatMult):
            return True
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "math":
                continue  # scalar maths on numbers (math.sqrt(fan_in)), not tensor maths
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
            if name in NUMERIC_OPS:
                return True
    return False


def _is_fixture(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any("fixture" in _dump(d) for d in fn.decorator_list)


def _declared(fn: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str], pragma: str) -> bool:
    """`# <pragma>` on the def line (or its decorators or signature lines)."""
    first = min([fn.lineno, *(d.lineno for d in fn.decorator_list)])
    last = max(fn.lineno, fn.body[0].lineno - 1)
    return any(pragma in line for line in lines[first - 1:last])


def _helpers(tree: ast.Module):
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    yield f"{node.name}.{item.name}", item


def oracle_suspects(source: str, forbidden: set[str]) -> tuple[list[tuple[int, str, str]], list[tuple[int, str]]]:
    """The oracle check on one public test file.

    Returns ([(line, function, why)] refused, [(line, function)] let through by ORACLE_PRAGMA).
    """
    tree = ast.parse(source)
    lines = source.splitlines()
    aliases = _aliases(tree)
    refused, declared = [], []
    for name, fn in _helpers(tree):
        params = [a.arg for a in fn.args.posonlyargs + fn.args.args]
        if fn.name.startswith("test_") or params[:1] == ["pkg"] or _is_fixture(fn):
            continue
        uses = _dotted_uses(fn, aliases)
        if any(u == api or u.startswith(api + ".") for u in uses for api in forbidden):
            continue  # its judge is a built-in some unit forbids
        n = sum(isinstance(x, ast.stmt) for s in _strip_docstring(fn.body) for x in ast.walk(s))
        numeric = _does_maths(fn)
        limit = MAX_TENSOR_HELPER if numeric else MAX_HELPER
        if n <= limit:
            continue
        if _declared(fn, lines, ORACLE_PRAGMA):
            declared.append((fn.lineno, name))
            continue
        refused.append((fn.lineno, name,
                        f"{name}() has {n} statements{' doing tensor maths' if numeric else ''} "
                        f"(at most {limit} allowed) and uses no built-in that a unit forbids: a public test must "
                        f"not compute what a stub computes. Store the expected values as data "
                        f"(python -m grader.snapshots) or compare with a forbidden built-in; if it is no "
                        f"oracle, say why on its def line: '# {ORACLE_PRAGMA} (why)'"))
    return refused, declared


def is_public_test(rel: str) -> bool:
    parts = rel.split("/")
    return parts[:2] == ["exercises", "tests"] and parts[-1].startswith("test_") and parts[-1].endswith(".py")


def oracle_leaks(course: Course, release: Path) -> tuple[list[Leak], list[str]]:
    """The oracle check on every public test file in `release`: (leaks, helpers declared not oracles)."""
    leaks, declared = [], []
    for f in _walk(release / "exercises" / "tests"):
        rel = f.relative_to(release).as_posix()
        if not is_public_test(rel):
            continue
        forbidden = forbidden_builtins(course, unit_of_test_file(f.name))
        try:
            refused, ok = oracle_suspects(_normalized(f.read_bytes()).decode("utf-8"), forbidden)
        except (SyntaxError, UnicodeDecodeError):
            continue  # find_leaks reports files it cannot parse
        leaks += [Leak(f"{rel}:{line}", why) for line, _, why in refused]
        declared += [f"{rel}:{line} {name}" for line, name in ok]
    return leaks, declared


# ---------------------------------------------------------------- building


@dataclass
class Summary:
    out: Path
    files: int
    units: list[str]
    protected_files: int
    protected_bodies: int
    given: list[str]
    not_oracles: list[str] = field(default_factory=list)


def check_out_folder(course: Course, out: Path, force: bool) -> None:
    """Raise ReleaseError if the release may not be written to `out` (it writes nothing)."""
    root = course.root.resolve()
    if out == root or out in root.parents:
        raise ReleaseError(f"{out} holds the course itself; choose another folder for the release")
    for top in ("exercises", "solutions", "grader", "datasets"):
        if out == root / top or (root / top) in out.parents:
            raise ReleaseError(f"{out} is inside the course's {top}/; choose a folder outside it")
    if out == Path.home().resolve():
        raise ReleaseError(f"{out} is your home folder; choose a folder for the release")
    if out.exists() and not out.is_dir():
        raise ReleaseError(f"{out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ReleaseError(f"{out} is not empty; choose an empty folder, or pass --force to replace "
                           f"what is there (a .git folder in it is kept)")


def build(course: Course, folder: Path, plan: dict[str, Path | bytes]) -> None:
    for rel, src in plan.items():
        dest = folder / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(src, bytes):
            dest.write_bytes(src)
        else:
            shutil.copyfile(src, dest)


def release(course: Course, out: Path | str, force: bool = False) -> Summary:
    """Build the student release in `out`; raise ReleaseError (writing nothing) on a leak."""
    out = Path(out).expanduser().resolve()
    if not (course.solutions / course.package).is_dir():
        raise ReleaseError(f"the leak check needs the reference in {course.solutions / course.package}; "
                           f"build the release from the instructor's course")
    check_out_folder(course, out, force)
    plan = plan_release(course)
    prot = collect_protected(course)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".building", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the release is an ordinary folder
    try:
        build(course, tmp, plan)
        leaks = find_leaks(course, tmp, prot)
        oracles, not_oracles = oracle_leaks(course, tmp)
        if oracles:
            raise ReleaseError("refusing to release: a public test defines an oracle (the oracle check)\n"
                               + "\n".join(f"  {leak}" for leak in oracles)
                               + f"\nnothing was written to {out}.")
        if leaks:
            raise ReleaseError("refusing to release: it would leak the reference or hidden tests\n"
                               + "\n".join(f"  {leak}" for leak in leaks)
                               + f"\nnothing was written to {out}. If a function is meant to be given to "
                                 f"students as it is, mark its def line in solutions/ with "
                                 f"'# {GIVEN_PRAGMA}'.")
        load_course(tmp / "course.toml")  # the release's course must load on its own
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Summary(out, len(plan), [u.id for u in course.ready_units], len(prot.digests), len(prot.bodies),
                   prot.given, not_oracles)


def _move_into_place(tmp: Path, out: Path) -> None:
    if not out.exists():
        os.rename(tmp, out)
        return
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
        os.rename(tmp, out)
        return
    if (out / ".git").exists():
        os.rename(out / ".git", tmp / ".git")
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    old.rmdir()
    os.rename(out, old)
    os.rename(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------- the command


def register(sub) -> None:
    p = sub.add_parser("release", help="build the student distribution in OUT (checked for leaks)",
                       description="Build the student distribution in OUT: exercises (stubs, public tests, "
                                   "readings), datasets, the grader without its hidden tests, course.toml, "
                                   "a README for students, a pyproject.toml and a .gitignore. Refuses, "
                                   "writing nothing, if the release would hold a file from solutions/ or "
                                   "grader/hidden/ or the body of a reference function.")
    p.add_argument("out", metavar="OUT", help="the folder to write (must be empty or absent)")
    p.add_argument("--force", action="store_true",
                   help="replace what is in OUT (its .git folder, if any, is kept)")
    p.set_defaults(func=_main)


def _main(args) -> int:
    from .cli import course_from

    course = course_from(args)
    try:
        s = release(course, args.out, force=args.force)
    except ReleaseError as e:
        print(f"llmfs release: {e}", file=sys.stderr)
        return 1
    print(f"wrote the student release to {s.out}: {s.files} files, units {', '.join(s.units) or '(none)'}")
    print(f"leak check: no file from solutions/ or grader/hidden/ ({s.protected_files} compared by content) "
          f"and none of the reference's {s.protected_bodies} function bodies")
    for where in s.given:
        print(f"  given to students as it is ({GIVEN_PRAGMA}): {where}")
    print("oracle check: no public test helper computes what a stub computes")
    for where in s.not_oracles:
        print(f"  declared not an oracle ({ORACLE_PRAGMA}): {where}")
    return 0
