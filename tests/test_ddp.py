"""Data parallelism is exact: two gloo processes, each stepping on its half of
a batch through DistributedDataParallel, end with the same parameters as one
process stepping on the whole batch.

The model, optimiser and step are the reference's (solutions/), wrapped by
the capstone's own set-up (scratchllm.capstone.setup_distributed and wrap),
so this also checks the code `llmfs train --nproc N` runs. The processes are
started by torch.multiprocessing.spawn and meet through a file, so no port
is needed. The model runs in float64, so that the gradient summed in two
halves and averaged agrees with the whole batch's to ~1e-15 and the check
can be tight: a rank that stepped on the wrong rows, or gradients summed
instead of averaged, move parameters by ~1e-3.
"""

import os

import torch
import torch.multiprocessing as mp

from grader.course import load_course
from grader.targets import load_package, resolve_target

from kit import ROOT

PACKAGE = "scratchllm_ddp"
STEPS = 4
HALF = 3  # each process's share of the batch; one process alone takes 2 * HALF
SHAPE = dict(vocab_size=29, block_size=16, n_layer=2, n_head=2, d_model=32, d_ff=64)


def package():
    pkg = load_package(resolve_target(load_course(ROOT / "course.toml"), "solutions"), PACKAGE)
    for m in ("model", "training", "capstone"):
        __import__(f"{PACKAGE}.{m}")
    return pkg


def batches():
    g = torch.Generator().manual_seed(7)
    return [torch.randint(0, SHAPE["vocab_size"], (2 * HALF, SHAPE["block_size"] + 1), generator=g)
            for _ in range(STEPS)]


def run_steps(pkg, model, rows) -> dict:
    """STEPS optimiser steps of the reference's train_step on rows(batch) of each batch."""
    opt = pkg.training.AdamW(model.parameters(), lr=3e-3, weight_decay=0.1)
    for batch in batches():
        b = rows(batch)
        pkg.training.train_step(model, b[:, :-1], b[:, 1:], opt, max_norm=0.5)
    raw = pkg.training.unwrap(model)
    return {k: v.detach().clone() for k, v in raw.state_dict().items()}


def new_model(pkg):
    torch.manual_seed(0)
    return pkg.model.GPT(pkg.model.GPTConfig(**SHAPE)).double()  # float64: sums in another order agree


def rank_main(rank: int, world_size: int, rendezvous: str, out: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=rendezvous, rank=rank, world_size=world_size)
    try:
        pkg = package()
        cap = __import__(f"{PACKAGE}.capstone", fromlist=["capstone"])
        got_rank, got_world, device = cap.setup_distributed("cpu")
        assert (got_rank, got_world, device) == (rank, world_size, "cpu")
        model = cap.wrap(new_model(pkg), device, world_size)
        assert isinstance(model, torch.nn.parallel.DistributedDataParallel)
        params = run_steps(pkg, model, lambda b: b[rank * HALF:(rank + 1) * HALF])
        torch.save(params, os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_equal_one_process_on_the_whole_batch(tmp_path):
    rendezvous = f"file://{tmp_path / 'rendezvous'}"
    mp.spawn(rank_main, args=(2, rendezvous, str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]

    torch.set_num_threads(1)
    pkg = package()
    alone = run_steps(pkg, new_model(pkg), lambda b: b)
    start = new_model(pkg).state_dict()
    for name, want in alone.items():
        assert not torch.equal(want, start[name]) or name.endswith("bias"), f"{name} never moved"
        for r in range(2):
            torch.testing.assert_close(ranks[r][name], want, atol=1e-10, rtol=1e-8,
                                       msg=lambda m, r=r, name=name: f"rank {r}, {name}: {m}")
