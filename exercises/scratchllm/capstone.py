"""The capstone: train, sample from and evaluate your own GPT.

This module is given to you complete; it has no TODO. It is what
``llmfs train``, ``llmfs generate`` and ``llmfs eval`` run, and every piece
of real work in it is yours: the tokenizer (u02), the model (u03-u06), the
loss, optimiser, schedule, checkpoints and loop (u07), the sampler and the
measures (u08). This file only wires them together:

    text --tokenizer--> token ids --split--> train / validation
    GPT(config) --train(...)--> checkpoints, history --> loss.png
    checkpoint --generate--> text;  checkpoint --perplexity--> bits per byte

A *run folder* (``runs/PRESET`` unless ``--out`` says otherwise) holds
everything needed to continue, sample or evaluate a run:

    config.json      the preset with your key=value changes, fully resolved
    tokenizer.json   the characters (char presets) or your BPE's vocab+merges
    ckpt.pt          model, optimiser, iteration, RNG states (torch.load(weights_only=True))
    history.jsonl    one JSON object per iteration: loss, lr, tokens/s, val loss
    loss.png         the training and validation loss curves
    samples.txt      text the model wrote at the end of training

Several processes. Under ``torchrun`` (or ``llmfs train --nproc N``, which
calls torchrun for you) every process runs this same code. Each builds the
same model from the same seed, wraps it in DistributedDataParallel and draws
its own batches; after every backward pass DDP averages the gradients of
all processes, so every copy of the model takes the same step, as if one
process had seen all the batches at once. Rank 0 alone writes the run folder.
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import fields
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from . import data as data_mod

CONFIG_NAME = "config.json"
TOKENIZER_NAME = "tokenizer.json"
HISTORY_NAME = "history.jsonl"
PLOT_NAME = "loss.png"
SAMPLES_NAME = "samples.txt"
TASK_SEPARATOR = "\n"  # task presets: every example is "\n" + input + target

# The presets. Every key can be changed on the command line as key=value.
# "auto" values are resolved from the others (see resolve_config).
_MODEL = dict(n_layer=4, n_head=4, d_model=128, d_ff=512, dropout=0.0, positions="learned", norm="layer",
              ffn="gelu", tie_weights=True)
_TRAIN = dict(batch_size=12, block_size=64, max_iters=2000, max_lr=1e-3, min_lr=1e-4, warmup_iters="auto",
              cosine_iters="auto", weight_decay=0.1, beta1=0.9, beta2=0.99, max_norm=1.0, eval_interval=250,
              eval_iters=100, checkpoint_interval=250, seed=1337)
PRESETS: dict[str, dict] = {
    # nanoGPT's shakespeare_char configuration, sized for a laptop's CPU.
    "shakespeare-char": dict(_MODEL, **_TRAIN, tokenizer="char", data="tinyshakespeare", val_fraction=0.1,
                             vocab_size="auto", sample_tokens=500, prompt="\n"),
    # The same model on your byte-level BPE (u02), trained on the training split and saved with the run.
    "shakespeare-bpe": dict(_MODEL, **_TRAIN, tokenizer="bpe", data="tinyshakespeare", val_fraction=0.1,
                            vocab_size=512, sample_tokens=200, prompt="\n"),
    # minGPT-style 2-digit addition: "\n" + "0745" + "250", scored by exact match of the answer.
    "addition": dict(_MODEL, **dict(_TRAIN, batch_size=32, block_size=32, max_iters=3000, eval_interval=500),
                     n_layer=2, tokenizer="task", data="addition", n_digits=2, n_examples=10000,
                     val_fraction=0.1, vocab_size="auto", sample_tokens=80, prompt="\n"),
}
# What each key means, for `llmfs train --help` and the error for an unknown key.
KEY_HELP = {
    "data": "corpus name (see `llmfs data list`) or a path to a UTF-8 text file",
    "tokenizer": "char | bpe | task", "vocab_size": "BPE vocabulary size (auto for char and task)",
    "val_fraction": "the last fraction of the text (or of the examples) held out for validation",
    "n_digits": "addition: digits per operand", "n_examples": "addition: problems generated",
    "sample_tokens": "tokens written to samples.txt at the end", "prompt": "prompt of that sample",
}
# Keys that may differ when a run is resumed: they do not change what was learned so far.
RESUMABLE_KEYS = ("max_iters", "eval_interval", "eval_iters", "checkpoint_interval", "sample_tokens", "prompt")


class CapstoneError(Exception):
    """A mistake the user can fix (unknown preset or key, missing corpus, mismatched run folder)."""


# ------------------------------------------------------------------ configuration


def _parse_value(key: str, text: str, default):
    """`text` read as the type of the preset's value for `key`."""
    try:
        if isinstance(default, bool):
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return text.lower() in ("true", "1")
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
        if default == "auto" and text != "auto":
            return int(text)
    except ValueError:
        raise CapstoneError(f"{key}={text}: expected {type(default).__name__ if default != 'auto' else 'an integer'}"
                            f" like {default!r}") from None
    return text


def parse_overrides(preset: str, pairs: list[str]) -> dict:
    """The preset's settings with `key=value` strings applied (not yet resolved)."""
    if preset not in PRESETS:
        raise CapstoneError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    config = dict(PRESETS[preset])
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise CapstoneError(f"{pair!r} is not key=value (e.g. n_layer=6)")
        if key not in config:
            raise CapstoneError(f"unknown key {key!r} for preset {preset}; known keys: {', '.join(sorted(config))}")
        config[key] = _parse_value(key, value, PRESETS[preset][key])
    config["preset"] = preset
    return config


def resolve_config(config: dict, max_iters: int | None = None) -> dict:
    """Fill in the "auto" values: cosine_iters = max_iters, warmup_iters = min(100, max_iters // 10)."""
    c = dict(config)
    if max_iters is not None:
        c["max_iters"] = max_iters
    if c["cosine_iters"] == "auto":
        c["cosine_iters"] = c["max_iters"]
    if c["warmup_iters"] == "auto":
        c["warmup_iters"] = min(100, c["cosine_iters"] // 10)
    if c["warmup_iters"] >= c["cosine_iters"] and c["cosine_iters"] > 0:
        raise CapstoneError(f"warmup_iters={c['warmup_iters']} must be smaller than cosine_iters={c['cosine_iters']}")
    if c["d_model"] % c["n_head"]:
        raise CapstoneError(f"d_model={c['d_model']} is not a multiple of n_head={c['n_head']}")
    return c


def gpt_config(pkg, c: dict):
    """Your u06 GPTConfig for the resolved settings `c`."""
    keys = ("block_size", "n_layer", "n_head", "d_model", "d_ff", "dropout", "positions", "norm", "ffn", "tie_weights")
    return pkg.model.GPTConfig(vocab_size=c["vocab_size"], **{k: c[k] for k in keys})


def train_config(pkg, c: dict, out_dir: str, *, resume: bool, device: str, precision: str, rank: int,
                 world_size: int):
    """Your u07 TrainConfig for the resolved settings `c`."""
    keys = ("batch_size", "block_size", "max_iters", "max_lr", "min_lr", "warmup_iters", "cosine_iters",
            "weight_decay", "max_norm", "eval_interval", "eval_iters", "checkpoint_interval", "seed")
    known = {f.name for f in fields(pkg.training.TrainConfig)}
    values = {k: c[k] for k in keys}
    values.update(betas=(c["beta1"], c["beta2"]), precision=precision, out_dir=out_dir, resume=resume,
                  device=device, progress=False, rank=rank, world_size=world_size)
    return pkg.training.TrainConfig(**{k: v for k, v in values.items() if k in known})


# ------------------------------------------------------------------ data and tokenizers


def load_corpus(name: str) -> str:
    """A corpus from the manifest by name, or a UTF-8 text file by path."""
    if os.sep in name or "/" in name or name.endswith(".txt") or os.path.isfile(name):
        try:
            with open(name, encoding="utf-8") as f:
                return f.read().replace("\r\n", "\n")
        except OSError as e:
            raise CapstoneError(f"cannot read data={name}: {e.strerror}") from None
    try:
        return data_mod.load_text(name)
    except data_mod.DataError as e:
        raise CapstoneError(str(e)) from None


class CharTokenizer:
    """One token per character of a fixed alphabet (the characters of the corpus)."""

    def __init__(self, chars: list[str]):
        self.chars = list(chars)
        self.stoi = {ch: i for i, ch in enumerate(self.chars)}

    def encode(self, text: str) -> list[int]:
        try:
            return [self.stoi[ch] for ch in text]
        except KeyError as e:
            raise CapstoneError(f"character {e.args[0]!r} is not in this run's vocabulary") from None

    def decode(self, ids) -> str:
        return "".join(self.chars[i] for i in ids)

    def token_bytes(self, i: int) -> int:
        return len(self.chars[i].encode("utf-8"))

    def save(self, path) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"format": "scratchllm-char-1", "chars": self.chars}, f, ensure_ascii=False, indent=1)


class BPE:
    """Your u02 Tokenizer, with the byte length of each token for bits per byte."""

    def __init__(self, tok):
        self.tok = tok

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text)

    def decode(self, ids) -> str:
        return self.tok.decode(list(ids))

    def token_bytes(self, i: int) -> int:
        return len(self.tok.vocab[i])

    def save(self, path) -> None:
        self.tok.save(path)


def build_tokenizer(pkg, c: dict, train_text: str, text: str):
    """A new tokenizer for the run: the corpus's characters, the task's symbols, or your BPE."""
    if c["tokenizer"] == "char":
        return CharTokenizer(sorted(set(text)))
    if c["tokenizer"] == "task":
        return CharTokenizer(data_mod.task_vocab(c["data"]) + [TASK_SEPARATOR])
    if c["tokenizer"] == "bpe":
        vocab, merges = pkg.tokenizer.train_bpe(train_text, c["vocab_size"])
        return BPE(pkg.tokenizer.Tokenizer(vocab, merges))
    raise CapstoneError(f"tokenizer={c['tokenizer']}: expected char, bpe or task")


def load_tokenizer(pkg, run: Path):
    path = run / TOKENIZER_NAME
    with open(path, encoding="utf-8") as f:
        head = json.load(f)
    if head.get("format") == "scratchllm-char-1":
        return CharTokenizer(head["chars"])
    return BPE(pkg.tokenizer.Tokenizer.load(path))


def task_texts(c: dict) -> tuple[str, str, list, list]:
    """A synthetic task as training text, validation text, and (train, validation) pairs."""
    pairs = data_mod.synthetic_pairs(c["data"], c["n_examples"], seed=c["seed"], n_digits=c["n_digits"])
    train_pairs, val_pairs = data_mod.split_examples(pairs, c["val_fraction"], seed=c["seed"])
    as_text = lambda ps: "".join(TASK_SEPARATOR + a + b for a, b in ps)  # noqa: E731
    return as_text(train_pairs), as_text(val_pairs), train_pairs, val_pairs


def texts_of(c: dict) -> tuple[str, str, str]:
    """(whole text, training text, validation text) of the run's data."""
    if c["tokenizer"] == "task":
        train, val, _, _ = task_texts(c)
        return train + val, train, val
    text = load_corpus(c["data"])
    train, val = data_mod.split_text(text, c["val_fraction"])
    return text, train, val


# ------------------------------------------------------------------ several processes


def setup_distributed(device: str) -> tuple[int, int, str]:
    """(rank, world size, device) of this process; joins the process group under torchrun.

    torchrun sets RANK, WORLD_SIZE, LOCAL_RANK and where to meet
    (MASTER_ADDR, MASTER_PORT); init_process_group reads them. gloo runs
    on CPUs, NCCL between GPUs (one GPU per process: cuda:LOCAL_RANK).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return 0, 1, device
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    if device.startswith("cuda"):
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    return dist.get_rank(), dist.get_world_size(), device


def barrier(world_size: int) -> None:
    if world_size > 1:
        dist.barrier()


def wrap(model: nn.Module, device: str, world_size: int) -> nn.Module:
    """The model in DistributedDataParallel when there are several processes."""
    if world_size == 1:
        return model
    ids = [torch.device(device).index] if device.startswith("cuda") else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


# ------------------------------------------------------------------ the run folder


def _write_json(path: Path, value) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=1, ensure_ascii=False)
        f.write("\n")


def read_config(run: Path) -> dict:
    path = run / CONFIG_NAME
    if not path.is_file():
        raise CapstoneError(f"{run} is not a run folder (no {CONFIG_NAME}); train one with `llmfs train PRESET`")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def resumed_config(stored: dict, preset: str, overrides: list[str], max_iters: int | None, run: Path) -> dict:
    """The stored settings of a run, with the changes that resuming allows.

    Keys in RESUMABLE_KEYS (max_iters, ...) may change; any other key given
    with a value other than the stored one would change what the run has
    learned, so it is refused.
    """
    if stored.get("preset") != preset:
        raise CapstoneError(f"{run} holds a run of preset {stored.get('preset')!r}, not {preset!r}")
    given = parse_overrides(preset, overrides)
    c = dict(stored)
    for pair in overrides:
        key = pair.partition("=")[0]
        if key in RESUMABLE_KEYS:
            c[key] = given[key]
        elif given[key] != stored.get(key):
            raise CapstoneError(f"{run} holds a checkpoint of another configuration ({key}={stored.get(key)!r} "
                                f"there, {given[key]!r} here): use another --out, or resume without "
                                f"changing {key}")
    if max_iters is not None:
        c["max_iters"] = max_iters
    return c


def plot_history(history: list[dict], path: Path, title: str) -> None:
    """The training loss (every iteration, and smoothed) and the validation loss, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    its = [r["iteration"] + 1 for r in history]
    losses = [r["train_loss"] for r in history]
    smooth, avg = [], None
    for v in losses:
        avg = v if avg is None else 0.95 * avg + 0.05 * v
        smooth.append(avg)
    val = [(r["iteration"] + 1, r["val_loss"]) for r in history if r.get("val_loss") is not None]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(its, losses, color="tab:blue", alpha=0.25, linewidth=0.8, label="train (batch)")
    ax.plot(its, smooth, color="tab:blue", label="train (smoothed)")
    if val:
        ax.plot(*zip(*val), "o-", color="tab:orange", label="validation")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss (nats per token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


class RunLog:
    """Rank 0's view of training: a tqdm bar and history.jsonl, one record per iteration."""

    def __init__(self, run: Path, start: int, total: int, enabled: bool):
        from tqdm.auto import tqdm

        self.enabled = enabled
        self.path = run / HISTORY_NAME
        self.bar = tqdm(total=total, initial=start, disable=not enabled, unit="it", dynamic_ncols=True)
        if enabled:
            kept = []
            if start and self.path.is_file():  # a resumed run: keep the records before the checkpoint
                with open(self.path, encoding="utf-8") as f:
                    kept = [line for line in f if line.strip() and json.loads(line)["iteration"] < start]
            with open(self.path, "w", encoding="utf-8") as f:
                f.writelines(kept)

    def __call__(self, record: dict, model) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{record['train_loss']:.4f}", lr=f"{record['lr']:.2e}",
                             tok_s=f"{record['tokens_per_s']:.0f}")
        if record.get("val_loss") is not None:
            self.bar.write(f"iteration {record['iteration'] + 1}: train loss {record['train_loss']:.4f}, "
                           f"val loss {record['val_loss']:.4f}")

    def records(self) -> list[dict]:
        if not self.path.is_file():
            return []
        with open(self.path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]

    def close(self) -> None:
        self.bar.close()


# ------------------------------------------------------------------ train


def new_model(pkg, c: dict) -> nn.Module:
    """Your GPT for the settings, initialised from the run's seed (the same in every process)."""
    torch.manual_seed(c["seed"])
    return pkg.model.GPT(gpt_config(pkg, c))


def run_train(pkg, preset: str, overrides: list[str], *, out: str | None = None, resume: bool = False,
              device: str = "cpu", precision: str = "fp32", max_iters: int | None = None,
              echo=print) -> dict:
    """`llmfs train`: train a preset into a run folder; returns the final validation figures."""
    c = parse_overrides(preset, overrides)
    run = Path(out if out is not None else os.path.join("runs", preset))
    rank, world_size, device = setup_distributed(device)
    writer = rank == 0
    ckpt_path = run / pkg.training.CHECKPOINT_NAME
    if resume:
        if not ckpt_path.is_file():
            raise CapstoneError(f"--resume: no checkpoint at {ckpt_path}; train without --resume first")
        c = resumed_config(read_config(run), preset, overrides, max_iters, run)
    else:
        if ckpt_path.is_file():
            raise CapstoneError(f"{run} already holds a run: add --resume to continue it, or choose another --out")
        c = resolve_config(c, max_iters)
    if c["vocab_size"] == "auto" and c["tokenizer"] == "bpe":
        raise CapstoneError("tokenizer=bpe needs vocab_size=N (e.g. 512)")

    text, train_text, val_text = texts_of(c)
    if writer and not resume:
        run.mkdir(parents=True, exist_ok=True)
        echo(f"{preset}: {len(text):,} characters of {c['data']}, tokenizer {c['tokenizer']}")
        build_tokenizer(pkg, c, train_text, text).save(run / TOKENIZER_NAME)
    barrier(world_size)
    tok = load_tokenizer(pkg, run)
    train_ids = torch.tensor(tok.encode(train_text), dtype=torch.long)
    val_ids = torch.tensor(tok.encode(val_text), dtype=torch.long)
    if not resume:
        c["vocab_size"] = (len(tok.chars) if isinstance(tok, CharTokenizer)
                           else max(tok.tok.vocab) + 1)
        if writer:
            _write_json(run / CONFIG_NAME, c)
    model = new_model(pkg, c).to(device)
    if writer:
        echo(f"model: {model.num_parameters():,} parameters; {len(train_ids):,} training and "
             f"{len(val_ids):,} validation tokens; {world_size} process(es) on {device}")
    start = 0
    if resume:
        start = int(torch.load(ckpt_path, map_location="cpu", weights_only=True)["iteration"])
        try:  # fail here, in words, rather than deep inside load_checkpoint
            model.load_state_dict(torch.load(ckpt_path, map_location="cpu", weights_only=True)["model"])
        except RuntimeError:
            raise CapstoneError(f"{ckpt_path} does not fit the model of {run / CONFIG_NAME}: "
                                f"it comes from another configuration") from None
    cfg = train_config(pkg, c, str(run), resume=resume, device=device, precision=precision, rank=rank,
                       world_size=world_size)
    log = RunLog(run, start, c["max_iters"], writer)
    interrupted = False
    try:
        pkg.training.train(wrap(model, device, world_size), train_ids, val_ids, cfg, callbacks=[log])
    except KeyboardInterrupt:
        interrupted = True
    finally:
        log.close()
    if not interrupted:
        barrier(world_size)
    history = log.records() if writer else []
    if writer and history:
        plot_history(history, run / PLOT_NAME, f"{preset}: {model.num_parameters():,} parameters")
    if interrupted:
        if writer:
            echo(f"interrupted: the checkpoint in {run} is resumable with "
                 f"`llmfs train {preset} --out {run} --resume`")
        raise KeyboardInterrupt
    result = {}
    if writer:
        model.eval()
        result = evaluate(pkg, model, tok, c, val_text)
        sample = write_sample(pkg, model, tok, c)
        with open(run / SAMPLES_NAME, "w", encoding="utf-8") as f:
            f.write(sample + "\n")
        echo(format_table(result))
        echo(f"sample ({run / SAMPLES_NAME}):\n{sample}")
        echo(f"run folder: {run}")
    barrier(world_size)
    return result


def write_sample(pkg, model, tok, c: dict) -> str:
    gen = torch.Generator().manual_seed(c["seed"])
    device = next(model.parameters()).device
    idx = torch.tensor([tok.encode(c["prompt"])], dtype=torch.long, device=device)
    out = pkg.generation.generate(model, idx, c["sample_tokens"], temperature=1.0, generator=gen)
    return tok.decode(out[0].tolist())


# ------------------------------------------------------------------ eval


def evaluate(pkg, model, tok, c: dict, val_text: str, max_tokens: int | None = None) -> dict:
    """Validation loss, perplexity and bits per byte (your u08 functions), and exact match for tasks."""
    ids = tok.encode(val_text)
    if max_tokens is not None:
        ids = ids[:max_tokens]
    device = next(model.parameters()).device
    ppl = pkg.generation.perplexity(model, torch.tensor(ids, dtype=torch.long, device=device), c["block_size"])
    loss = math.log(ppl)
    n_bytes = sum(tok.token_bytes(i) for i in ids[1:])  # the bytes of the tokens that were scored
    result = {"tokens": len(ids), "val_loss": loss, "perplexity": ppl,
              "bits_per_byte": pkg.generation.bits_per_byte(loss * (len(ids) - 1), n_bytes)}
    if c["tokenizer"] == "task":
        _, _, _, val_pairs = task_texts(c)
        pairs = [(TASK_SEPARATOR + a, b) for a, b in val_pairs]
        result["exact_match"] = pkg.generation.exact_match(model, pairs, tok.encode, tok.decode)
        result["problems"] = len(pairs)
    return result


def format_table(result: dict) -> str:
    labels = {"tokens": "validation tokens", "val_loss": "validation loss (nats/token)",
              "perplexity": "perplexity", "bits_per_byte": "bits per byte", "exact_match": "exact match",
              "problems": "held-out problems"}
    width = max(len(labels[k]) for k in result)
    lines = []
    for k, v in result.items():
        shown = f"{v:,}" if isinstance(v, int) else f"{v:.2%}" if k == "exact_match" else f"{v:.4f}"
        lines.append(f"{labels[k]:<{width}}  {shown}")
    return "\n".join(lines)


def load_run(pkg, run_dir: str, device: str = "cpu"):
    """(model in eval mode, tokenizer, config) of a run folder."""
    run = Path(run_dir)
    c = read_config(run)
    ckpt_path = run / pkg.training.CHECKPOINT_NAME
    if not ckpt_path.is_file():
        raise CapstoneError(f"{run} has no checkpoint yet ({ckpt_path})")
    tok = load_tokenizer(pkg, run)
    model = new_model(pkg, c)
    try:
        model.load_state_dict(torch.load(ckpt_path, map_location="cpu", weights_only=True)["model"])
    except RuntimeError:
        raise CapstoneError(f"{ckpt_path} does not fit the model of {run / CONFIG_NAME}: "
                            f"it comes from another configuration") from None
    return model.to(device).eval(), tok, c


def run_eval(pkg, run_dir: str, *, device: str = "cpu", max_tokens: int | None = None) -> dict:
    """`llmfs eval`: the figures of a trained run on its held-out split."""
    model, tok, c = load_run(pkg, run_dir, device)
    _, _, val_text = texts_of(c)
    with torch.no_grad():
        return evaluate(pkg, model, tok, c, val_text, max_tokens)


# ------------------------------------------------------------------ generate


def run_generate(pkg, run_dir: str, prompt: str, *, max_new_tokens: int = 500, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None, greedy: bool = False,
                 seed: int = 0, device: str = "cpu", out=None) -> str:
    """`llmfs generate`: write text after `prompt`, printing each piece as soon as it is decided.

    One token per call of your u08 `generate`, with the same generator
    throughout: the text is the same as one call for all the tokens.
    """
    out = out or sys.stdout
    model, tok, c = load_run(pkg, run_dir, device)
    gen = torch.Generator(device=device).manual_seed(seed)
    ids = tok.encode(prompt)
    if not ids:
        raise CapstoneError("the prompt is empty after tokenization; give at least one character")
    idx = torch.tensor([ids], dtype=torch.long, device=device)
    out.write(prompt)
    out.flush()
    shown = ""
    for _ in range(max_new_tokens):
        idx = pkg.generation.generate(model, idx, 1, temperature=temperature, top_k=top_k, top_p=top_p,
                                      greedy=greedy, generator=gen)
        text = tok.decode(idx[0, len(ids):].tolist())
        if not text.endswith("\ufffd"):  # wait for the rest of a character split across tokens
            out.write(text[len(shown):])
            out.flush()
            shown = text
    text = tok.decode(idx[0, len(ids):].tolist())
    out.write(text[len(shown):] + "\n")
    out.flush()
    return prompt + text
