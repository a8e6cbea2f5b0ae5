"""Assertions for course tests that explain themselves.

Every failure raised here is a `Mismatch`: an AssertionError whose first
line (`summary`) says *what* differs, and whose further lines give the
detail (how many values differ, the largest error, the first difference:
index, expected, got) and a hint. Reports of hidden tests show the summary
only; public tests show everything.

A summary names the check and the shapes, lengths, dtypes and keys, and
facts about the submitter's own answer ("got inf or nan"); it never holds a
number derived from the expected values: no expected value, no error size,
no count of differing values and no index of the first difference (wrong
values in a list are reported for the list as a whole; a dict names the
key, which the test chose). Each of those is an oracle: answering zeros and
reading "largest error X" gives max|expected|, the count gives how many
expected values are zero, the index of the first difference lets one guess
a token sequence position by position.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .failures import Failure


class Mismatch(Failure, AssertionError):
    """A result that is not what the test expected (a `grader.failures.Failure`)."""

    kind = "mismatch"
    about_values = False  # True: the values differ; False: the structure (type, shape, length, keys)


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
    __tracebackhide__ = True  # pytest shows the test and the student's code, not this
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
        _elements(assert_close, got, want, what, atol=atol, rtol=rtol, hint=hint,
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
    raise _values_differ(summary, detail, hint)


def _values_differ(summary: str, detail: str, hint: str | None) -> Mismatch:
    m = Mismatch(summary, detail, hint)
    m.about_values = True
    return m


def _elements(check, got, want, what: str, *, hint: str | None, **options) -> None:
    """Check a sequence element by element, and say what is wrong without saying
    which element first has wrong values (that depends on the expected values):
    a structural failure (type, shape, length) wins over wrong values, whichever
    element has it, and its summary says `what[...]`. The detail (public tests
    only) names the element."""
    failures = []
    for i, (g, w) in enumerate(zip(got, want)):
        try:
            check(g, w, what=f"{what}[{i}]", hint=hint, **options)
        except Mismatch as e:
            failures.append((i, e))
    if not failures:
        return
    structural = [(i, m) for i, m in failures if not m.about_values]
    i, first = (structural or failures)[0]
    path = f"{what}[{i}]"
    detail = first.detail if first.detail.startswith("in ") else \
        f"in {path}" + (f": {first.detail}" if first.detail else "")
    if structural:
        raise Mismatch(first.summary.replace(path, f"{what}[...]", 1), detail, first.hint)
    raise _values_differ(f"{what}: values differ (length {len(want)})", detail, first.hint)


def _scalar_equal(got, want, *, what: str, hint: str | None) -> None:
    if got != want or type(got) is not type(want):
        raise _values_differ(f"{what}: wrong value", f"expected {want!r}, got {got!r}", hint)


def _numeric_sequence(x) -> bool:
    return all(isinstance(v, (int, float, bool)) for v in x)


def assert_equal(got, want, *, what: str = "output", hint: str | None = None) -> None:
    """Assert exact equality of plain data (ints, strings, bytes, lists, ...)."""
    __tracebackhide__ = True  # pytest shows the test and the student's code, not this
    if type(got) is not type(want) and not (isinstance(got, (list, tuple)) and isinstance(want, (list, tuple))):
        raise Mismatch(f"{what}: expected a {type(want).__name__}, got a {type(got).__name__}", hint=hint)
    if isinstance(want, (list, tuple)):
        if len(got) != len(want):
            first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
            raise Mismatch(f"{what}: wrong length: expected {len(want)}, got {len(got)}",
                           f"first difference at [{first}]: expected {want[first:first + 5]!r}..., "
                           f"got {got[first:first + 5]!r}...", hint)
        _elements(_equal_element, got, want, what, hint=hint)
        return
    if isinstance(want, (torch.Tensor, np.ndarray)):
        assert_close(got, want, atol=0, rtol=0, what=what, hint=hint)
        return
    if isinstance(want, dict):
        if set(got) != set(want):
            raise Mismatch(f"{what}: keys differ",
                           f"expected {sorted(map(repr, want))}, got {sorted(map(repr, got))}", hint)
        for k in want:
            assert_equal(got[k], want[k], what=f"{what}[{k!r}]", hint=hint)
        return
    _scalar_equal(got, want, what=what, hint=hint)


def _equal_element(got, want, *, what: str, hint: str | None) -> None:
    nested = isinstance(want, (torch.Tensor, np.ndarray, list, tuple, dict))
    (assert_equal if nested else _scalar_equal)(got, want, what=what, hint=hint)


def assert_dropout_on_output(train, evaluation, p: float, *, what: str, hint: str | None = None) -> None:
    """Assert that `train` is `evaluation` with dropout(p) applied to it, 0 < p < 1.

    Each element is either 0 or evaluation / (1 - p), and about a fraction p
    (within 0.1: use thousands of elements) are 0. Dropout applied anywhere
    else (inside a feed-forward, on attention weights) gives other numbers.
    """
    g, e = _as_tensor(train).double(), _as_tensor(evaluation).double()
    if g.shape != e.shape:
        raise Mismatch(f"{what}: wrong shape: expected {_shape(e)}, got {_shape(g)}", hint=hint)
    kept = g != 0
    if bool(kept.all()) and torch.allclose(g, e, atol=1e-6, rtol=1e-5):
        raise Mismatch(f"{what}: no output is 0, so dropout was not applied",
                       hint="build nn.Dropout(p) with the p given and call it in forward")
    if bool(kept.all()):
        raise Mismatch(f"{what}: no output is 0, yet the outputs differ from eval mode: dropout is applied, "
                       f"but not to the output", hint=hint)
    assert_close(g[kept], e[kept] / (1 - p), atol=1e-5, rtol=1e-4,
                 what=f"{what}: outputs not dropped, compared with the eval-mode outputs / (1 - p)", hint=hint)
    assert_close(1 - float(kept.double().mean()), p, atol=0.1, rtol=0,
                 what=f"{what}: the fraction of outputs that are 0", hint=hint)
