"""Measure the figures the u09 tests compare with: `python tests/measure_u09.py`.

Prints, for the reference solution on one thread (as the grader's worker
runs), what FLOOR and REFERENCE in grader/hidden/test_u09_capstone_hidden.py
and REFERENCE_LOSS in exercises/tests/test_u09_capstone.py hold: the held-out
bits per byte of an untrained and of a trained model, the exact match on the
held-out additions, the public test's held-out loss, and the CPU seconds each
training takes. Not a test: run it by hand after changing a configuration or
the reference, and copy the figures into the two test files.
"""

from __future__ import annotations

import importlib.util
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader.course import load_course  # noqa: E402
from grader.targets import load_package, resolve_target  # noqa: E402


def module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main() -> None:
    torch.set_num_threads(1)
    pkg = load_package(resolve_target(load_course(ROOT / "course.toml"), "solutions"), "scratchllm_measure")
    for m in ("tokenizer", "model", "training", "generation", "data"):
        __import__(f"scratchllm_measure.{m}")
    H = module(ROOT / "grader" / "hidden" / "test_u09_capstone_hidden.py", "u09_hidden")
    P = module(ROOT / "exercises" / "tests" / "test_u09_capstone.py", "u09_public")

    untrained = H.text_probe(pkg, H.TRAIN_TEXT, H.BPE_VOCAB, H.TEXT_MODEL, dict(H.TEXT_TRAIN, max_iters=0))
    print(f"hidden, untrained: {H.bits_per_byte_judge(pkg, untrained, H.HELDOUT_TEXT, H.TEXT_MODEL):.4f} bits per byte")
    t0 = time.process_time()
    result = H.text_probe(pkg, H.TRAIN_TEXT, H.BPE_VOCAB, H.TEXT_MODEL, H.TEXT_TRAIN)
    t1 = time.process_time()
    print(f"hidden, reference: {H.bits_per_byte_judge(pkg, result, H.HELDOUT_TEXT, H.TEXT_MODEL):.4f} bits per byte "
          f"({t1 - t0:.1f} s CPU to train)")
    train, held = H.addition_split()
    t0 = time.process_time()
    state = H.addition_probe(pkg, train, H.ADD_ALPHABET, H.ADD_MODEL, **H.ADD_TRAIN)
    t1 = time.process_time()
    print(f"hidden, reference: exact match {H.exact_match_judge(pkg, state, held, H.ADD_ALPHABET, H.ADD_MODEL):.4f} "
          f"({t1 - t0:.1f} s CPU to train)")
    t0 = time.process_time()
    state = P.train_probe(pkg, P.TRAIN_TEXT, P.CHARS, P.SHAPE, P.TRAIN)
    t1 = time.process_time()
    heldout = torch.tensor([P.CHARS.index(c) for c in P.HELDOUT_TEXT])
    print(f"public, reference: held-out loss {P.torch_gpt_loss(state, P.SHAPE, heldout):.4f} nats per character "
          f"(untrained {math.log(len(P.CHARS)):.4f}; {t1 - t0:.1f} s CPU to train)")


if __name__ == "__main__":
    main()
