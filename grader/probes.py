"""Probes: the small functions that call into the student's package.

A probe is a module-level function in a test file whose first parameter is
the package (``pkg``). It returns plain data (see `grader.wire`). Under
``llmfs grade`` it runs in the worker process, which cannot read test files,
so a probe is shipped as *source*: its own, plus that of any module-level
helper functions it calls, plus the modules and plain constants it names as
globals. `describe` works that out once per probe and refuses, with a clear
message, a probe that could not be shipped, so a test that passes under
plain ``pytest`` also works under ``llmfs grade``.
"""

from __future__ import annotations

import builtins
import dis
import inspect
import textwrap
import types
from dataclasses import dataclass
from functools import lru_cache

from .wire import NotPlainData, check_plain

# Modules the worker must not (scratchllm: it is the student's) or cannot
# (test files, hidden tests) import a name from.
_NOT_SHIPPABLE = {"__main__", "scratchllm", "scratchllm_reference", "conftest"}


class ProbeError(Exception):
    """A probe that breaks the rules; a mistake of the test's author."""


@dataclass(frozen=True)
class ProbeSpec:
    """Everything the worker needs to rebuild a probe: plain data only."""

    name: str
    module: str
    sources: tuple[str, ...]          # function definitions, helpers first
    imports: tuple[tuple[str, str], ...]  # (global name, module to import)
    constants: tuple[tuple[str, object], ...]

    def as_plain(self) -> dict:
        return {"name": self.name, "module": self.module, "sources": list(self.sources),
                "imports": [list(i) for i in self.imports],
                "constants": {k: v for k, v in self.constants}}


def _global_names(code: types.CodeType) -> set[str]:
    names: set[str] = set()
    for ins in dis.get_instructions(code):
        if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME", "STORE_GLOBAL", "DELETE_GLOBAL"):
            names.add(ins.argval)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


@lru_cache(maxsize=None)
def describe(probe) -> ProbeSpec:
    """Check that `probe` can be shipped to a worker and say how."""
    if not isinstance(probe, types.FunctionType):
        raise ProbeError(f"a probe must be a plain function, got {type(probe).__name__}")
    if probe.__qualname__ != probe.__name__ or probe.__closure__ or probe.__name__ == "<lambda>":
        raise ProbeError(f"probe {probe.__qualname__} must be defined at module level, not nested")
    params = list(inspect.signature(probe).parameters)
    if not params:
        raise ProbeError(f"probe {probe.__name__} must take the package as its first argument")

    sources: list[str] = []
    imports: dict[str, str] = {}
    constants: dict[str, object] = {}
    seen: set[str] = set()

    def visit(fn: types.FunctionType) -> None:
        if fn.__name__ in seen:
            return
        seen.add(fn.__name__)
        for name in sorted(_global_names(fn.__code__)):
            if name in fn.__globals__:
                value = fn.__globals__[name]
            elif hasattr(builtins, name):
                continue
            else:
                continue  # an undefined name fails at call time, in both worlds alike
            if isinstance(value, types.ModuleType):
                imports[name] = value.__name__
            elif isinstance(value, types.FunctionType) and value.__module__ == probe.__module__:
                if value.__qualname__ != value.__name__ or value.__closure__:
                    raise ProbeError(f"probe {probe.__name__} calls {name}, which is not a module-level function")
                visit(value)
            elif getattr(value, "__module__", None) and not isinstance(value, type) and callable(value) \
                    and getattr(value, "__name__", None) == name \
                    and _importable(value.__module__, name, value):
                imports[name] = f"{value.__module__}:{name}"
            elif isinstance(value, type) and _importable(value.__module__, name, value):
                imports[name] = f"{value.__module__}:{name}"
            else:
                try:
                    check_plain(value, f"global {name}")
                except NotPlainData as e:
                    raise ProbeError(f"probe {probe.__name__} uses {e}; pass it as an argument "
                                     f"or import it inside the probe") from None
                constants[name] = value
        try:
            src = textwrap.dedent(inspect.getsource(fn))
        except (OSError, TypeError) as e:
            raise ProbeError(f"cannot read the source of {fn.__name__}: {e}") from None
        if src.lstrip().startswith("@"):
            raise ProbeError(f"probe {fn.__name__} must not be decorated")
        sources.append(src)

    visit(probe)
    return ProbeSpec(name=probe.__name__, module=probe.__module__, sources=tuple(sources),
                     imports=tuple(sorted(imports.items())), constants=tuple(sorted(constants.items())))


def _importable(module: str, name: str, value) -> bool:
    """True if `from module import name` gives back this very object, and the
    module is not a test file (those are not readable in the worker)."""
    import importlib
    import sys

    if module.split(".")[0] in _NOT_SHIPPABLE or module.startswith(("test_", "conftest", "grader.hidden")):
        return False
    mod = sys.modules.get(module)
    if mod is None:
        try:
            mod = importlib.import_module(module)
        except Exception:
            return False
    return getattr(mod, name, None) is value


def rebuild(spec: dict):
    """Turn a shipped ProbeSpec (as plain data) back into a function.

    Runs in the worker. The namespace holds only what the spec names.
    """
    import importlib

    namespace: dict = {"__name__": f"probe:{spec['module']}", "__builtins__": builtins}
    for name, target in spec["imports"]:
        if ":" in target:
            mod, attr = target.split(":", 1)
            namespace[name] = getattr(importlib.import_module(mod), attr)
        else:
            namespace[name] = importlib.import_module(target)
    namespace.update(spec["constants"])
    for src in spec["sources"]:
        exec(compile(src, f"<probe {spec['module']}>", "exec"), namespace)
    return namespace[spec["name"]]
