"""What a student module may use, checked in two layers.

A list of forbidden names cannot be complete: torch reaches the same kernel
through private aliases (``torch._softmax``), the dispatcher
(``torch.ops.aten._softmax``) and public neighbours
(``x.log_softmax(-1).exp()``). So:

1. **Statically** (`unit_problems`, run by the judge and by ``llmfs check``),
   on the bytes exactly as Python will decode them. A student module

   - is UTF-8: a coding declaration other than utf-8 is refused, and so is
     any byte that is not UTF-8;
   - imports only what course.toml allows (``[imports] allow``, the unit's
     ``imports``, and the course's own package), never an ``[imports] deny``
     entry; names are resolved to the objects they are, so ``torch.os`` is the
     module ``os`` and ``torch.nn.modules.activation.MultiheadAttention`` is
     ``torch.nn.MultiheadAttention``;
   - touches no private name (``_x``) of anything it did not define (allowed:
     ``self._x`` / ``cls._x`` in a method of a class, and ``Name._x`` for a
     class defined at the top of the module, for a private name the module
     itself defines), no dunder attribute but ``__init__``, ``__name__``,
     ``__doc__``, ``__qualname__``, and no frame, code or generator internals;
   - uses no dynamic access: ``eval``, ``exec``, ``compile``, ``__import__``,
     ``globals``, ``locals``, ``vars``, ``breakpoint``, ``getattr`` /
     ``setattr`` / ``delattr`` / ``hasattr`` with a computed name, ``from x
     import *``, unpickling (``allow_pickle``/``weights_only`` not literally
     safe), nor defines ``__torch_dispatch__`` / ``__torch_function__``;
   - uses none of its unit's ``forbid`` APIs, under any name that resolves
     to them.

2. **At run time** (`OperatorCheck`): each probe call runs under a torch
   dispatch mode that fails the call when one of the unit's ``forbid_ops``
   operators runs, whatever Python name reached it. Backward passes started
   inside the call are covered too (on CPU the autograd engine runs them on
   the calling thread). Layer 1 keeps student code from reaching the mode to
   switch it off: the mode lives in private torch modules, frames are out of
   reach, and no thread or process can be started.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import functools
import importlib
import io
import re
import tokenize
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Callable

# ------------------------------------------------------------------ the rules

DUNDER_ATTRIBUTES = frozenset({"__init__", "__name__", "__doc__", "__qualname__"})
DUNDER_NAMES = frozenset({"__name__", "__file__", "__doc__", "__all__", "__slots__"})
DISPATCH_HOOKS = frozenset({"__torch_dispatch__", "__torch_function__"})
DYNAMIC = {
    "eval": "runs code built from a string",
    "exec": "runs code built from a string",
    "compile": "builds code from a string",
    "__import__": "imports a module by a computed name",
    "globals": "hands out a namespace",
    "locals": "hands out a namespace",
    "vars": "hands out a namespace",
    "breakpoint": "starts a debugger",
}
ATTRIBUTE_BUILTINS = frozenset({"getattr", "setattr", "delattr", "hasattr"})
FRAME_ATTRIBUTES = frozenset({
    "gi_frame", "gi_code", "gi_yieldfrom", "cr_frame", "cr_code", "cr_await", "ag_frame", "ag_code", "ag_await",
    "f_back", "f_globals", "f_locals", "f_builtins", "f_code", "f_trace", "tb_frame", "tb_next",
    "co_code", "co_consts", "co_names",
})
SAFE_LITERALS = {"allow_pickle": False, "weights_only": True}  # keyword -> the only value allowed
_DANGEROUS = {id(getattr(builtins, n)): n for n in (*DYNAMIC, *ATTRIBUTE_BUILTINS)}
MAX_DEPTH_MESSAGE = "nested too deeply for the checker to read; split long expressions into steps"


@dataclass(frozen=True)
class Violation:
    file: str   # as the student knows it: scratchllm/attention.py
    line: int   # 0 when the problem is the whole file
    text: str
    api: str | None = None  # the forbidden API used, when there is one

    def __str__(self) -> str:
        where = f"{self.file} line {self.line}" if self.line else self.file
        return f"{where}: {self.text}"


@dataclass
class Rules:
    """Everything the scan of one module needs to know."""

    package: str                                      # the course's package: scratchllm
    unit: str = ""                                    # u04, for messages
    allow: tuple[str, ...] = ()                       # importable modules (and what is under them)
    deny: tuple[str, ...] = ()                        # off limits even under an allowed module
    forbid: tuple[str, ...] = ()                      # the unit's forbidden public APIs
    student_modules: frozenset[str] = frozenset()     # package modules students write
    exports: dict[str, dict[str, str]] = field(default_factory=dict)  # module -> name -> what it imported


def _private(name: str) -> bool:
    return name.startswith("_") and not _dunder(name)


def _dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def _within(path: str, entries) -> str | None:
    for e in entries:
        if path == e or path.startswith(e + "."):
            return e
    return None


def _hit(name: str, forbidden) -> str | None:
    return _within(name, forbidden)


# ------------------------------------------------------------------ resolving names to objects

_MISSING = object()


@functools.lru_cache(maxsize=8192)
def _walk(path: str) -> tuple:
    """(prefix, object) for each step of a dotted name that resolves, importing
    modules as Python would. Called only on names that passed the name checks."""
    parts = path.split(".")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = importlib.import_module(parts[0])
    except Exception:
        return ()
    steps = [(parts[0], obj)]
    for i in range(1, len(parts)):
        prefix = ".".join(parts[: i + 1])
        try:
            nxt = getattr(obj, parts[i])
        except Exception:
            nxt = _MISSING
        if nxt is _MISSING and isinstance(obj, ModuleType):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    nxt = importlib.import_module(prefix)
            except Exception:
                nxt = _MISSING
        if nxt is _MISSING:
            break
        steps.append((prefix, nxt))
        obj = nxt
    return tuple(steps)


def _resolved(path: str):
    steps = _walk(path)
    return steps[-1][1] if steps and steps[-1][0] == path else _MISSING


# ------------------------------------------------------------------ reading the bytes


def _decode(data: bytes, file: str) -> tuple[str | None, list[Violation]]:
    """The text Python will run, or why the file is refused."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = 1 + data[: e.start].count(b"\n")
        return None, [Violation(file, line, f"is not UTF-8 text (byte {e.start}); save the file as UTF-8")]
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as e:
        return None, [Violation(file, 0, f"has a coding line Python refuses ({e.msg}); save the file as UTF-8 "
                                         f"and delete the coding line")]
    if encoding not in ("utf-8", "utf-8-sig"):
        line = 1 + data[: data.find(b"coding")].count(b"\n") if b"coding" in data else 1
        return None, [Violation(file, line, f"declares the encoding {encoding}; course files are UTF-8: "
                                            f"save the file as UTF-8 and delete that coding line")]
    return text, []


def _parse(data: bytes, file: str) -> tuple[ast.Module | None, list[Violation]]:
    try:
        return ast.parse(data, filename=file), []
    except SyntaxError:
        return None, []  # the worker reports it as an import error, with the line
    except ValueError:
        return None, [Violation(file, 0, "contains a NUL byte; save the file as UTF-8 text")]
    except (RecursionError, MemoryError):
        return None, [Violation(file, 0, MAX_DEPTH_MESSAGE)]


def _module_level(tree: ast.Module):
    """Statements that run at module level (not inside functions or classes)."""
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            todo.extend(c for c in ast.iter_child_nodes(node) if isinstance(c, ast.stmt))


def _import_targets(node: ast.stmt, package: str) -> list[tuple[str, str]]:
    """(bound name, absolute dotted path) for an import statement; relative
    imports resolve inside `package` (every course module sits at its top)."""
    out = []
    if isinstance(node, ast.Import):
        for a in node.names:
            if a.asname:
                out.append((a.asname, a.name))
            else:
                top = a.name.split(".")[0]
                out.append((top, top))
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            base = package + (f".{base}" if base else "")
        for a in node.names:
            if a.name != "*":
                out.append((a.asname or a.name, f"{base}.{a.name}"))
    return out


def package_exports(package: str, files: dict[str, Path]) -> dict[str, dict[str, str]]:
    """For each module of the package, the names it binds by importing, so
    `from .data import sys` is seen for what it is."""
    exports: dict[str, dict[str, str]] = {}
    for module, path in files.items():
        try:
            tree = ast.parse(path.read_bytes())
        except (SyntaxError, ValueError, RecursionError, MemoryError, OSError):
            continue
        exports[module] = {name: target for node in _module_level(tree)
                           for name, target in _import_targets(node, package)}
    return exports


# ------------------------------------------------------------------ the scan


class _Scan:
    def __init__(self, tree: ast.Module, rules: Rules, file: str):
        self.tree, self.rules, self.file = tree, rules, file
        self.found: dict[tuple[int, str], Violation] = {}
        self.parent: dict[int, ast.AST] = {}
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                self.parent[id(child)] = node
        self.aliases: dict[str, str] = {}
        self.own_names = self._own_names()
        self.own_access = self._own_private_access()
        self.methods = {api.rsplit(".", 1)[1]: api for api in rules.forbid if api.startswith("torch.Tensor.")}
        self.forbid_ids = {}
        for api in rules.forbid:
            obj = _resolved(api) if _within(api, rules.allow) else _MISSING
            if obj is not _MISSING and not isinstance(obj, ModuleType):
                self.forbid_ids[id(obj)] = api
        self.deny_ids = {}
        for name in rules.deny:
            obj = _resolved(name)
            if obj is not _MISSING and not isinstance(obj, ModuleType):
                self.deny_ids[id(obj)] = name
        self.allowed_modules = {id(o): e for e in rules.allow for o in [_resolved(e)] if isinstance(o, ModuleType)}

    # -- reporting
    def report(self, node: ast.AST | int, text: str, api: str | None = None) -> None:
        line = node if isinstance(node, int) else getattr(node, "lineno", 0)
        self.found.setdefault((line, text), Violation(self.file, line, text, api))

    # -- what the module defines itself
    def _own_names(self) -> set[str]:
        definitions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
        defined = {n.name for n in self.tree.body if isinstance(n, definitions)}
        bound: dict[str, int] = {}
        for node in ast.walk(self.tree):
            names = []
            if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
                names = [node.id]
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names = [node.name]
            elif isinstance(node, ast.arg):
                names = [node.arg]
            elif isinstance(node, (ast.Global, ast.Nonlocal)):
                names = list(node.names)
            elif isinstance(node, ast.alias):
                names = [node.asname or node.name.split(".")[0]]
            for n in names:
                bound[n] = bound.get(n, 0) + 1
        return {n for n in defined if bound.get(n) == 1}

    def _own_private_access(self) -> set[int]:
        """Attribute nodes `self._x` / `cls._x` in methods where that first
        argument is never rebound, for a private name `_x` this module
        defines itself (assigns on self/cls, or binds in a class body)."""
        defined: set[str] = set()
        methods = []
        for cls in ast.walk(self.tree):
            if not isinstance(cls, ast.ClassDef):
                continue
            for stmt in cls.body:
                for node in ast.walk(stmt) if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) else [stmt]:
                    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                        defined.add(node.id)
                if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    defined.add(stmt.name)
                if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    methods.append(stmt)
        ok: set[int] = set()
        firsts = []
        for fn in methods:
            positional = fn.args.posonlyargs + fn.args.args
            if not positional or len(fn.args.defaults) >= len(positional):
                continue
            first = positional[0].arg
            clean, accesses = True, []
            for node in ast.walk(fn):
                if isinstance(node, ast.Name) and node.id == first and not isinstance(node.ctx, ast.Load):
                    clean = False
                elif isinstance(node, ast.arg) and node.arg == first and node is not positional[0]:
                    clean = False
                elif isinstance(node, (ast.Global, ast.Nonlocal)) and first in node.names:
                    clean = False
                elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == first:
                    accesses.append(node)
                    if isinstance(node.ctx, ast.Store) and _private(node.attr):
                        defined.add(node.attr)
            if clean:
                firsts.append(accesses)
        for accesses in firsts:
            ok.update(id(a) for a in accesses if a.attr in defined)
        self.defined_private = defined
        return ok

    # -- names to dotted paths
    def chain(self, node: ast.AST) -> str | None:
        """The dotted path an expression names, if it is a chain rooted at an import."""
        parts = []
        while True:
            if isinstance(node, ast.Attribute):
                parts.append(node.attr)
                node = node.value
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr" \
                    and len(node.args) == 2 and not node.keywords and _literal_name(node):
                parts.append(_literal(node.args[1]))
                node = node.args[0]
            else:
                break
        if not isinstance(node, ast.Name) or node.id not in self.aliases:
            return None
        return ".".join([self.aliases[node.id], *reversed(parts)])

    def collect_aliases(self) -> None:
        for _ in range(2):  # twice, so an alias of an alias defined later is found
            for node in ast.walk(self.tree):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    for name, target in _import_targets(node, self.rules.package):
                        self.aliases[name] = target
                elif isinstance(node, ast.Assign) and isinstance(node.value, (ast.Attribute, ast.Name)):
                    value = self.chain(node.value)
                    if value:
                        for t in node.targets:
                            if isinstance(t, ast.Name):
                                self.aliases[t.id] = value

    def show(self, node: ast.AST) -> str:
        text = self.chain(node) if isinstance(node, (ast.Attribute, ast.Name)) else None
        if text is None:
            parts = []
            while isinstance(node, ast.Attribute):
                parts.append(node.attr)
                node = node.value
            base = node.id if isinstance(node, ast.Name) else "(...)"
            text = ".".join([base, *reversed(parts)])
        return text if len(text) <= 80 else text[:77] + "..."

    # -- checking a dotted path
    def check_path(self, node: ast.AST, path: str, final: bool = True, depth: int = 0) -> None:
        r = self.rules
        parts = path.split(".")
        for i, p in enumerate(parts):
            if _dunder(p):  # dunder attributes are judged where they are used
                parts, final = parts[:i], False
                break
        if not parts:
            return
        path = ".".join(parts)
        if parts[0] == r.package:
            self.check_own(node, parts, final, depth)
            return
        api = _hit(path, r.forbid)
        if api:
            self.forbidden(node, path, api)
            return
        denied = _within(path, r.deny)
        if denied:
            self.report(node, f"{path} is off limits in course code ({denied} can run code the grader cannot "
                              f"check)")
            return
        for i, p in enumerate(parts[1:], 1):
            if _private(p):
                owner = ".".join(parts[:i])
                self.report(node, f"{'.'.join(parts[:i + 1])} is a private name of {owner}; "
                                  f"course code may use only public names")
                return
        if not _within(path, r.allow):
            if not any(e.startswith(path + ".") for e in r.allow):
                under = [e for e in r.allow if e.startswith(parts[0] + ".")]
                self.report(node, f"{path} is not among the imports the course allows" +
                            (f" (from {parts[0]} only {', '.join(under)})" if under else "") +
                            "; see [imports] in course.toml")
                return
            if final:
                allowed = ", ".join(e for e in r.allow if e.startswith(path + "."))
                self.report(node, f"{path} may be used only as {allowed}")
                return
        for prefix, obj in _walk(path):
            if isinstance(obj, ModuleType):
                real = obj.__name__
                inside = _within(real, r.allow) or id(obj) in self.allowed_modules
                on_the_way = (prefix != path or not final) and any(e.startswith(prefix + ".") for e in r.allow)
                if not inside and not on_the_way:
                    self.report(node, f"{prefix} is the module {real}, which the course does not allow")
                    return
                if _within(real, r.deny):
                    self.report(node, f"{prefix} is the module {real}, which is off limits in course code")
                    return
            elif id(obj) in self.forbid_ids:
                self.forbidden(node, prefix, self.forbid_ids[id(obj)])
                return
            elif id(obj) in self.deny_ids:
                self.report(node, f"{prefix} is {self.deny_ids[id(obj)]}, which is off limits in course code")
                return
            elif id(obj) in _DANGEROUS:
                name = _DANGEROUS[id(obj)]
                self.report(node, f"{prefix} is the built-in {name}, which is not allowed in course code")
                return

    def check_own(self, node: ast.AST, parts: list[str], final: bool, depth: int) -> None:
        """A path into the course's own package: follow what its modules import."""
        r = self.rules
        if len(parts) < 2:
            return
        module, rest = parts[1], parts[2:]
        if _private(module) or _dunder(module):
            self.report(node, f"{'.'.join(parts[:2])} is a private name of {r.package}")
            return
        if module not in r.exports:
            init = r.exports.get("__init__", {})
            if module in init and depth < 8:
                self.check_path(node, ".".join([init[module], *rest]), final, depth + 1)
            return
        if not rest:
            return
        name = rest[0]
        imported = r.exports[module].get(name)
        if imported is not None and depth < 8:
            self.check_path(node, ".".join([imported, *rest[1:]]), final, depth + 1)
        elif _private(name) and module not in r.student_modules:
            self.report(node, f"{'.'.join(parts[:3])} is a private name of {r.package}.{module}")

    def forbidden(self, node: ast.AST, used: str, api: str) -> None:
        alias = "" if used == api else f" (that is {api})"
        unit = f"unit {self.rules.unit}" if self.rules.unit else "this unit"
        self.report(node, f"uses {used}{alias}, which {unit} forbids: write it yourself", api)

    # -- the walk
    def run(self) -> list[Violation]:
        self.collect_aliases()
        for node in ast.walk(self.tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                self.visit_import(node)
            elif isinstance(node, ast.Name):
                self.visit_name(node)
            elif isinstance(node, ast.Attribute):
                self.visit_attribute(node, node.value, node.attr)
            elif isinstance(node, ast.Call):
                self.visit_call(node)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) \
                    and node.name in DISPATCH_HOOKS:
                self.report(node, f"defines {node.name}, which would run code outside the grader's checks")
            elif isinstance(node, ast.Constant) and node.value in DISPATCH_HOOKS:
                self.report(node, f"names {node.value}, which would run code outside the grader's checks")
            if isinstance(node, ast.ClassDef) and any(k.arg == "metaclass" for k in node.keywords):
                self.report(node, "a metaclass builds classes in ways the grader cannot check; not allowed in "
                                  "course code")
        return sorted(self.found.values(), key=lambda v: (v.line, v.text))

    def visit_import(self, node: ast.Import | ast.ImportFrom) -> None:
        if isinstance(node, ast.ImportFrom):
            if any(a.name == "*" for a in node.names):
                self.report(node, "from ... import * hides where names come from; import the names you use")
            if node.level > 1:
                self.report(node, "a relative import reaches outside the course package")
                return
        targets = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [t for _, t in _import_targets(node, self.rules.package)]
        for target in targets:
            self.check_path(node, target, final=False)  # binding a name is not using it
            if isinstance(node, ast.ImportFrom) and _dunder(target.rsplit(".", 1)[-1]):
                self.report(node, f"imports {target.rsplit('.', 1)[-1]}, a dunder name")

    def visit_name(self, node: ast.Name) -> None:
        if not isinstance(node.ctx, ast.Load):
            if node.id in DISPATCH_HOOKS:
                self.report(node, f"defines {node.id}, which would run code outside the grader's checks")
            return
        parent = self.parent.get(id(node))
        if node.id in DYNAMIC:
            self.report(node, f"{node.id} {DYNAMIC[node.id]}, which is not allowed in course code")
        elif node.id in ATTRIBUTE_BUILTINS:
            if not (isinstance(parent, ast.Call) and parent.func is node and _literal_name(parent)):
                self.report(node, f"{node.id} with a computed attribute name is not allowed in course code; "
                                  f"write the name out")
        elif _dunder(node.id) and node.id not in DUNDER_NAMES:
            self.report(node, f"{node.id} is not allowed in course code")
        elif node.id in self.aliases and not (isinstance(parent, ast.Attribute) and parent.value is node):
            self.check_path(node, self.aliases[node.id])

    def visit_attribute(self, node: ast.AST, base: ast.AST, attr: str) -> None:
        if _dunder(attr):
            if attr not in DUNDER_ATTRIBUTES:
                self.report(node, f"{self.show(base)}.{attr}: the attribute {attr} reaches inside Python objects; "
                                  f"course code may use only {', '.join(sorted(DUNDER_ATTRIBUTES))}")
            elif isinstance(base, (ast.Attribute, ast.Name, ast.Call)) and self.chain(base) is not None:
                self.check_path(node, f"{self.chain(base)}.{attr}")
            return
        if attr in FRAME_ATTRIBUTES:
            self.report(node, f"{self.show(base)}.{attr} reaches Python's frames and code objects, which is not "
                              f"allowed in course code")
            return
        base_path = self.chain(base) if isinstance(base, (ast.Attribute, ast.Name, ast.Call)) else None
        if base_path is not None:
            parent = self.parent.get(id(node))
            if not (isinstance(parent, ast.Attribute) and parent.value is node):
                self.check_path(node, f"{base_path}.{attr}")
            return
        if _private(attr) and id(node) not in self.own_access and not (
                isinstance(base, ast.Name) and base.id in self.own_names and attr in self.defined_private):
            self.report(node, f"{self.show(base)}.{attr}: {attr} is private to an object this module did not "
                              f"define; use private names only on self (or cls) inside your own class")
            return
        if attr in self.methods and not (isinstance(base, ast.Name) and (base.id in ("self", "cls")
                                                                          or base.id in self.own_names)):
            self.forbidden(node, f"{self.show(base)}.{attr}", self.methods[attr])

    def visit_call(self, node: ast.Call) -> None:
        f = node.func
        if isinstance(f, ast.Name) and f.id == "type" and len(node.args) == 3:
            self.report(node, "type(name, bases, namespace) builds a class the grader cannot check; write a "
                              "class statement")
        if isinstance(f, ast.Name) and f.id in ATTRIBUTE_BUILTINS and _literal_name(node):
            self.visit_attribute(node, node.args[0], _literal(node.args[1]))
        for kw in node.keywords:
            if kw.arg in SAFE_LITERALS:
                safe = SAFE_LITERALS[kw.arg]
                if not (isinstance(kw.value, ast.Constant) and kw.value.value is safe):
                    self.report(node, f"{kw.arg} must be written {safe}: loading pickled objects can run any code")


def _literal(node: ast.expr) -> str:
    """The string of a constant the caller has checked is one (see `_literal_name`)."""
    assert isinstance(node, ast.Constant) and isinstance(node.value, str)
    return node.value


def _literal_name(call: ast.Call) -> bool:
    return len(call.args) >= 2 and isinstance(call.args[1], ast.Constant) and isinstance(call.args[1].value, str)


def check_module(data: bytes, file: str, rules: Rules) -> list[Violation]:
    """Every rule one module's bytes break, one `Violation` each, in line order.
    Never raises on hostile input."""
    text, problems = _decode(data, file)
    if text is None:
        return problems
    tree, problems = _parse(data, file)
    if tree is None:
        return problems
    try:
        return _Scan(tree, rules, file).run()
    except (RecursionError, MemoryError):
        return [Violation(file, 0, MAX_DEPTH_MESSAGE)]


def rules_for(course, unit, module_files: dict[str, Path]) -> Rules:
    """The rules for one unit's modules; `module_files` maps every module of
    the package (the student's and the given ones) to the file Python imports."""
    student = frozenset(m for u in course.units for m in u.modules)
    return Rules(package=course.package, unit=unit.id, allow=(*course.imports.allow, *unit.imports),
                 deny=course.imports.deny, forbid=unit.forbid, student_modules=student,
                 exports=package_exports(course.package, module_files))


def _own_imports(path: Path, package: str) -> set[str]:
    """The package modules a module imports, anywhere in it (all of them if it
    imports the package itself)."""
    try:
        tree = ast.parse(path.read_bytes())
    except (SyntaxError, ValueError, RecursionError, MemoryError, OSError):
        return set()
    found: set[str] = set()
    for node in ast.walk(tree):
        for _, target in _import_targets(node, package) if isinstance(node, (ast.Import, ast.ImportFrom)) else ():
            parts = target.split(".")
            if parts[0] == package:
                found.add(parts[1] if len(parts) > 1 else "*")
    return found


def unit_problems(course, unit, module_file: Callable[[str], Path | None],
                  package_modules: list[str]) -> list[Violation]:
    """What the static rules find in the code one unit runs: the one function
    behind both ``llmfs grade`` (the judge) and ``llmfs check``.

    The unit's own modules are held to all the rules, its forbidden APIs
    included. The student modules they import (another unit's, say
    attention.py under u06) are held to the rules that keep the run-time
    check sound (imports, private names, dynamic access), so that no code
    running in this unit's calls can switch that check off."""
    files = {m: p for m in package_modules for p in [module_file(m)] if p is not None}
    rules = rules_for(course, unit, files)
    found: list[Violation] = []
    seen, todo = set(), list(unit.modules)
    while todo:
        m = todo.pop()
        if m in seen or m not in files:
            continue
        seen.add(m)
        deps = _own_imports(files[m], course.package)
        todo += sorted(rules.student_modules) if "*" in deps else sorted(deps & rules.student_modules)
        if m in unit.modules:
            found += check_module(files[m].read_bytes(), f"{course.package}/{m}.py", rules)
        else:
            owner = course.unit_of_module(m)
            theirs = rules_for(course, owner, files) if owner is not None else rules
            found += [v for v in check_module(files[m].read_bytes(), f"{course.package}/{m}.py", theirs)
                      if v.api is None]
    return found


# ------------------------------------------------------------------ run time


class ForbiddenOperatorError(RuntimeError):
    """A forbidden operator ran during a call into student code."""


SUBCLASS = "a tensor subclass's __torch_dispatch__"


def _words(name: str) -> set[str]:
    name = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name).lower()
    return {w for w in name.split("_") if w and w not in ("native", "fused", "for", "cpu", "aten", "forward")}


def likely_api(op: str, apis) -> str | None:
    """The forbidden public API an operator most likely came from, by shared words."""
    words = _words(op.split("::")[-1].split(".")[0])
    best, score = None, 0
    for api in apis:
        s = len(words & _words(api.rsplit(".", 1)[-1]))
        if s > score:
            best, score = api, s
    return best


def _mode_class():
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    plain = torch.Tensor.__torch_dispatch__  # a builtin that refuses: plain tensors and Parameters

    def handles_itself(t) -> bool:
        return getattr(t, "__torch_dispatch__", plain) is not plain

    class _Recorder(TorchDispatchMode):
        def __init__(self, check):
            super().__init__()
            self.check = check

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if types and any(handles_itself(t) for t in types):
                # a tensor subclass's own __torch_dispatch__ would run with this mode off
                self.check.hits.append(SUBCLASS)
                raise ForbiddenOperatorError(self.check.message(SUBCLASS))
            verdict = self.check.verdicts.get(func)
            if verdict is None:
                verdict = self.check.verdicts[func] = self.check.forbidden(func._schema.name)
            if verdict:
                self.check.hits.append(func._schema.name)
                raise ForbiddenOperatorError(self.check.message(func._schema.name))
            return func(*args, **(kwargs or {}))

    return _Recorder


class OperatorCheck:
    """Fails a call into student code that runs one of its unit's forbidden operators.

        with OperatorCheck("u04", ["aten::_softmax"], forbid_apis):
            probe(...)

    The first forbidden operator raises `ForbiddenOperatorError` where it runs;
    if student code catches that, leaving the block raises it again."""

    _mode = None

    def __init__(self, unit: str, ops, apis=()):
        self.unit = unit
        self.exact = {o for o in ops if not o.endswith("*")}
        self.prefixes = tuple(o[:-1] for o in ops if o.endswith("*"))
        self.apis = tuple(apis)
        self.verdicts: dict = {}
        self.hits: list[str] = []
        if (self.exact or self.prefixes) and OperatorCheck._mode is None:
            OperatorCheck._mode = _mode_class()  # now, while only trusted code has run

    def forbidden(self, name: str) -> bool:
        return name in self.exact or name.startswith(self.prefixes) if self.prefixes else name in self.exact

    def message(self, op: str) -> str:
        if op == SUBCLASS:
            return ("your code ran torch operators on a tensor subclass that handles them itself "
                    "(__torch_dispatch__), which the grader cannot check; use plain tensors")
        base = op.split("::")[-1].split(".")[0]
        public = re.sub(r"^(native_|fused_)", "", base.strip("_")).removesuffix("_for_cpu")
        api = likely_api(op, self.apis)
        if api is None:
            source = f"torch's ready-made {public}"
        elif _words(base) == _words(api.rsplit(".", 1)[-1]):
            source = f"torch's ready-made {public}, what {api} runs"
        else:
            source = f"torch's ready-made {public}, a close relative of {api}"
        return (f"your code ran {op} ({source}); unit {self.unit} asks you to write this yourself from "
                f"simpler tensor operations")

    @contextlib.contextmanager
    def active(self):
        if not self.exact and not self.prefixes:
            yield self
            return
        self.hits = []
        with OperatorCheck._mode(self):
            yield self
        if self.hits:
            raise ForbiddenOperatorError(self.message(self.hits[0]))
