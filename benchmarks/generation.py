"""Generation speed: KV-cache decoding against recomputing the whole prefix.

    python benchmarks/generation.py [--target solutions] [--lengths 16,64,128,256,448]

For each prompt length, generates the same number of new tokens greedily
with scratchllm's `generate` twice, from the same model and prompt:

- use_cache=False, the baseline: every step runs the GPT on the whole
  context again (what nanoGPT's generate does);
- use_cache=True: the prompt is fed once, then one token per step, attending
  to the cached keys and values.

It prints tokens per second for both and their ratio, measured in the same
run on one thread (--threads), and checks that both wrote the same tokens.
Each step without the cache costs about as much as the context is long;
with it, the step's projections and feed-forward are those of one token, so
the ratio should grow with the prompt length. The model is a GPT of the
default GPTConfig shape (4 layers, d_model 128) with block_size 512, random
weights, in eval mode; its timing includes the prompt's prefill.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_scratchllm(target: str):
    """scratchllm.model and scratchllm.generation from a target: 'solutions', 'exercises' or a folder."""
    sys.path.insert(0, str(ROOT))
    from grader.course import load_course
    from grader.targets import import_modules, load_package, resolve_target

    course = load_course(ROOT / "course.toml")
    package = load_package(resolve_target(course, target), "scratchllm")
    import_modules(package, ["model", "generation"])
    return package.model, package.generation


def best_time(fn, repeat: int):
    """(fastest wall-clock seconds over `repeat` runs, the last result)."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="See the module docstring of benchmarks/generation.py for details.")
    parser.add_argument("--target", default="solutions" if (ROOT / "solutions").is_dir() else "exercises",
                        help="whose model and generate to time: 'solutions' (the default where there is one), "
                             "'exercises' or a folder holding scratchllm/")
    parser.add_argument("--lengths", default="16,64,128,256,448",
                        help="prompt lengths, comma-separated; each plus --new must fit in --block-size")
    parser.add_argument("--new", type=int, default=48, help="new tokens per generation (default 48)")
    parser.add_argument("--block-size", type=int, default=512, help="the model's block_size (default 512)")
    parser.add_argument("--batch", type=int, default=1, help="prompts generated side by side (default 1)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the fastest counts (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, for steady timings)")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    lengths = [int(x) for x in args.lengths.split(",")]
    if max(lengths) + args.new > args.block_size:
        parser.error(f"prompt {max(lengths)} + {args.new} new tokens do not fit in block_size {args.block_size}")

    model_mod, generation = load_scratchllm(args.target)
    config = model_mod.GPTConfig(block_size=args.block_size)
    torch.manual_seed(0)
    try:
        model = model_mod.GPT(config).eval()
    except NotImplementedError as e:
        print(f"GPT ({args.target}): not written yet ({e})")
        return 1
    print(f"GPT: {config.n_layer} layers, d_model {config.d_model}, {config.n_head} heads, vocab "
          f"{config.vocab_size}, block_size {config.block_size}, {model.num_parameters():,} parameters; "
          f"target {args.target}; batch {args.batch}; {args.new} new tokens; {args.threads} thread(s) "
          f"of {os.cpu_count()} CPUs")
    print(f"  {'prompt':>6}   {'recompute tok/s':>15}   {'KV cache tok/s':>14}   {'speed-up':>8}")

    g = torch.Generator().manual_seed(1)
    for T in lengths:
        prompt = torch.randint(0, config.vocab_size, (args.batch, T), generator=g)
        try:
            plain_s, plain = best_time(lambda p=prompt: generation.generate(model, p, args.new, greedy=True,
                                                                            use_cache=False), args.repeat)
            cached_s, cached = best_time(lambda p=prompt: generation.generate(model, p, args.new, greedy=True,
                                                                              use_cache=True), args.repeat)
        except NotImplementedError as e:
            print(f"  generate ({args.target}): not written yet ({e})")
            return 1
        same = "" if torch.equal(plain, cached) else "   (the two wrote different tokens!)"
        n = args.batch * args.new
        print(f"  {T:>6}   {n / plain_s:>15.1f}   {n / cached_s:>14.1f}   {plain_s / cached_s:>7.2f}x{same}")
    print("speed-up = recompute time / KV-cache time for the same tokens (baseline: recompute)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
