"""Unit u07: training.

Training a language model is minimising the average negative log-likelihood
of the next token. Everything in this module serves that one sentence.

The loss. For logits z (a row of V scores) and the true next token y,

    cross_entropy(z, y) = -log softmax(z)_y = logsumexp(z) - z_y
    logsumexp(z)        = m + log sum_j exp(z_j - m),   m = max_j z_j

averaged over every position whose target is not `ignore_index`.
Subtracting m keeps exp() from overflowing (the same trick as u04's softmax).

The optimiser. AdamW (Loshchilov & Hutter, "Decoupled Weight Decay
Regularization") keeps, for every parameter θ with gradient g, two running
averages and a step count t, and at each step:

    t  <- t + 1
    θ  <- θ - lr * λ * θ                      decoupled weight decay, first
    m  <- β1 m + (1 - β1) g                   first moment
    v  <- β2 v + (1 - β2) g²                  second moment
    m̂ = m / (1 - β1^t)     v̂ = v / (1 - β2^t)   bias correction
    θ  <- θ - lr * m̂ / (sqrt(v̂) + ε)

A parameter with no gradient is left alone, and every parameter has its own
m, v and t.

The schedule (the one CS336 uses). With warmup W and cosine end C (an
absolute iteration, W < C):

    lr(it) = it / W * max_lr                                          it < W
    lr(it) = min_lr + (1 + cos(π (it - W) / (C - W))) / 2 * (max_lr - min_lr)   W <= it <= C
    lr(it) = min_lr                                                   it > C

Clipping. With the global norm ‖g‖ = sqrt(Σ over all parameters Σ g²), every
gradient is multiplied by min(1, max_norm / (‖g‖ + eps)).

Batches. A batch is B windows of T + 1 consecutive tokens, starting at
random positions s in [0, len(tokens) - T - 1]: x = tokens[s : s+T],
y = tokens[s+1 : s+T+1], y is x shifted by one token.

Mixed precision. Under torch.autocast the forward pass runs in float16 or
bfloat16 while the parameters, gradients and optimiser state stay float32.
bfloat16 has float32's range; float16 does not (its largest value is 65504,
its smallest normal 6e-5), so small gradients underflow to zero. Dynamic
loss scaling multiplies the loss by a large S before backward, divides the
gradients by S afterwards, skips any step whose gradients hold inf or NaN
(and halves S), and doubles S after `growth_interval` good steps in a row.

Checkpoints hold everything the next step depends on: the model's and the
optimiser's state, the iteration, and the random number generators' states,
so that training k steps, saving, loading into fresh objects and training k
more gives the same numbers, bit for bit, as training 2k steps straight.

The model contract: model(x) returns logits (B, T, V), or a tuple whose
first item is the logits (u06's GPT returns (logits, None) when called
without targets). The loss is always your own `cross_entropy`.

Read exercises/units/u07_training/README.md first. Check your work with
`llmfs check u07` or `pytest exercises/tests -m u07`.
Not allowed here: torch's cross-entropy, log-softmax, logsumexp, Adam/AdamW,
gradient clipping, GradScaler and learning-rate schedulers (see course.toml).
"""

from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
CHECKPOINT_NAME = "ckpt.pt"


@dataclass
class TrainConfig:
    """Everything `train` needs besides the model and the data."""

    batch_size: int = 16
    block_size: int = 64           # tokens per training window
    max_iters: int = 1000          # optimiser steps in the whole run
    max_lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 100
    cosine_iters: int = 1000       # the iteration where the cosine reaches min_lr
    weight_decay: float = 0.1      # applied to matrices only (p.dim() >= 2)
    betas: tuple[float, float] = (0.9, 0.95)
    max_norm: float | None = 1.0   # gradient clipping; None = no clipping
    precision: str = "fp32"        # "fp32" | "bf16" | "fp16" (fp16 uses a LossScaler)
    eval_interval: int = 100       # evaluate after every eval_interval steps
    eval_iters: int = 20           # number of fixed validation windows
    checkpoint_interval: int = 500  # checkpoint after every checkpoint_interval steps, and after the last
    out_dir: str | None = None     # where ckpt.pt goes; None = no checkpoints
    resume: bool = False           # continue from out_dir/ckpt.pt
    seed: int = 0
    device: str = "cpu"
    progress: bool = True          # show a tqdm progress bar (rank 0 only)
    rank: int = 0                  # this process's rank under torch.distributed
    world_size: int = 1


def unwrap(model: nn.Module) -> nn.Module:
    """The model itself, out of a DistributedDataParallel wrapper if it is in one."""
    if isinstance(model, nn.parallel.DistributedDataParallel):
        return model.module
    return model


def logits_of(output) -> Tensor:
    """model(x) returns logits, or a tuple (logits, loss) like u06's GPT: the logits."""
    return output[0] if isinstance(output, (tuple, list)) else output


# ------------------------------------------------------------------ the loss


def cross_entropy(logits: Tensor,  # (..., V)
                  targets: Tensor,  # (...) int64
                  ignore_index: int = -100,
                  ) -> Tensor:  # () the mean over targets that are not ignore_index
    """Mean of logsumexp(z) - z_y over the positions whose target is not ignored."""
    # TODO(u07): Implement a numerically stable cross-entropy.
    #   1. flatten: logits to (N, V), targets to (N,)
    #   2. keep = targets != ignore_index
    #   3. logsumexp by hand: m = row max (use 0 where it is -inf), lse = m + log(sum(exp(z - m)))
    #   4. the target's logit z_y: gather, with the ignored targets replaced by a valid index (0)
    #   5. return the mean of (lse - z_y) over the kept positions only
    raise NotImplementedError("u07: cross_entropy")


# ------------------------------------------------------------------ the optimiser


class AdamW(torch.optim.Optimizer):
    """Adam with decoupled weight decay; step by step equal to torch.optim.AdamW.

    State per parameter (in self.state[p]): "step" (int), "exp_avg" (m) and
    "exp_avg_sq" (v), so state_dict() and load_state_dict() of the base
    class save and restore it.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        """One AdamW update of every parameter that has a gradient; returns closure()'s loss, if given."""
        # TODO(u07): For every group and every parameter p with a gradient g:
        #   state = self.state[p] (its own state); on first use "step" = 0 and
        #   "exp_avg", "exp_avg_sq" = zeros like p. Then, as in the module docstring:
        #   step += 1; p *= 1 - lr * weight_decay (first); update m and v;
        #   bias-correct both with this step's count; p -= lr * m_hat / (sqrt(v_hat) + eps).
        #   Work in place (p.mul_, p.sub_, ...): this runs under torch.no_grad().
        #   If a closure is given, call it first under torch.enable_grad() and return its loss.
        raise NotImplementedError("u07: AdamW.step")


# ------------------------------------------------------------------ the schedule


def lr_at(it: int, max_lr: float, min_lr: float, warmup_iters: int, cosine_iters: int) -> float:
    """Linear warmup from 0 to max_lr, cosine decay to min_lr at cosine_iters, then min_lr."""
    # TODO(u07): Three cases, as in the module docstring: it < warmup_iters,
    # warmup_iters <= it <= cosine_iters, it > cosine_iters. Return a float.
    raise NotImplementedError("u07: lr_at")


# ------------------------------------------------------------------ clipping


def clip_grad_norm(params, max_norm: float, eps: float = 1e-6) -> float:
    """Scale all gradients in place so that their global L2 norm is at most max_norm.

    Returns the global norm before clipping. Parameters without a gradient
    are skipped.
    """
    # TODO(u07): Clip by the global norm.
    #   1. the gradients of the parameters that have one (params may be a generator: read it once)
    #   2. norm = sqrt of the sum of every squared gradient entry, over all of them
    #   3. if max_norm / (norm + eps) < 1, multiply every gradient in place by it
    #   4. return the norm from step 2, as a float
    raise NotImplementedError("u07: clip_grad_norm")


# ------------------------------------------------------------------ batches


def get_batch(tokens: Tensor,  # (N,) integer token ids
              batch_size: int,
              block_size: int,
              generator: torch.Generator,
              ) -> tuple[Tensor, Tensor]:  # x, y: (batch_size, block_size) int64
    """Random windows: x = tokens[s:s+T], y = tokens[s+1:s+T+1], s uniform in [0, N-T-1]."""
    # TODO(u07): Draw batch_size starts with torch.randint(..., generator=generator)
    # so that every s in [0, len(tokens) - block_size - 1] is possible (randint's
    # upper bound is exclusive), then stack the windows x and y (as int64).
    raise NotImplementedError("u07: get_batch")


# ------------------------------------------------------------------ loss scaling


class LossScaler:
    """Dynamic loss scaling for float16, like torch.amp.GradScaler.

    Per step: loss -> scale(loss) -> backward -> unscale_(optimizer) ->
    (clip) -> step(optimizer) -> update().
    """

    def __init__(self, init_scale: float = 2.0 ** 16, growth_factor: float = 2.0,
                 backoff_factor: float = 0.5, growth_interval: int = 2000):
        self.scale_value = float(init_scale)
        self.growth_factor = growth_factor
        self.backoff_factor = backoff_factor
        self.growth_interval = growth_interval
        self.growth_tracker = 0     # good steps in a row since the last change of scale
        self.found_inf = False      # did this step's gradients hold inf or NaN?
        self.unscaled = False       # were this step's gradients unscaled already?

    def get_scale(self) -> float:
        return self.scale_value

    def scale(self, loss: Tensor) -> Tensor:
        """The loss times the current scale (call .backward() on this)."""
        # TODO(u07): multiply by the current scale.
        raise NotImplementedError("u07: LossScaler.scale")

    def unscale_(self, optimizer: torch.optim.Optimizer) -> None:
        """Divide every gradient the optimizer will use by the scale; note any inf/NaN.

        Doing it twice in one step has no further effect.
        """
        # TODO(u07): if already unscaled this step, return. Otherwise multiply the
        # .grad of every parameter in optimizer.param_groups by 1 / scale, set
        # self.found_inf if any of them holds inf or NaN, and set self.unscaled.
        raise NotImplementedError("u07: LossScaler.unscale_")

    def step(self, optimizer: torch.optim.Optimizer) -> bool:
        """optimizer.step() unless the gradients held inf/NaN; True if it stepped."""
        # TODO(u07): unscale_ (it does nothing if done already); skip the step if
        # found_inf, else optimizer.step(). Return whether it stepped.
        raise NotImplementedError("u07: LossScaler.step")

    def update(self) -> None:
        """Back off after a bad step; grow after growth_interval good steps in a row."""
        # TODO(u07): after a bad step: scale *= backoff_factor, growth_tracker = 0.
        # After a good one: growth_tracker += 1; when it reaches growth_interval,
        # scale *= growth_factor and growth_tracker = 0. Then reset found_inf and
        # unscaled for the next step.
        raise NotImplementedError("u07: LossScaler.update")

    def state_dict(self) -> dict:
        return {"scale": self.scale_value, "growth_tracker": self.growth_tracker}

    def load_state_dict(self, state: dict) -> None:
        self.scale_value = float(state["scale"])
        self.growth_tracker = int(state["growth_tracker"])


# ------------------------------------------------------------------ one step


def train_step(model: nn.Module, x: Tensor, y: Tensor, optimizer: torch.optim.Optimizer, *,
               precision: str = "fp32", scaler: LossScaler | None = None,
               max_norm: float | None = None) -> float:
    """One optimiser step on the batch (x, y); returns the loss (before the step).

    forward (under torch.autocast for "bf16"/"fp16") -> cross_entropy on the
    logits cast to float32 -> backward (of the scaled loss with a scaler) ->
    unscale -> clip -> step -> zero the gradients.
    """
    # TODO(u07): One step.
    #   1. forward under torch.autocast(x.device.type, dtype=PRECISIONS[precision],
    #      enabled=PRECISIONS[precision] is not None); logits = logits_of(model(x))
    #   2. loss = your cross_entropy(logits.float(), y)
    #   3. backward: scaler.scale(loss).backward() and scaler.unscale_(optimizer)
    #      with a scaler, loss.backward() without
    #   4. clip (your clip_grad_norm over model.parameters()) if max_norm is not None,
    #      only after unscaling
    #   5. scaler.step(optimizer) and scaler.update(), or optimizer.step()
    #   6. optimizer.zero_grad(set_to_none=True); return the loss as a float
    raise NotImplementedError("u07: train_step")


# ------------------------------------------------------------------ checkpoints


def save_checkpoint(path, model: nn.Module, optimizer: torch.optim.Optimizer, iteration: int,
                    rng: bool = True, **extra) -> None:
    """Write model, optimizer, iteration, RNG states and `extra` to `path`.

    The file holds only tensors and plain Python data, so that
    torch.load(path, weights_only=True) reads it. It is written to a
    temporary file first and then renamed, so an interrupted save never
    leaves half a checkpoint.
    """
    # TODO(u07): Build a dict: "model": unwrap(model).state_dict(), "optimizer":
    # optimizer.state_dict(), "iteration": int(iteration), and every item of extra.
    # If rng: "rng": the states of torch (torch.get_rng_state()), Python
    # (random.getstate()) and numpy (np.random.get_state()) as tensors, lists,
    # ints, floats and strings: weights_only=True refuses numpy arrays. On a
    # GPU, dropout draws from CUDA's generators: add torch.cuda.get_rng_state_all()
    # when torch.cuda.is_available().
    # torch.save it to f"{path}.tmp", then os.replace it onto path.
    raise NotImplementedError("u07: save_checkpoint")


def load_checkpoint(path, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Load `path` into model and optimizer, restore the RNG states; return the checkpoint dict."""
    # TODO(u07): torch.load(path, map_location="cpu", weights_only=True); load the
    # model (unwrap(model)) and the optimizer; if the checkpoint has "rng", set the
    # torch, Python and numpy states back (random.setstate wants tuples, numpy
    # a uint32 array), and CUDA's if saved and available. Return the whole dict.
    raise NotImplementedError("u07: load_checkpoint")


# ------------------------------------------------------------------ the loop


@torch.no_grad()
def estimate_loss(model: nn.Module, tokens: Tensor, block_size: int, batch_size: int,
                  n_windows: int) -> float:
    """Mean loss over n_windows fixed, evenly spaced windows of `tokens`.

    With N = len(tokens) - block_size possible starts, window i starts at
    i * (N - 1) // (n_windows - 1) (window 0 alone if n_windows is 1; every
    start once if n_windows >= N). The same windows every call, evaluated in
    eval mode, batch_size at a time; the model's mode is restored afterwards.
    """
    # TODO(u07): the starts as in the docstring; remember model.training and call
    # model.eval(); for each group of batch_size starts, stack x and y (on the
    # model's device), add your cross_entropy(logits.float(), y) times the group's
    # size; restore the mode; return the total divided by the number of windows.
    raise NotImplementedError("u07: estimate_loss")


def train(model: nn.Module, tokens_train: Tensor, tokens_val: Tensor, config: TrainConfig, *,
          callbacks=None) -> list[dict]:
    """Train `model` on tokens_train with AdamW and the warmup + cosine schedule.

    Returns the history: one dict per iteration `it` (0-based) with keys
    "iteration" (it), "train_loss" (the loss of that step's batch), "val_loss"
    (estimate_loss on tokens_val after the step when (it + 1) % eval_interval
    == 0; None on the others), "lr" (lr_at(it)) and "tokens_per_s". A
    checkpoint is written after every checkpoint_interval steps and after
    the last step, when out_dir is set. A resumed run returns
    the history from iteration 0. Each callback is called as
    callback(record, model) after every iteration.
    """
    # TODO(u07): The loop. In order:
    #   1. raw = unwrap(model); an AdamW with two groups: the parameters with
    #      p.dim() >= 2 get config.weight_decay, the others 0.0; lr=max_lr, betas.
    #      A LossScaler() if precision is "fp16", else None.
    #   2. generator = torch.Generator().manual_seed(seed + rank); torch.manual_seed(seed + rank)
    #   3. checkpoint path: os.path.join(out_dir, CHECKPOINT_NAME), or None without out_dir.
    #      If resume: load_checkpoint (FileNotFoundError if there is none); start at its
    #      "iteration" with its "history"; generator.set_state(ckpt["generator"])
    #      (with world_size > 1, re-seed with seed + rank + world_size * start instead);
    #      the scaler from ckpt["scaler"].
    #   4. model.train(); a tqdm bar over range(start, max_iters), disabled unless
    #      progress and rank 0. For each it:
    #        lr = lr_at(it, ...), written into every param group;
    #        x, y = get_batch(tokens_train, batch_size, block_size, generator), moved to device;
    #        loss = train_step(model, x, y, optimizer, precision=..., scaler=..., max_norm=...);
    #        record = {"iteration": it, "train_loss": loss, "val_loss": None, "lr": lr,
    #                  "tokens_per_s": tokens of the step (all ranks) / seconds};
    #        after every eval_interval steps: record["val_loss"] =
    #        estimate_loss(raw, tokens_val, block_size, batch_size, eval_iters);
    #        append the record; call each callback(record, model);
    #        after every checkpoint_interval steps and after the last, rank 0 saves
    #        (if out_dir): save_checkpoint(path, raw, optimizer, steps done,
    #        generator=generator.get_state(), history=history, and scaler=its
    #        state_dict() with fp16).
    #   5. On KeyboardInterrupt: save a checkpoint at the steps done so far, then re-raise.
    #   6. Return the history.
    raise NotImplementedError("u07: train")
