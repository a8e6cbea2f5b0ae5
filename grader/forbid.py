"""Forbidden APIs: each unit's `forbid` list in course.toml, enforced twice.

Statically, in the judge: `scan` parses a submitted module (never imports it)
and finds uses of a forbidden dotted name through imports, aliases,
attribute chains, ``getattr(obj, "literal")`` and ``importlib.import_module``
/ ``__import__`` with literal names.

At run time, in the worker: `RuntimeGuards` replaces each forbidden function
or class with a guard that raises `ForbiddenAPIError` while a call for that
unit is running, so names built at run time are caught too.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Violation:
    api: str
    module: str
    line: int

    def __str__(self) -> str:
        return f"forbidden API {self.api} used in {self.module}.py line {self.line}"


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """The full dotted name an expression refers to, if it is a chain of names."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Call) and _import_call_name(node):
        base = _import_call_name(node)
    elif isinstance(node, ast.Name):
        base = aliases.get(node.id)
        if base is None:
            return None
    else:
        return None
    return ".".join([base, *reversed(parts)])


def _import_call_name(node: ast.Call) -> str | None:
    f = node.func
    is_import = (isinstance(f, ast.Name) and f.id == "__import__") or \
        (isinstance(f, ast.Attribute) and f.attr == "import_module")
    if is_import and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
        return node.args[0].value
    return None


def _hit(name: str, forbidden: tuple[str, ...]) -> str | None:
    for api in forbidden:
        if name == api or name.startswith(api + "."):
            return api
    return None


def scan(source: str, module: str, forbidden: tuple[str, ...] | list[str]) -> list[Violation]:
    """Uses of forbidden APIs in one module's source, in line order."""
    forbidden = tuple(forbidden)
    if not forbidden:
        return []
    tree = ast.parse(source)
    aliases: dict[str, str] = {}
    found: dict[tuple[str, int], Violation] = {}
    methods = {api.rsplit(".", 1)[1]: api for api in forbidden if api.startswith("torch.Tensor.")}

    def report(api: str, line: int) -> None:
        found.setdefault((api, line), Violation(api, module, line))

    # Pass 1: imports and assignments of imported modules bind names to dotted paths.
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    aliases[a.asname] = a.name
                else:
                    aliases[a.name.split(".")[0]] = a.name.split(".")[0]
                api = _hit(a.name, forbidden)
                if api:
                    report(api, node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            for a in node.names:  # the student's own modules: never forbidden
                aliases[a.asname or a.name] = "." * node.level + f"{node.module or ''}.{a.name}"
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                full = f"{node.module}.{a.name}"
                aliases[a.asname or a.name] = full
                api = _hit(full, forbidden)
                if api:
                    report(api, node.lineno)
        elif isinstance(node, ast.Assign) and isinstance(node.value, (ast.Call, ast.Attribute, ast.Name)):
            value = _dotted(node.value, aliases) if not isinstance(node.value, ast.Call) \
                else _import_call_name(node.value)
            if value:
                for t in node.targets:
                    if isinstance(t, ast.Name):
                        aliases[t.id] = value

    # Pass 2: every use.
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            name = _dotted(node, aliases)
            api = _hit(name, forbidden) if name else None
            if api:
                report(api, node.lineno)
            elif node.attr in methods and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")) \
                    and name is None:
                report(methods[node.attr], node.lineno)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in aliases:
            api = _hit(aliases[node.id], forbidden)
            if api:
                report(api, node.lineno)
        elif isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id == "getattr" and len(node.args) >= 2 \
                    and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str):
                base = _dotted(node.args[0], aliases)
                attr = node.args[1].value
                api = _hit(f"{base}.{attr}", forbidden) if base else methods.get(attr)
                if api:
                    report(api, node.lineno)
            name = _import_call_name(node)
            if name:
                api = _hit(name, forbidden)
                if api:
                    report(api, node.lineno)
    return sorted(found.values(), key=lambda v: (v.line, v.api))


# ------------------------------------------------------------------ run time


class ForbiddenAPIError(RuntimeError):
    pass


def _resolve(api: str):
    """(owner object, attribute name, current value) for a dotted name, or None."""
    parts = api.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for p in parts[i:-1]:
                obj = getattr(obj, p)
            return obj, parts[-1], getattr(obj, parts[-1])
        except AttributeError:
            return None
    return None


class RuntimeGuards:
    """Replaces forbidden callables with guards that raise while their unit runs."""

    def __init__(self, forbids: dict[str, list[str]]):
        self.forbids = {unit: set(apis) for unit, apis in forbids.items()}
        self.current: set[str] = set()
        self.unit: str | None = None
        for api in sorted({a for apis in forbids.values() for a in apis}):
            found = _resolve(api)
            if found is not None:
                owner, attr, value = found
                try:
                    setattr(owner, attr, self._guard(api, value))
                except (AttributeError, TypeError):
                    pass

    def _check(self, api: str) -> None:
        if api in self.current:
            raise ForbiddenAPIError(f"{api} is not allowed in unit {self.unit} (see course.toml); "
                                    f"write it yourself")

    def _guard(self, api: str, value):
        check = self._check
        if isinstance(value, type):
            original_init = value.__init__

            def __init__(self, *args, **kwargs):
                check(api)
                original_init(self, *args, **kwargs)

            try:  # a subclass keeps isinstance() and subclassing working
                return type(value.__name__, (value,), {"__init__": __init__, "__module__": value.__module__,
                                                       "__qualname__": value.__qualname__})
            except TypeError:  # a compiled class that cannot be subclassed: guard its construction
                pass

        @functools.wraps(value)
        def guard(*args, **kwargs):
            check(api)
            return value(*args, **kwargs)
        return guard

    @contextlib.contextmanager
    def active(self, unit: str):
        self.unit, self.current = unit, self.forbids.get(unit, set())
        try:
            yield
        finally:
            self.unit, self.current = None, set()
