"""Reading course.toml into typed objects.

The course file is the single source of truth for units, their modules,
points, limits and forbidden APIs. `load_course` checks it strictly: an
unknown key, a missing key, a wrong type, a duplicate unit id or a module
that does not exist raises `CourseError`, whose message names the key and
the line it is on. The CLI turns that into one line on stderr and exit 2.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Mapping

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]


COURSE_FILE = "course.toml"
UNIT_ID = re.compile(r"^u\d\d$")
TEST_FILE = re.compile(r"^test_(u\d\d)_")  # a course test file (or its data), and the unit it belongs to
MODULE_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
STATUSES = ("ready", "planned")
DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
GITHUB_REPO = re.compile(r"^https://github\.com/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
OPERATOR = re.compile(r"^[a-z_][a-z0-9_]*::[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)?\*?$")


class CourseError(Exception):
    """A problem with course.toml, phrased for the person who edits it."""


@dataclass(frozen=True)
class Limits:
    """Resource limits for student code under `llmfs grade`."""

    call_timeout_s: float = 10.0
    cpu_s: int = 300
    memory_mb: int = 4096
    processes: int = 32
    file_size_mb: int = 64
    output_kb: int = 64
    reply_mb: int = 32
    submission_timeout_s: float = 900.0


@dataclass(frozen=True)
class Unit:
    id: str
    title: str
    modules: tuple[str, ...]
    points: float
    limits: Limits
    forbid: tuple[str, ...] = ()
    status: str = "ready"
    forbid_ops: tuple[str, ...] = ()   # dispatcher operators ("aten::_softmax", "aten::_foreach_*")
    imports: tuple[str, ...] = ()      # modules this unit may import beyond [imports] allow
    depends: tuple[str, ...] = ()      # units whose code this unit's tests run (u05 runs u04's attention)

    @property
    def ready(self) -> bool:
        return self.status == "ready"


@dataclass(frozen=True)
class Imports:
    """What a student module may import ([imports] in course.toml)."""

    allow: tuple[str, ...] = ()   # modules, with their public submodules and names
    deny: tuple[str, ...] = ()    # names under allowed modules that are still off limits


@dataclass(frozen=True)
class Course:
    name: str
    package: str
    root: Path
    defaults: Limits
    units: tuple[Unit, ...] = field(default_factory=tuple)
    imports: Imports = field(default_factory=Imports)
    file: Path | None = None  # the course.toml this was read from
    repository: str = ""      # "https://github.com/OWNER/REPO": where notebooks clone the kit from
    branch: str = "main"      # the branch their "Open in Colab" links point at

    @property
    def path(self) -> Path:
        """The course file: the one `--course` named, else root/course.toml."""
        return self.file or self.root / COURSE_FILE

    def unit(self, unit_id: str) -> Unit:
        for u in self.units:
            if u.id == unit_id:
                return u
        known = ", ".join(u.id for u in self.units)
        raise CourseError(f"no unit {unit_id!r} in {COURSE_FILE} (units: {known})")

    @property
    def ready_units(self) -> tuple[Unit, ...]:
        return tuple(u for u in self.units if u.ready)

    @property
    def max_score(self) -> float:
        return float(sum(u.points for u in self.ready_units))

    # Where things live, by the layout in DESIGN.md.
    @property
    def exercises(self) -> Path:
        return self.root / "exercises"

    @property
    def solutions(self) -> Path:
        return self.root / "solutions"

    @property
    def public_tests(self) -> Path:
        return self.exercises / "tests"

    @property
    def hidden_tests(self) -> Path:
        return self.root / "grader" / "hidden"

    @functools.cached_property
    def seed_secret(self) -> bytes:
        """The key for the seeds of probe calls: a digest of the hidden tests.
        It never enters the worker, does not change between regrades, and is
        empty in a student release (which has no hidden tests)."""
        digest = hashlib.sha256()
        for f in sorted(self.hidden_tests.glob("*.py")):
            digest.update(f.name.encode("utf-8") + b"\0" + f.read_bytes())
        return digest.digest() if any(self.hidden_tests.glob("*.py")) else b""

    def test_files(self, unit_id: str, hidden: bool = False) -> list[Path]:
        """A unit's public (or hidden) test files: test_<unit>_*.py, the one naming rule."""
        folder = self.hidden_tests if hidden else self.public_tests
        return sorted(folder.glob(f"test_{unit_id}_*.py"))

    def dependencies(self, unit_id: str) -> list[str]:
        """The units `unit_id` depends on, directly or through others, earliest first."""
        found: set[str] = set()
        todo = list(self.unit(unit_id).depends)
        while todo:
            uid = todo.pop()
            if uid not in found:
                found.add(uid)
                todo += self.unit(uid).depends
        return sorted(found)

    def unit_of_module(self, module: str) -> Unit | None:
        for u in self.units:
            if module in u.modules:
                return u
        return None


# ---------------------------------------------------------------- locating


class _Locator:
    """Finds the line a key sits on, so errors can point at it.

    tomllib gives no positions, so we scan the text: table headers start a
    section, and `key =` lines inside a section are its keys.
    """

    def __init__(self, text: str):
        self.sections: list[tuple[str, int, dict[str, int]]] = []
        current: dict[str, int] = {}
        self.sections.append(("", 1, current))
        for lineno, line in enumerate(text.splitlines(), start=1):
            s = line.strip()
            m = re.match(r"^\[\[?\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]?", s)
            if m and not re.match(r"^\[\s*[\"'0-9\-+]", s):
                current = {}
                self.sections.append((m.group(1).replace(" ", ""), lineno, current))
                continue
            m = re.match(r"^([A-Za-z0-9_\-]+)\s*=", s)
            if m:
                current.setdefault(m.group(1), lineno)

    def line(self, section: str, index: int | None = None, key: str | None = None) -> int | None:
        matches = [s for s in self.sections if s[0] == section]
        if index is not None:
            matches = matches[index : index + 1]
        if not matches:
            return None
        _, header_line, keys = matches[0]
        if key is None:
            return header_line
        return keys.get(key, header_line)

    def unit_sub(self, index: int, sub: str) -> tuple[str, int, dict[str, int]] | None:
        """The n-th [unit.<sub>] table that belongs to the index-th [[unit]]."""
        unit_lines = [s[1] for s in self.sections if s[0] == "unit"]
        if index >= len(unit_lines):
            return None
        start = unit_lines[index]
        end = unit_lines[index + 1] if index + 1 < len(unit_lines) else 10**9
        for s in self.sections:
            if s[0] == f"unit.{sub}" and start < s[1] < end:
                return s
        return None


# ---------------------------------------------------------------- checking


def _type_name(t) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false",
            list: "a list", dict: "a table"}.get(t, t.__name__)


class _Checker:
    def __init__(self, path: Path, loc: _Locator):
        self.path = path
        self.loc = loc

    def fail(self, key: str, line: int | None, problem: str) -> CourseError:
        where = f"{self.path.name}:{line}" if line else self.path.name
        return CourseError(f"{where}: {key}: {problem}")

    def table(self, data: dict, name: str, allowed: Mapping[str, type | tuple], required: set[str],
              line_of) -> dict:
        for key in data:
            if key not in allowed:
                known = ", ".join(sorted(allowed))
                raise self.fail(f"{name}.{key}" if name else key, line_of(key),
                                f"unknown key (expected one of: {known})")
        for key in sorted(required):
            if key not in data:
                raise self.fail(f"{name}.{key}", line_of(None), "missing required key")
        for key, value in data.items():
            want = allowed[key]
            if not _is_type(value, want):
                names = " or ".join(_type_name(t) for t in (want if isinstance(want, tuple) else (want,)))
                raise self.fail(f"{name}.{key}", line_of(key), f"must be {names}, got {value!r}")
        return data


def _is_type(value, want) -> bool:
    wants = want if isinstance(want, tuple) else (want,)
    for w in wants:
        if w is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if w is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if w not in (int, float) and isinstance(value, w):
            return True
    return False


_LIMIT_TYPES = {f.name: (float if f.type in ("float", float) else int) for f in fields(Limits)}


def _limits(checker: _Checker, data: dict, name: str, base: Limits, line_of) -> Limits:
    checker.table(data, name, _LIMIT_TYPES, set(), line_of)
    for key, value in data.items():
        if value <= 0:
            raise checker.fail(f"{name}.{key}", line_of(key), f"must be positive, got {value!r}")
    return replace(base, **{k: _LIMIT_TYPES[k](v) for k, v in data.items()})  # type: ignore[arg-type]


def parse_course(text: str, path: Path, check_modules: bool = True) -> Course:
    """Parse and check the text of a course file; `path` names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        where = f"{path.name}:{m.group(1)}" if m else path.name
        raise CourseError(f"{where}: not valid TOML: {str(e).split(' (at')[0]}") from None

    loc = _Locator(text)
    chk = _Checker(path, loc)
    chk.table(data, "", {"course": dict, "defaults": dict, "imports": dict, "unit": list}, {"course", "unit"},
              lambda k: loc.line(k) if k else 1)

    course = chk.table(data["course"], "course", {"name": str, "package": str, "repository": str, "branch": str},
                       {"name", "package"}, lambda k: loc.line("course", key=k))
    repository = course.get("repository", "").rstrip("/")
    if repository and not GITHUB_REPO.match(repository):
        raise chk.fail("course.repository", loc.line("course", key="repository"),
                       f"{repository!r} is not a GitHub repository address like https://github.com/OWNER/REPO "
                       "(Colab opens notebooks only from GitHub)")
    defaults = _limits(chk, data.get("defaults", {}), "defaults", Limits(),
                       lambda k: loc.line("defaults", key=k))

    raw_imports = chk.table(data.get("imports", {}), "imports", {"allow": list, "deny": list}, set(),
                            lambda k: loc.line("imports", key=k))
    for key in ("allow", "deny"):
        _dotted_names(chk, raw_imports.get(key, []), f"imports.{key}", loc.line("imports", key=key))
    imports = Imports(allow=tuple(raw_imports.get("allow", ())), deny=tuple(raw_imports.get("deny", ())))

    root = path.parent
    units: list[Unit] = []
    seen: dict[str, int] = {}
    unit_keys = {"id": str, "title": str, "modules": list, "points": float, "forbid": list,
                 "forbid_ops": list, "imports": list, "limits": dict, "status": str, "depends": list}
    for i, raw in enumerate(data["unit"]):
        def line_of(k, i=i):
            return loc.line("unit", index=i, key=k)

        if not isinstance(raw, dict):
            raise chk.fail(f"unit[{i}]", line_of(None), "must be a [[unit]] table")
        chk.table(raw, f"unit[{i}]", unit_keys, {"id", "title", "modules", "points"}, line_of)
        uid = raw["id"]
        label = f"unit {uid!r}"
        if not UNIT_ID.match(uid):
            raise chk.fail(f"{label}.id", line_of("id"), "must look like u01, u02, ...")
        if uid in seen:
            raise chk.fail(f"{label}.id", line_of("id"),
                           f"duplicate unit id (first defined on line {seen[uid]})")
        seen[uid] = line_of("id")
        if raw["points"] < 0:
            raise chk.fail(f"{label}.points", line_of("points"), "must not be negative")
        status = raw.get("status", "ready")
        if status not in STATUSES:
            raise chk.fail(f"{label}.status", line_of("status"),
                           f"must be one of {', '.join(STATUSES)}, got {status!r}")
        for key in ("modules", "forbid", "forbid_ops", "imports", "depends"):
            for item in raw.get(key, []):
                if not isinstance(item, str):
                    raise chk.fail(f"{label}.{key}", line_of(key), f"must be a list of strings, got {item!r}")
        for mod in raw["modules"]:
            if not MODULE_NAME.match(mod):
                raise chk.fail(f"{label}.modules", line_of("modules"), f"{mod!r} is not a module name")
            if check_modules and status == "ready":
                stub = root / "exercises" / course["package"] / f"{mod}.py"
                if not stub.is_file():
                    raise chk.fail(f"{label}.modules", line_of("modules"),
                                   f"module {mod!r} not found (expected {stub.relative_to(root).as_posix()})")
        for api in raw.get("forbid", []):
            if not DOTTED.match(api):
                raise chk.fail(f"{label}.forbid", line_of("forbid"),
                               f"{api!r} is not a module or dotted name like torch.nn.functional.softmax")
        for op in raw.get("forbid_ops", []):
            if not OPERATOR.match(op):
                raise chk.fail(f"{label}.forbid_ops", line_of("forbid_ops"),
                               f"{op!r} is not an operator name like aten::_softmax (a trailing * matches "
                               f"every operator that starts so)")
        _dotted_names(chk, raw.get("imports", []), f"{label}.imports", line_of("imports"))
        sub = loc.unit_sub(i, "limits")
        limits = _limits(chk, raw.get("limits", {}), f"{label}.limits", defaults,
                         lambda k, sub=sub: (sub[2].get(k, sub[1]) if sub else line_of("limits")))
        units.append(Unit(id=uid, title=raw["title"], modules=tuple(raw["modules"]),
                          points=float(raw["points"]), limits=limits,
                          forbid=tuple(raw.get("forbid", ())), status=status,
                          forbid_ops=tuple(raw.get("forbid_ops", ())), imports=tuple(raw.get("imports", ())),
                          depends=tuple(raw.get("depends", ()))))

    ids = [u.id for u in units]
    for i, u in enumerate(units):
        for dep in u.depends:
            if dep not in ids[:i]:
                why = "no such unit" if dep not in ids else "a unit may depend only on units listed before it"
                raise chk.fail(f"unit {u.id!r}.depends", loc.line("unit", index=i, key="depends"), f"{dep!r}: {why}")
    owners: dict[str, str] = {}
    for u in units:
        for mod in u.modules:
            if mod in owners:
                raise chk.fail(f"unit {u.id!r}.modules", loc.line("unit", index=units.index(u), key="modules"),
                               f"module {mod!r} already belongs to unit {owners[mod]!r}")
            owners[mod] = u.id
    return Course(name=course["name"], package=course["package"], root=root,
                  defaults=defaults, units=tuple(units), file=path, imports=imports,
                  repository=repository, branch=course.get("branch", "main"))


def unit_of_test_file(name: str) -> str | None:
    """'test_u04_attention.py' (or its data, 'test_u04_attention.npz') -> 'u04'; None otherwise."""
    m = TEST_FILE.match(name)
    return m.group(1) if m else None


def _dotted_names(chk: _Checker, names: list, key: str, line: int | None) -> None:
    for name in names:
        if not isinstance(name, str) or not DOTTED.match(name):
            raise chk.fail(key, line, f"{name!r} is not a module or dotted name like torch.nn.functional")


def load_course(path: str | Path | None = None, check_modules: bool = True) -> Course:
    """Load course.toml from `path`, or find it from the current directory."""
    path = Path(path) if path is not None else find_course_file()
    if path.is_dir():
        path = path / COURSE_FILE
    if not path.is_file():
        raise CourseError(f"{path}: no such file")
    text = path.read_bytes().decode("utf-8-sig")
    return parse_course(text, path.resolve(), check_modules=check_modules)


def find_course_file(start: Path | None = None) -> Path:
    """The nearest course.toml at or above `start` (default: the working
    directory), else the one beside the installed grader package."""
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / COURSE_FILE).is_file():
            return d / COURSE_FILE
    beside = Path(__file__).resolve().parent.parent / COURSE_FILE
    if beside.is_file():
        return beside
    raise CourseError(f"no {COURSE_FILE} found in {here} or above; run inside the course folder or pass --course")
