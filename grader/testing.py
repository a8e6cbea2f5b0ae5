"""Assertions for course tests that explain themselves.

Every failure raised here is a `Mismatch`: an AssertionError whose first
line (`summary`) says *what* differs without revealing expected values, and
whose further lines give the detail (index, expected, got, a hint). Reports
of hidden tests show the summary only; public tests show everything.
"""

from __future__ import annotations

import math

import numpy as np
import torch


class Mismatch(AssertionError):
    def __init__(self, summary: str, detail: str = "", hint: str | None = None):
        self.summary = summary
        self.detail = detail
        self.hint = hint
        text = summary
        if detail:
            text += "\n" + detail
        if hint:
            text += f"\nhint: {hint}"
        super().__init__(text)


def _shape(x) -> str:
    return "(" + ", ".join(str(s) for s in x.shape) + ")" if hasattr(x, "shape") else type(x).__name__


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return repr(v)


def _as_tensor(x) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach()
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x))
    return torch.as_tensor(x)


def assert_close(got, want, *, atol: float = 1e-5, rtol: float = 1e-5, what: str = "output",
                 hint: str | None = None, check_dtype: bool = True, equal_nan: bool = False) -> None:
    """Assert that `got` matches `want` elementwise: |got - want| <= atol + rtol*|want|.

    Works on tensors, arrays, numbers and lists/tuples/dicts of those.
    """
    if isinstance(want, dict):
        if not isinstance(got, dict) or set(got) != set(want):
            keys = sorted(map(str, got)) if isinstance(got, dict) else type(got).__name__
            raise Mismatch(f"{what}: expected a dict with keys {sorted(map(str, want))}, got {keys}", hint=hint)
        for k in want:
            assert_close(got[k], want[k], atol=atol, rtol=rtol, what=f"{what}[{k!r}]", hint=hint,
                         check_dtype=check_dtype, equal_nan=equal_nan)
        return
    if isinstance(want, (list, tuple)) and not _numeric_sequence(want):
        if not isinstance(got, (list, tuple)) or len(got) != len(want):
            n = len(got) if isinstance(got, (list, tuple)) else type(got).__name__
            raise Mismatch(f"{what}: expected a sequence of length {len(want)}, got {n}", hint=hint)
        for i, (g, w) in enumerate(zip(got, want)):
            assert_close(g, w, atol=atol, rtol=rtol, what=f"{what}[{i}]", hint=hint,
                         check_dtype=check_dtype, equal_nan=equal_nan)
        return

    if isinstance(want, (torch.Tensor, np.ndarray)) and not isinstance(got, (torch.Tensor, np.ndarray)):
        raise Mismatch(f"{what}: expected a tensor of shape {_shape(want)}, got a {type(got).__name__}", hint=hint)
    g, w = _as_tensor(got), _as_tensor(want)
    if tuple(g.shape) != tuple(w.shape):
        raise Mismatch(f"{what}: wrong shape: expected {_shape(w)}, got {_shape(g)}", hint=hint)
    if check_dtype and isinstance(want, torch.Tensor) and g.dtype != w.dtype:
        raise Mismatch(f"{what}: wrong dtype: expected {w.dtype}, got {g.dtype}", hint=hint)
    if g.dtype == torch.bool or w.dtype == torch.bool or not (g.is_floating_point() or w.is_floating_point()):
        bad = g.to(torch.int64) != w.to(torch.int64) if g.dtype != w.dtype else g != w
    else:
        gd, wd = g.to(torch.float64), w.to(torch.float64)
        close = torch.isclose(gd, wd, rtol=rtol, atol=atol, equal_nan=equal_nan)
        bad = ~close
    n_bad = int(bad.sum())
    if n_bad == 0:
        return
    idx = tuple(int(i) for i in bad.nonzero()[0]) if bad.dim() else ()
    gv = g[idx].item() if g.dim() else g.item()
    wv = w[idx].item() if w.dim() else w.item()
    summary = f"{what}: {n_bad} of {bad.numel()} values differ (shape {_shape(w)})"
    if g.is_floating_point() and w.is_floating_point():
        err = (g.to(torch.float64) - w.to(torch.float64)).abs()
        finite = torch.isfinite(err)
        worst = float(err[finite].max()) if finite.any() else math.inf
        summary += f", largest error {worst:.3g} (allowed {atol:g} + {rtol:g}*|expected|)"
        if not bool(torch.isfinite(g).all()) and bool(torch.isfinite(w).all()):
            summary += "; got inf or nan"
    detail = f"first difference at index {list(idx)}: expected {_fmt(wv)}, got {_fmt(gv)}"
    raise Mismatch(summary, detail, hint)


def _numeric_sequence(x) -> bool:
    return all(isinstance(v, (int, float, bool)) for v in x)


def assert_equal(got, want, *, what: str = "output", hint: str | None = None) -> None:
    """Assert exact equality of plain data (ints, strings, bytes, lists, ...)."""
    if type(got) is not type(want) and not (isinstance(got, (list, tuple)) and isinstance(want, (list, tuple))):
        raise Mismatch(f"{what}: expected a {type(want).__name__}, got a {type(got).__name__}", hint=hint)
    if isinstance(want, (list, tuple)):
        if len(got) != len(want):
            first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
            raise Mismatch(f"{what}: expected length {len(want)}, got {len(got)}; first difference at [{first}]",
                           f"expected {want[first:first + 5]!r}..., got {got[first:first + 5]!r}...", hint)
        for i, (a, b) in enumerate(zip(got, want)):
            if isinstance(b, (torch.Tensor, np.ndarray, list, tuple, dict)):
                assert_equal(a, b, what=f"{what}[{i}]", hint=hint)
            elif a != b or type(a) is not type(b):
                raise Mismatch(f"{what}: differs at [{i}] (length {len(want)})",
                               f"expected {b!r}, got {a!r}", hint)
        return
    if isinstance(want, (torch.Tensor, np.ndarray)):
        assert_close(got, want, atol=0, rtol=0, what=what, hint=hint)
        return
    if isinstance(want, dict):
        if set(got) != set(want):
            raise Mismatch(f"{what}: keys differ", f"expected {sorted(map(repr, want))}, got {sorted(map(repr, got))}", hint)
        for k in want:
            assert_equal(got[k], want[k], what=f"{what}[{k!r}]", hint=hint)
        return
    if got != want:
        raise Mismatch(f"{what}: wrong value", f"expected {want!r}, got {got!r}", hint)
