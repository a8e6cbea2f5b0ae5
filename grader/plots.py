"""Pictures of a training run: the loss curves and the learning rate.

`plot_history` takes the history that `scratchllm.training.train` returns
(one dict per iteration with "iteration", "train_loss", "val_loss" (None
between evaluations), "lr" and "tokens_per_s") and writes a PNG. It draws on
matplotlib's Agg canvas directly, never through pyplot, so it works without
a display and leaves matplotlib's global state alone.
"""

from __future__ import annotations

import math
from pathlib import Path


def plot_history(history: list[dict], path: str | Path, title: str | None = None) -> Path:
    """Write `history` as a PNG at `path`: losses above, learning rate below. Returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not history:
        raise ValueError("the history is empty: nothing to plot")
    path = Path(path)
    its = [r["iteration"] for r in history]
    fig = Figure(figsize=(7, 6))
    FigureCanvasAgg(fig)
    ax_loss, ax_lr = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    train = [(it, r["train_loss"]) for it, r in zip(its, history) if _finite(r["train_loss"])]
    if train:
        ax_loss.plot(*zip(*train), lw=0.8, alpha=0.6, label="train (one batch)")
    val = [(it, r["val_loss"]) for it, r in zip(its, history) if _finite(r.get("val_loss"))]
    if val:
        ax_loss.plot(*zip(*val), "o-", ms=3, label="validation")
    ax_loss.set_ylabel("loss (nats per token)")
    ax_loss.grid(alpha=0.3)
    ax_loss.legend()
    if title:
        ax_loss.set_title(title)
    ax_lr.plot(its, [r["lr"] for r in history], color="tab:green")
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_xlabel("iteration")
    ax_lr.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, format="png")
    return path


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)
