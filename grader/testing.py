"""Assertions for course tests that explain themselves.

Every failure raised here is a `Mismatch`: an AssertionError whose first
line (`summary`) says *what* differs, and whose further lines give the
detail (how many values differ, the largest error, the first difference:
index, expected, got) and a hint. Reports of hidden tests show the summary
only; public tests show everything.

A summary names the check and the shapes, lengths, dtypes and keys, and
facts about the submitter's own answer ("got inf or nan"); it never holds a
number derived from the expected values: no expected value, no error size,
no count of differing values and no index of the first difference. (Each
of those is an oracle: answering zeros and reading "largest error X" gives
max|expected|; the count gives how many expected values are zero; the index
of the first difference lets one guess a token sequence position by
position.)
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
            _element(assert_close, g, w, i, what, atol=atol, rtol=rtol, hint=hint,
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
    summary = f"{what}: values differ (shape {_shape(w)})"
    if g.is_floating_point() and not bool(torch.isfinite(g).all()):
        summary += "; got inf or nan"  # a fact about the answer alone
    detail = f"{n_bad} of {bad.numel()} values differ"
    if g.is_floating_point() and w.is_floating_point():
        err = (g.to(torch.float64) - w.to(torch.float64)).abs()
        finite = torch.isfinite(err)
        worst = float(err[finite].max()) if finite.any() else math.inf
        detail += f", largest error {worst:.3g} (allowed {atol:g} + {rtol:g}*|expected|)"
    detail += f"\nfirst difference at index {list(idx)}: expected {_fmt(wv)}, got {_fmt(gv)}"
    raise Mismatch(summary, detail, hint)


def _element(check, got, want, i: int, what: str, **options) -> None:
    """Check element i of a sequence. A failure's summary says `what[...]`, not
    which element: the first element that differs depends on the expected values.
    The detail (public tests only) names it."""
    path = f"{what}[{i}]"
    try:
        check(got, want, what=path, **options)
    except Mismatch as e:
        detail = e.detail if e.detail.startswith("in ") else f"in {path}" + (f": {e.detail}" if e.detail else "")
        raise Mismatch(e.summary.replace(path, f"{what}[...]", 1), detail, e.hint) from None


def _numeric_sequence(x) -> bool:
    return all(isinstance(v, (int, float, bool)) for v in x)


def assert_equal(got, want, *, what: str = "output", hint: str | None = None) -> None:
    """Assert exact equality of plain data (ints, strings, bytes, lists, ...)."""
    if type(got) is not type(want) and not (isinstance(got, (list, tuple)) and isinstance(want, (list, tuple))):
        raise Mismatch(f"{what}: expected a {type(want).__name__}, got a {type(got).__name__}", hint=hint)
    if isinstance(want, (list, tuple)):
        if len(got) != len(want):
            first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
            raise Mismatch(f"{what}: wrong length: expected {len(want)}, got {len(got)}",
                           f"first difference at [{first}]: expected {want[first:first + 5]!r}..., "
                           f"got {got[first:first + 5]!r}...", hint)
        for i, (a, b) in enumerate(zip(got, want)):
            if isinstance(b, (torch.Tensor, np.ndarray, list, tuple, dict)):
                _element(assert_equal, a, b, i, what, hint=hint)
            elif a != b or type(a) is not type(b):
                raise Mismatch(f"{what}: values differ (length {len(want)})",
                               f"first difference at [{i}]: expected {b!r}, got {a!r}", hint)
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
