"""`llmfs train | generate | eval`: the capstone's commands.

The grader knows nothing about training. The commands resolve ``--target``
(the student's own package by default), load it and hand over to its
``capstone`` module, which is given course code in exercises/. This module
only adds a command line, one-line errors, and process launching:
``--nproc N`` runs the same command in N processes with torch's own launcher
(``python -m torch.distributed.run``, i.e. torchrun), which is also how it
runs across machines (see exercises/units/u09_capstone/README.md).
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import traceback
from pathlib import Path

from .course import load_course
from .errors import UserError
from .targets import load_package, resolve_target

TRAIN_EPILOG = """\
examples:
  llmfs train shakespeare-char --target solutions --max-iters 200
  llmfs train shakespeare-char data=shakespeare-plays n_layer=6 --out runs/plays
  llmfs train shakespeare-char --out runs/plays --resume --max-iters 4000
  llmfs train addition --nproc 2
  torchrun --nproc_per_node 2 -m grader train shakespeare-char   (the same as --nproc 2)

presets and their keys: llmfs train --list"""


class IntermixedParser(argparse.ArgumentParser):
    """Lets key=value words and options come in any order (`train PRESET --max-iters 9 n_layer=2`)."""

    _inside = False

    def parse_known_args(self, args=None, namespace=None):
        if self._inside:  # parse_known_intermixed_args calls us back: the plain parse
            return super().parse_known_args(args, namespace)
        self._inside = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inside = False


def register(sub) -> None:
    p = sub.add_parser("train", help="train a GPT with your own code (the capstone)",
                       description="Train a preset into a run folder with the package --target picks: your "
                                   "tokenizer, model, training loop and sampler. Ctrl-C leaves a checkpoint "
                                   "that --resume continues exactly.",
                       epilog=TRAIN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.__class__ = IntermixedParser
    p.add_argument("preset", nargs="?", help="shakespeare-char, shakespeare-bpe or addition")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="change a preset's setting, e.g. n_layer=6")
    _target(p)
    p.add_argument("--out", metavar="DIR", help="run folder (default: runs/PRESET)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "mps"])
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--max-iters", type=int, metavar="N", help="optimiser steps in the whole run")
    p.add_argument("--nproc", type=int, default=1, metavar="N",
                   help="processes on this machine (torch.distributed DDP: gloo on CPU, NCCL on GPUs)")
    p.add_argument("--list", action="store_true", help="list the presets and their settings, then exit")
    p.set_defaults(func=cmd_train)

    g = sub.add_parser("generate", help="write text with a trained run, streamed as it is sampled",
                       description="Sample from the model of RUN_DIR with your u08 generate.")
    g.add_argument("run_dir", metavar="RUN_DIR")
    g.add_argument("--prompt", default="\n", help="text to continue (default: a new line)")
    g.add_argument("--max-new-tokens", type=int, default=500, metavar="N")
    g.add_argument("--temperature", type=float, default=1.0, metavar="T")
    g.add_argument("--top-k", type=int, default=None, metavar="K")
    g.add_argument("--top-p", type=float, default=None, metavar="P")
    g.add_argument("--greedy", action="store_true", help="always the likeliest token")
    g.add_argument("--seed", type=int, default=0, metavar="S")
    g.add_argument("--device", default="cpu", choices=["cpu", "cuda", "mps"])
    _target(g)
    g.set_defaults(func=cmd_generate)

    e = sub.add_parser("eval", help="validation loss, perplexity, bits per byte (and exact match) of a run",
                       description="Evaluate the model of RUN_DIR on its held-out split with your u08 functions.")
    e.add_argument("run_dir", metavar="RUN_DIR")
    e.add_argument("--max-tokens", type=int, default=None, metavar="N", help="evaluate the first N tokens only")
    e.add_argument("--format", default="table", choices=["table", "json"])
    e.add_argument("--device", default="cpu", choices=["cpu", "cuda", "mps"])
    _target(e)
    e.set_defaults(func=cmd_eval)


def _target(p) -> None:
    p.add_argument("--target", default="exercises", metavar="T",
                   help="exercises (your code, the default), solutions (the reference) or a folder with scratchllm/")


def capstone(args):
    """(course, the target package's capstone module)."""
    course = load_course(args.course)
    pkg = load_package(resolve_target(course, args.target), course.package)
    return course, pkg, importlib.import_module(f"{pkg.__name__}.capstone")


def cmd_train(args) -> int:
    course, pkg, cap = capstone(args)
    if args.list:
        for name, preset in cap.PRESETS.items():
            print(f"{name}:\n  " + " ".join(f"{k}={v}" for k, v in preset.items()))
        return 0
    if not args.preset:
        raise UserError(f"which preset? choose one of: {', '.join(cap.PRESETS)}")
    if args.nproc < 1:
        raise UserError(f"--nproc must be at least 1, got {args.nproc}")
    if args.nproc > 1:
        if "WORLD_SIZE" in os.environ:
            raise UserError("--nproc inside torchrun: give the process count to torchrun only")
        return launch(args)
    _run(course, cap, lambda: cap.run_train(
        pkg, args.preset, args.overrides, out=args.out, resume=args.resume, device=args.device,
        precision=args.precision, max_iters=args.max_iters))
    return 0


def launch(args) -> int:
    """The same command in args.nproc processes, started by torch.distributed.run (torchrun)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.nproc}",
           "-m", "grader"]
    if args.course:
        cmd += ["--course", args.course]
    cmd += ["train", args.preset, *args.overrides, "--target", args.target, "--device", args.device,
            "--precision", args.precision]
    if args.out:
        cmd += ["--out", args.out]
    if args.resume:
        cmd.append("--resume")
    if args.max_iters is not None:
        cmd += ["--max-iters", str(args.max_iters)]
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", str(_threads(args.nproc))))
    return subprocess.run(cmd, env=env).returncode


def _threads(nproc: int) -> int:
    """CPU threads per process, so that the processes do not fight over the cores."""
    return max(1, (os.cpu_count() or 1) // nproc)


def cmd_generate(args) -> int:
    course, pkg, cap = capstone(args)
    _run(course, cap, lambda: cap.run_generate(
        pkg, args.run_dir, args.prompt, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
        top_k=args.top_k, top_p=args.top_p, greedy=args.greedy, seed=args.seed, device=args.device))
    return 0


def cmd_eval(args) -> int:
    import json

    course, pkg, cap = capstone(args)
    result = _run(course, cap, lambda: cap.run_eval(pkg, args.run_dir, device=args.device,
                                                    max_tokens=args.max_tokens))
    print(json.dumps(result, indent=1) if args.format == "json" else cap.format_table(result))
    return 0


def _run(course, cap, fn):
    """fn(), with the capstone's own errors and unfinished stubs as one-line UserErrors."""
    try:
        return fn()
    except cap.CapstoneError as e:
        raise UserError(str(e)) from None
    except NotImplementedError as e:
        raise UserError(unfinished(course, e)) from None


def unfinished(course, error: NotImplementedError) -> str:
    """Which unit a NotImplementedError comes from, named through course.toml."""
    module = None
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        if Path(frame.filename).parent.name == course.package:
            module = Path(frame.filename).stem
            break
    unit = next((u for u in course.units if module in u.modules), None)
    what = f"{course.package}/{module}.py" if module else "a module"
    where = f"unit {unit.id} ({unit.title})" if unit else "that unit"
    detail = f" ({error})" if str(error) else ""
    return (f"{what} is not finished yet{detail}: finish {where} first "
            f"(llmfs check {unit.id if unit else ''}), or run with --target solutions to use the reference")
