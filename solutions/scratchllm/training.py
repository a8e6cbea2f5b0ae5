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


def unwrap(model: nn.Module) -> nn.Module:  # llmfs: given
    """The model itself, out of a DistributedDataParallel wrapper if it is in one."""
    if isinstance(model, nn.parallel.DistributedDataParallel):
        return model.module
    return model


def logits_of(output) -> Tensor:  # llmfs: given
    """model(x) returns logits, or a tuple (logits, loss) like u06's GPT: the logits."""
    return output[0] if isinstance(output, (tuple, list)) else output


# ------------------------------------------------------------------ the loss


def cross_entropy(logits: Tensor,  # (..., V)
                  targets: Tensor,  # (...) int64
                  ignore_index: int = -100,
                  ) -> Tensor:  # () the mean over targets that are not ignore_index
    """Mean of logsumexp(z) - z_y over the positions whose target is not ignored."""
    logits = logits.reshape(-1, logits.size(-1))
    targets = targets.reshape(-1)
    keep = targets != ignore_index
    m = logits.amax(dim=-1, keepdim=True).detach()
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    lse = m.squeeze(-1) + torch.log(torch.exp(logits - m).sum(dim=-1))
    picked = logits.gather(1, torch.where(keep, targets, 0).unsqueeze(1)).squeeze(1)
    losses = (lse - picked)[keep]
    return losses.sum() / keep.sum()


# ------------------------------------------------------------------ the optimiser


class AdamW(torch.optim.Optimizer):
    """Adam with decoupled weight decay; step by step equal to torch.optim.AdamW.

    State per parameter (in self.state[p]): "step" (int), "exp_avg" (m) and
    "exp_avg_sq" (v), so state_dict() and load_state_dict() of the base
    class save and restore it.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),  # llmfs: given
                 eps: float = 1e-8, weight_decay: float = 0.01):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        """One AdamW update of every parameter that has a gradient; returns closure()'s loss, if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, (beta1, beta2) = group["lr"], group["betas"]
            eps, wd = group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = state["step"]
                m, v = state["exp_avg"], state["exp_avg_sq"]
                p.mul_(1 - lr * wd)
                m.mul_(beta1).add_(g, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                m_hat = m / (1 - beta1 ** t)
                v_hat = v / (1 - beta2 ** t)
                p.sub_(lr * m_hat / (v_hat.sqrt() + eps))
        return loss


# ------------------------------------------------------------------ the schedule


def lr_at(it: int, max_lr: float, min_lr: float, warmup_iters: int, cosine_iters: int) -> float:
    """Linear warmup from 0 to max_lr, cosine decay to min_lr at cosine_iters, then min_lr."""
    if it < warmup_iters:
        return it / warmup_iters * max_lr
    if it > cosine_iters:
        return min_lr
    progress = (it - warmup_iters) / (cosine_iters - warmup_iters)
    return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (max_lr - min_lr)


# ------------------------------------------------------------------ clipping


def clip_grad_norm(params, max_norm: float, eps: float = 1e-6) -> float:
    """Scale all gradients in place so that their global L2 norm is at most max_norm.

    Returns the global norm before clipping. Parameters without a gradient
    are skipped.
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    norm = math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads))
    scale = min(1.0, max_norm / (norm + eps))
    if scale < 1.0:
        for g in grads:
            g.mul_(scale)
    return norm


# ------------------------------------------------------------------ batches


def get_batch(tokens: Tensor,  # (N,) integer token ids
              batch_size: int,
              block_size: int,
              generator: torch.Generator,
              ) -> tuple[Tensor, Tensor]:  # x, y: (batch_size, block_size) int64
    """Random windows: x = tokens[s:s+T], y = tokens[s+1:s+T+1], s uniform in [0, N-T-1]."""
    n_starts = len(tokens) - block_size
    if n_starts < 1:
        raise ValueError(f"{len(tokens)} tokens are too few for windows of block_size={block_size} "
                         f"and their next tokens")
    starts = torch.randint(0, n_starts, (batch_size,), generator=generator, device=generator.device)
    tokens = tokens.to(torch.long)
    x = torch.stack([tokens[s:s + block_size] for s in starts.tolist()])
    y = torch.stack([tokens[s + 1:s + block_size + 1] for s in starts.tolist()])
    return x, y


# ------------------------------------------------------------------ loss scaling


class LossScaler:
    """Dynamic loss scaling for float16, like torch.amp.GradScaler.

    Per step: loss -> scale(loss) -> backward -> unscale_(optimizer) ->
    (clip) -> step(optimizer) -> update().
    """

    def __init__(self, init_scale: float = 2.0 ** 16, growth_factor: float = 2.0,  # llmfs: given
                 backoff_factor: float = 0.5, growth_interval: int = 2000):
        self.scale_value = float(init_scale)
        self.growth_factor = growth_factor
        self.backoff_factor = backoff_factor
        self.growth_interval = growth_interval
        self.growth_tracker = 0     # good steps in a row since the last change of scale
        self.found_inf = False      # did this step's gradients hold inf or NaN?
        self.unscaled = False       # were this step's gradients unscaled already?

    def get_scale(self) -> float:  # llmfs: given
        return self.scale_value

    def scale(self, loss: Tensor) -> Tensor:
        """The loss times the current scale (call .backward() on this)."""
        return loss * self.scale_value

    def unscale_(self, optimizer: torch.optim.Optimizer) -> None:
        """Divide every gradient the optimizer will use by the scale; note any inf/NaN.

        Doing it twice in one step has no further effect.
        """
        if self.unscaled:
            return
        inv = 1.0 / self.scale_value
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.grad.mul_(inv)
                    if not bool(torch.isfinite(p.grad).all()):
                        self.found_inf = True
        self.unscaled = True

    def step(self, optimizer: torch.optim.Optimizer) -> bool:
        """optimizer.step() unless the gradients held inf/NaN; True if it stepped."""
        self.unscale_(optimizer)
        if self.found_inf:
            return False
        optimizer.step()
        return True

    def update(self) -> None:
        """Back off after a bad step; grow after growth_interval good steps in a row."""
        if self.found_inf:
            self.scale_value *= self.backoff_factor
            self.growth_tracker = 0
        else:
            self.growth_tracker += 1
            if self.growth_tracker == self.growth_interval:
                self.scale_value *= self.growth_factor
                self.growth_tracker = 0
        self.found_inf = False
        self.unscaled = False

    def state_dict(self) -> dict:  # llmfs: given
        return {"scale": self.scale_value, "growth_tracker": self.growth_tracker}

    def load_state_dict(self, state: dict) -> None:  # llmfs: given
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
    dtype = PRECISIONS[precision]
    with torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None):
        logits = logits_of(model(x))
    loss = cross_entropy(logits.float(), y)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    if max_norm is not None:
        clip_grad_norm(model.parameters(), max_norm)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


# ------------------------------------------------------------------ checkpoints


def save_checkpoint(path, model: nn.Module, optimizer: torch.optim.Optimizer, iteration: int,
                    rng: bool = True, **extra) -> None:
    """Write model, optimizer, iteration, RNG states and `extra` to `path`.

    The file holds only tensors and plain Python data, so that
    torch.load(path, weights_only=True) reads it. It is written to a
    temporary file first and then renamed, so an interrupted save never
    leaves half a checkpoint.
    """
    ckpt = {"model": unwrap(model).state_dict(), "optimizer": optimizer.state_dict(),
            "iteration": int(iteration), **extra}
    if rng:
        version, internal, gauss = random.getstate()
        name, keys, pos, has_gauss, cached = np.random.get_state()
        ckpt["rng"] = {"torch": torch.get_rng_state(),
                       "python": [version, list(internal), gauss],
                       "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]}
        if torch.cuda.is_available():
            ckpt["rng"]["cuda"] = torch.cuda.get_rng_state_all()
    tmp = f"{path}.tmp"
    torch.save(ckpt, tmp)
    os.replace(tmp, path)


def load_checkpoint(path, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Load `path` into model and optimizer, restore the RNG states; return the checkpoint dict."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    unwrap(model).load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    if "rng" in ckpt:
        state = ckpt["rng"]
        torch.set_rng_state(state["torch"])
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
    return ckpt


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
    n_starts = len(tokens) - block_size
    n = min(n_windows, n_starts)
    starts = [0] if n == 1 else [i * (n_starts - 1) // (n - 1) for i in range(n)]
    tokens = tokens.to(device=next(model.parameters()).device, dtype=torch.long)
    was_training = model.training
    model.eval()
    total = 0.0
    for b in range(0, n, batch_size):
        chunk = starts[b:b + batch_size]
        x = torch.stack([tokens[s:s + block_size] for s in chunk])
        y = torch.stack([tokens[s + 1:s + block_size + 1] for s in chunk])
        total += cross_entropy(logits_of(model(x)).float(), y).item() * len(chunk)
    model.train(was_training)
    return total / n


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
    c = config
    raw = unwrap(model)
    device = torch.device(c.device)
    decay = [p for p in raw.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in raw.parameters() if p.requires_grad and p.dim() < 2]
    optimizer = AdamW([{"params": decay, "weight_decay": c.weight_decay},
                       {"params": no_decay, "weight_decay": 0.0}], lr=c.max_lr, betas=c.betas)
    scaler = LossScaler() if c.precision == "fp16" else None
    generator = torch.Generator().manual_seed(c.seed + c.rank)
    torch.manual_seed(c.seed + c.rank)
    path = os.path.join(c.out_dir, CHECKPOINT_NAME) if c.out_dir else None
    history: list[dict] = []
    start = 0
    if c.resume:
        if path is None or not os.path.isfile(path):
            raise FileNotFoundError(f"resume=True but there is no checkpoint at {path}")
        ckpt = load_checkpoint(path, raw, optimizer)
        start, history = ckpt["iteration"], ckpt["history"]
        if c.world_size == 1:
            generator.set_state(ckpt["generator"])
        else:  # the file holds rank 0's stream only: each rank starts a fresh one of its own
            generator.manual_seed(c.seed + c.rank + c.world_size * start)
        if scaler is not None:
            scaler.load_state_dict(ckpt["scaler"])
    writer = c.rank == 0 and path is not None

    def checkpoint(done: int) -> None:
        if writer:
            os.makedirs(c.out_dir, exist_ok=True)
            extra = {"scaler": scaler.state_dict()} if scaler is not None else {}
            save_checkpoint(path, raw, optimizer, done, generator=generator.get_state(),
                            history=history, **extra)

    model.train()
    bar = tqdm(range(start, c.max_iters), initial=start, total=c.max_iters,
               disable=not c.progress or c.rank != 0)
    done = start
    try:
        for it in bar:
            t0 = time.perf_counter()
            lr = lr_at(it, c.max_lr, c.min_lr, c.warmup_iters, c.cosine_iters)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y = get_batch(tokens_train, c.batch_size, c.block_size, generator)
            loss = train_step(model, x.to(device), y.to(device), optimizer, precision=c.precision,
                              scaler=scaler, max_norm=c.max_norm)
            done = it + 1
            record = {"iteration": it, "train_loss": loss, "val_loss": None, "lr": lr,
                      "tokens_per_s": x.numel() * c.world_size / (time.perf_counter() - t0)}
            if done % c.eval_interval == 0:
                record["val_loss"] = estimate_loss(raw, tokens_val, c.block_size, c.batch_size, c.eval_iters)
            history.append(record)
            bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.2e}")
            for callback in callbacks or ():
                callback(record, model)
            if done % c.checkpoint_interval == 0 or done == c.max_iters:
                checkpoint(done)
    except KeyboardInterrupt:
        checkpoint(done)
        raise
    finally:
        bar.close()
    return history
