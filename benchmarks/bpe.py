"""Byte-level BPE training speed: scratchllm's train_bpe against HF tokenizers.

    python benchmarks/bpe.py CORPUS [--vocab 1024] [--target solutions]

Trains three tokenizers on the same UTF-8 text file at the same vocabulary
size and prints their times and compression (bytes per token, measured on
the corpus itself):

- HF `tokenizers`: BpeTrainer with the ByteLevel pre-tokenizer and all 256
  bytes as the alphabet, no minimum frequency. The baseline: Rust, threaded.
- scratchllm's `train_bpe` from --target (default: the reference solution
  where there is one, else exercises/; or a folder holding scratchllm/),
  pure Python.
- the obvious implementation (`obvious_train_bpe` below), which recounts
  every pair after every merge, on a prefix of the corpus when the corpus is
  large (the output says so), next to train_bpe on that same prefix.

The goal for the reference: within 3x of HF's time, with equal or better
compression. Any text file works as CORPUS, e.g. tinyshakespeare.txt
(`llmfs data prepare tinyshakespeare`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

import regex

ROOT = Path(__file__).resolve().parent.parent
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def load_scratchllm(target: str):
    """scratchllm.tokenizer from a target: 'solutions', 'exercises' or a folder."""
    sys.path.insert(0, str(ROOT))
    from grader.course import load_course
    from grader.targets import load_package, resolve_target

    course = load_course(ROOT / "course.toml")
    package = load_package(resolve_target(course, target), "scratchllm")
    from scratchllm import tokenizer  # noqa: E402  (the package just loaded)

    return package, tokenizer


def obvious_train_bpe(text, vocab_size, special_tokens=()):
    """BPE training, as plainly as possible: recount every pair after every merge.

    It lives here, not in the public tests: students receive those, and it is a solution.
    """
    vocab = {i: bytes([i]) for i in range(256)}
    for s in special_tokens:
        vocab[len(vocab)] = s.encode("utf-8")
    pieces = [text]
    if special_tokens:
        longest_first = sorted(special_tokens, key=len, reverse=True)
        pieces = regex.split("|".join(regex.escape(s) for s in longest_first), text)
    word_counts = Counter(w for piece in pieces for w in regex.findall(GPT2_PATTERN, piece))
    words = {tuple(bytes([b]) for b in w.encode("utf-8")): n for w, n in word_counts.items()}
    merges = []
    while len(vocab) < vocab_size:
        pairs = Counter()
        for word, n in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += n
        if not pairs:
            break
        best = max(pairs, key=lambda pair: (pairs[pair], pair))
        merges.append(best)
        vocab[len(vocab)] = best[0] + best[1]
        words = {merged(word, best): n for word, n in words.items()}
    return vocab, merges


def merged(word, pair):
    out, i = [], 0
    while i < len(word):
        if word[i:i + 2] == pair:
            out.append(pair[0] + pair[1])
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def load_obvious():
    """(obvious_train_bpe, None): kept as a function for the callers below."""
    return obvious_train_bpe, None


def best_time(fn, repeat: int):
    """(fastest wall-clock seconds over `repeat` runs, the last result)."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def train_hf(path: Path, vocab_size: int):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train([str(path)], trainer)
    return tok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="See the module docstring of benchmarks/bpe.py for details.")
    parser.add_argument("corpus", type=Path, help="a UTF-8 text file to train on")
    parser.add_argument("--vocab", type=int, default=1024, help="vocabulary size, bytes included (default 1024)")
    parser.add_argument("--target", default="solutions" if (ROOT / "solutions").is_dir() else "exercises",
                        help="whose train_bpe to time: 'solutions' (the default where there is one), "
                             "'exercises' or a folder holding scratchllm/")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of HF and train_bpe; the fastest counts (default 3)")
    parser.add_argument("--obvious-chars", type=int, default=100_000,
                        help="train the obvious implementation on at most this many characters "
                             "(default 100000; 0 skips it)")
    args = parser.parse_args(argv)

    text = args.corpus.read_text(encoding="utf-8")
    n_bytes = len(text.encode("utf-8"))
    print(f"corpus {args.corpus.name}: {len(text):,} characters, {n_bytes:,} bytes; "
          f"vocab size {args.vocab}; {os.cpu_count()} CPUs")

    hf_s, hf = best_time(lambda: train_hf(args.corpus, args.vocab), args.repeat)
    hf_bpt = n_bytes / len(hf.encode(text).ids)
    print(f"  HF tokenizers BpeTrainer    {hf_s:8.2f} s   {hf_bpt:.4f} bytes/token   (baseline)")

    _, tokenizer = load_scratchllm(args.target)
    try:
        ours_s, (vocab, merges) = best_time(lambda: tokenizer.train_bpe(text, args.vocab), args.repeat)
    except NotImplementedError as e:
        print(f"  train_bpe ({args.target}): not written yet ({e})")
        return 1
    ours_bpt = n_bytes / len(tokenizer.Tokenizer(vocab, merges).encode(text))
    label = f"train_bpe ({args.target})"
    print(f"  {label:<27} {ours_s:8.2f} s   {ours_bpt:.4f} bytes/token   "
          f"{ours_s / hf_s:.2f}x HF's time, {ours_bpt / hf_bpt:.4f}x HF's bytes/token")

    obvious, why_not = load_obvious() if args.obvious_chars > 0 else (None, "--obvious-chars 0")
    if obvious is None:
        print(f"  obvious implementation: skipped ({why_not})")
        return 0
    prefix = text[:args.obvious_chars]
    where = "the whole corpus" if len(prefix) == len(text) else f"only the first {len(prefix):,} characters"
    slow_s, _ = best_time(lambda: obvious(prefix, args.vocab), 1)
    fast_s, _ = best_time(lambda: tokenizer.train_bpe(prefix, args.vocab), args.repeat)
    print(f"  obvious implementation      {slow_s:8.2f} s   on {where}; train_bpe on the same text: "
          f"{fast_s:.2f} s, {slow_s / fast_s:.0f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
