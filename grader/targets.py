"""Which tree `import scratchllm` means, and loading it.

A *target* is a list of directories searched in order for the modules of
the student package:

- ``exercises``: exercises/scratchllm alone (the stubs, or the student's work);
- ``solutions``: solutions/scratchllm laid over exercises/scratchllm, so a
  module that has no TODO lives once, in exercises;
- a path to a folder holding ``scratchllm/`` (a submission): its modules laid
  over exercises/scratchllm.

The package is built straight from those directories and put into
``sys.modules`` under the requested name, so an installed copy of
``scratchllm`` can never shadow it. Inside the package, modules import each
other relatively (``from .attention import softmax``), which is what lets
the reference live beside the student's package under another name.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from .course import Course


class TargetError(Exception):
    """A target that cannot be used, in words for the person who chose it."""


@dataclass(frozen=True)
class Target:
    """An ordered search path for the student package's modules."""

    label: str
    dirs: tuple[Path, ...]  # each is a `scratchllm` directory; first wins

    @property
    def init_file(self) -> Path:
        for d in reversed(self.dirs):  # __init__.py always comes from the base tree
            if (d / "__init__.py").is_file():
                return d / "__init__.py"
        raise TargetError(f"{self.label}: no __init__.py in {', '.join(map(str, self.dirs))}")

    def module_file(self, module: str) -> Path | None:
        for d in self.dirs:
            f = d / f"{module}.py"
            if f.is_file():
                return f
        return None


def resolve_target(course: Course, spec: str | Path = "exercises") -> Target:
    """Turn ``exercises``, ``solutions`` or a path into a Target."""
    pkg = course.package
    base = course.exercises / pkg
    if not base.is_dir():
        raise TargetError(f"{base} is missing: the course needs its exercises/{pkg} folder")
    spec_s = str(spec)
    if spec_s == "exercises":
        return Target("exercises", (base,))
    if spec_s == "solutions":
        sol = course.solutions / pkg
        if not sol.is_dir():
            raise TargetError("the solutions target needs solutions/ (a student release has none)")
        return Target("solutions", (sol, base))
    path = Path(spec_s).expanduser()
    if not path.is_absolute():
        path = Path.cwd() / path
    path = path.resolve()
    if path.name == pkg and path.is_dir():
        pkg_dir = path
    elif (path / pkg).is_dir():
        pkg_dir = path / pkg
    else:
        raise TargetError(f"target {spec_s!r}: expected 'exercises', 'solutions' or a folder "
                          f"holding {pkg}/ (found no {pkg}/ in {path})")
    if pkg_dir.resolve() == base.resolve():
        return Target(str(spec_s), (base,))
    return Target(str(spec_s), (pkg_dir, base))


def forget_package(name: str) -> None:
    """Remove a package and its submodules from sys.modules."""
    for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
        del sys.modules[key]


def load_package(target: Target, name: str) -> ModuleType:
    """Import the target's package as `name`, replacing any earlier one.

    Submodules are found along ``target.dirs`` in order, so an overlay
    directory's ``attention.py`` wins over the base tree's.
    """
    forget_package(name)
    spec = importlib.util.spec_from_file_location(
        name, target.init_file, submodule_search_locations=[str(d) for d in target.dirs])
    if spec is None or spec.loader is None:  # pragma: no cover - defensive
        raise TargetError(f"cannot load {target.init_file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    importlib.invalidate_caches()
    return module


def import_modules(package: ModuleType, modules: tuple[str, ...] | list[str]) -> None:
    """Import `package.<m>` for each m, so probes can reach them as attributes."""
    for m in modules:
        importlib.import_module(f"{package.__name__}.{m}")
