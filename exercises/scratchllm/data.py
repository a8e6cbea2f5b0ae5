"""Data: text corpora, train/validation splits and synthetic tasks.

This module is given to you complete; it has no TODO. Later units and the
capstone use it to get text to train on and small tasks to test a model with.

Corpora
-------
Every corpus is listed in the course's ``datasets/manifest.toml`` with its
source, licence and SHA-256 hash, a 64-hex-digit fingerprint of the file's
bytes. A corpus that is a file is prepared once, on the command line
(``llmfs data list`` shows them, ``llmfs data prepare shakespeare-plays``
makes one), and then loaded by name: ``load_text("shakespeare-plays")``.
Checking the hash on every load means everybody trains on exactly the same
text: a truncated download or an edited copy is caught, not learned from.

Splits
------
A language model is judged on text it never trained on. ``split_text`` cuts
a text (or a list of token ids) by position: the first part trains, the last
``val_fraction`` validates. ``split_examples`` deals a list of examples into
two groups by a seeded shuffle. Both are deterministic: the same inputs give
the same split on every machine.

Synthetic tasks
---------------
Small tasks with exactly one right answer show whether a model learned an
algorithm rather than a texture: ``addition_pairs`` (in the style of minGPT's
adder), ``reversal_pairs`` and ``sorting_pairs``. Each returns distinct
``(input, target)`` string pairs, generated from a seed. The model reads
``input + target`` and is scored only on the target: ``encode_pair`` builds
that training example and ``exact_match_accuracy`` scores predictions.
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
from pathlib import Path
from typing import Sequence, TypeVar

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # Python 3.10: tomli comes with llmfs
    import tomli as tomllib

DATA_ENV = "LLMFS_DATA"          # environment variable naming the data folder
DIGITS = "0123456789"
IGNORE_INDEX = -100              # a target the loss skips (torch's cross_entropy default)

T = TypeVar("T")


class DataError(Exception):
    """A data problem you can fix; the message says how, in one line."""


# ------------------------------------------------------------------ corpora


def find_manifest() -> Path:
    """datasets/manifest.toml of the course this module belongs to.

    Searched upwards from this file, then from the current folder.
    """
    for start in (Path(__file__).resolve().parent, Path.cwd().resolve()):
        for folder in (start, *start.parents):
            candidate = folder / "datasets" / "manifest.toml"
            if candidate.is_file():
                return candidate
    raise DataError("cannot find datasets/manifest.toml: run this from inside the course folder")


def _file_and_hash(name: str, manifest: str | Path | None) -> tuple[str, str]:
    """(file name, sha256) of corpus `name`; `llmfs data list` checks the rest of the manifest."""
    path = Path(manifest) if manifest is not None else find_manifest()
    try:
        corpora = {c["name"]: c for c in tomllib.loads(path.read_text(encoding="utf-8-sig"))["corpus"]}
    except (OSError, ValueError, KeyError, TypeError) as e:  # ValueError: not UTF-8, not TOML
        raise DataError(f"cannot read the corpora in {path} ({e}): `llmfs data list` says more") from None
    if name not in corpora:
        raise DataError(f"no corpus called {name!r}; known: {', '.join(map(str, corpora))}")
    corpus = corpora[name]
    if corpus.get("kind") == "synthetic":
        raise DataError(f"{name} is a synthetic task with no text: call {corpus.get('generator')}() instead")
    if not isinstance(corpus.get("file"), str) or not isinstance(corpus.get("sha256"), str):
        raise DataError(f"{path}: corpus {name!r} has no file or sha256: `llmfs data list` says more")
    return corpus["file"], corpus["sha256"]


def data_dir(directory: str | Path | None = None, root: str | Path | None = None) -> Path:
    """The folder prepared corpora live in.

    `directory` if given, else $LLMFS_DATA if set, else ``data/`` in the
    course folder (`root`, found from the manifest when not given).
    """
    if directory is not None and str(directory) != "":
        return Path(directory).expanduser()
    env = os.environ.get(DATA_ENV, "")
    if env:
        return Path(env).expanduser()
    if root is None:
        root = find_manifest().parent.parent
    return Path(root) / "data"


def corpus_path(name: str, directory: str | Path | None = None,
                manifest: str | Path | None = None) -> Path:
    """Where the prepared file of corpus `name` lives (it may not exist yet)."""
    return data_dir(directory) / _file_and_hash(name, manifest)[0]


def load_text(name: str, directory: str | Path | None = None, *, verify: bool = True,
              manifest: str | Path | None = None) -> str:
    """The prepared text of corpus `name`, as one str with ``\\n`` line endings.

    If it is not prepared yet, the error says which ``llmfs data prepare``
    to run. With `verify` (the default) the file's sha256 is checked first.
    """
    file, sha256 = _file_and_hash(name, manifest)
    path = data_dir(directory) / file
    prepare = f"llmfs data prepare {name}" + (f" --dir {directory}" if directory not in (None, "") else "")
    if not path.is_file():
        raise DataError(f"{name} is not prepared (no {path}): run `{prepare}`")
    data = path.read_bytes()
    got = hashlib.sha256(data).hexdigest()
    if verify and got != sha256:
        raise DataError(f"{path} is not the expected {name} (sha256 {got}, expected {sha256}): "
                        f"run `{prepare} --force`")
    return data.decode("utf-8").replace("\r\n", "\n")


# ------------------------------------------------------------------ splits


def split_text(text: Sequence[T], val_fraction: float = 0.1) -> tuple[Sequence[T], Sequence[T]]:
    """Cut `text` by position into (train, validation).

    The last ``round(len(text) * val_fraction)`` items validate, the rest
    train: ``train + val == text``. Works for a str, a list of token ids, or
    a 1-D tensor. Cutting by position, not at random, keeps the validation
    text a continuous passage the model has never seen any part of.
    """
    if not 0.0 <= val_fraction <= 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    n_val = round(len(text) * val_fraction)
    cut = len(text) - n_val
    return text[:cut], text[cut:]


def split_examples(examples: Sequence[T], val_fraction: float = 0.1,
                   seed: int = 0) -> tuple[list[T], list[T]]:
    """Deal `examples` into (train, validation) by a shuffle seeded with `seed`.

    ``round(len(examples) * val_fraction)`` examples validate. Every example
    lands in exactly one of the two lists, which keep the original order.
    The same seed gives the same split everywhere.
    """
    if not 0.0 <= val_fraction <= 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    val_idx = set(order[:round(len(examples) * val_fraction)])
    train = [x for i, x in enumerate(examples) if i not in val_idx]
    val = [x for i, x in enumerate(examples) if i in val_idx]
    return train, val


# ------------------------------------------------------------------ synthetic tasks


def _distinct(count: int, space: int, seed: int) -> list[int]:
    """`count` distinct integers from range(space), chosen by `seed`."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if count > space:
        raise ValueError(f"asked for {count} distinct examples, but only {space} exist")
    return random.Random(seed).sample(range(space), count)


def _sequence(code: int, alphabet: str, length: int) -> str:
    """The `code`-th sequence of `length` symbols (code written in base len(alphabet))."""
    out = []
    for _ in range(length):
        code, r = divmod(code, len(alphabet))
        out.append(alphabet[r])
    return "".join(out)


def _sequences(count: int, length: int, alphabet: str, seed: int) -> list[str]:
    """`count` distinct sequences of `length` symbols from `alphabet`, chosen by `seed`."""
    if len(alphabet) < 1 or len(set(alphabet)) != len(alphabet):
        raise ValueError(f"alphabet must be distinct characters, got {alphabet!r}")
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    if len(alphabet) ** length > sys.maxsize:
        raise ValueError(f"{len(alphabet)}**{length} sequences are too many to sample from")
    return [_sequence(code, alphabet, length) for code in _distinct(count, len(alphabet) ** length, seed)]


def addition_problem(a: int, b: int, n_digits: int) -> tuple[str, str]:
    """The pair (input, target) that asks for a + b.

    input:  a and b, each written with exactly `n_digits` digits (zero-padded),
            side by side: 2 * n_digits characters.
    target: a + b written with n_digits + 1 digits (zero-padded), then
            reversed, least significant digit first: n_digits + 1 characters.

    Example, n_digits = 2: 7 + 45 = 52 gives ("0745", "250").

    Why reversed? A model writes its answer left to right. Written least
    significant digit first, each digit depends only on digits the model has
    already seen and the carry from the one it just wrote, the order you
    add by hand.
    """
    if not (0 <= a < 10 ** n_digits and 0 <= b < 10 ** n_digits):
        raise ValueError(f"a = {a} and b = {b} must both have at most {n_digits} digits")
    return f"{a:0{n_digits}d}{b:0{n_digits}d}", f"{a + b:0{n_digits + 1}d}"[::-1]


def parse_addition(input: str) -> tuple[int, int]:
    """The operands (a, b) of an addition input: its two halves."""
    n = len(input) // 2
    if len(input) != 2 * n or n == 0 or not input.isdigit():
        raise ValueError(f"an addition input is 2n digits, got {input!r}")
    return int(input[:n]), int(input[n:])


def addition_answer(target: str) -> int:
    """The number an addition target (or a model's prediction of it) stands for."""
    if not target.isdigit():
        raise ValueError(f"an addition target is digits, got {target!r}")
    return int(target[::-1])


def addition_pairs(count: int, n_digits: int = 2, seed: int = 0) -> list[tuple[str, str]]:
    """`count` distinct addition problems of `n_digits`-digit numbers, in the style of minGPT's adder.

    Each pair is ``addition_problem(a, b, n_digits)`` for a, b drawn from
    0 .. 10**n_digits - 1, 1 <= n_digits <= 9. No problem appears twice, so
    ``split_examples`` gives train and validation sets that share none.
    """
    if not 1 <= n_digits <= 9:
        raise ValueError(f"n_digits must be between 1 and 9, got {n_digits}")
    size = 10 ** n_digits
    return [addition_problem(code // size, code % size, n_digits)
            for code in _distinct(count, size * size, seed)]


def reversal_pairs(count: int, length: int = 6, alphabet: str = DIGITS,
                   seed: int = 0) -> list[tuple[str, str]]:
    """`count` distinct (sequence, the sequence reversed) pairs.

    input:  `length` symbols drawn from `alphabet`, e.g. "301994";
    target: the same symbols in reverse order, e.g. "499103".
    """
    return [(s, s[::-1]) for s in _sequences(count, length, alphabet, seed)]


def sorting_pairs(count: int, length: int = 6, alphabet: str = DIGITS,
                  seed: int = 0) -> list[tuple[str, str]]:
    """`count` distinct (sequence, the sequence sorted) pairs.

    input:  `length` symbols drawn from `alphabet`, e.g. "301994";
    target: the same symbols sorted in the order of `alphabet` (ascending
            digits by default), repeats kept, e.g. "013499".
    """
    rank = {c: i for i, c in enumerate(alphabet)}
    return [(s, "".join(sorted(s, key=rank.__getitem__))) for s in _sequences(count, length, alphabet, seed)]


SYNTHETIC_TASKS = {"addition": addition_pairs, "reversal": reversal_pairs, "sorting": sorting_pairs}


def _check_task(task: str) -> None:
    if task not in SYNTHETIC_TASKS:
        raise ValueError(f"no synthetic task {task!r}; known: {', '.join(SYNTHETIC_TASKS)}")


def synthetic_pairs(task: str, count: int, seed: int = 0, **options) -> list[tuple[str, str]]:
    """`count` pairs of the task called `task` ("addition", "reversal", "sorting").

    `options` go to its generator (n_digits for addition; length and
    alphabet for reversal and sorting).
    """
    _check_task(task)
    return SYNTHETIC_TASKS[task](count, seed=seed, **options)


def task_vocab(task: str, alphabet: str = DIGITS) -> list[str]:
    """The characters a task's inputs and targets are made of, in a fixed order.

    Addition always uses the ten digits; reversal and sorting use `alphabet`.
    Token id i stands for ``task_vocab(...)[i]``.
    """
    _check_task(task)
    return list(DIGITS if task == "addition" else alphabet)


def encode_pair(input: str, target: str, vocab: Sequence[str]) -> tuple[list[int], list[int]]:
    """A training example (x, y) for next-token prediction that scores only the target.

    The sequence is ``input + target`` as token ids (id = position in
    `vocab`). ``x`` is the sequence without its last token, ``y`` without its
    first: ``y[t]`` is the token that follows ``x[:t + 1]``. Where ``y[t]``
    is still part of the input, it is IGNORE_INDEX (-100), which
    ``F.cross_entropy`` skips: the model is never asked to predict the
    random operands, only the answer. Both lists have length
    ``len(input) + len(target) - 1``.

    Example, vocab = digits: ("0745", "250") gives
    x = [0, 7, 4, 5, 2, 5] and y = [-100, -100, -100, 2, 5, 0].
    """
    stoi = {c: i for i, c in enumerate(vocab)}
    try:
        ids = [stoi[c] for c in input + target]
    except KeyError as e:
        raise ValueError(f"character {e.args[0]!r} of {input + target!r} is not in the vocabulary") from None
    if not input or not target:
        raise ValueError("input and target must both be non-empty")
    y = ids[1:]
    for t in range(len(input) - 1):
        y[t] = IGNORE_INDEX
    return ids[:-1], y


def exact_match_accuracy(predictions: Sequence[str], targets: Sequence[str]) -> float:
    """The fraction of predictions equal to their target, character for character.

    A prediction with one wrong digit, or one digit too many, counts as wrong:
    for these tasks an answer is right or it is not.
    """
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} predictions for {len(targets)} targets")
    if not targets:
        raise ValueError("no targets to score")
    return sum(p == t for p, t in zip(predictions, targets)) / len(targets)
