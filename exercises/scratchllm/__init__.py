"""scratchllm: the language model you build in this course, one unit at a time.

Each module is one unit's worth of ideas (see course.toml). Modules import
each other relatively (``from .attention import softmax``), never as
``scratchllm.x``, so the grader can load your package and the reference side
by side.

Submodules load on first use, so ``scratchllm.attention`` works after a bare
``import scratchllm``, and a mistake in one unit's file does not stop the
others from importing.
"""

import importlib as _importlib


def __getattr__(name: str):
    try:
        return _importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as e:
        if e.name == f"{__name__}.{name}":
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
        raise
