# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Unit u09: the capstone, train your own LLM
#
# There is nothing new to write: `llmfs train`, `llmfs generate` and `llmfs eval`
# run *your* package, your tokenizer (u02), model (u03 to u06), training loop (u07)
# and sampler (u08), wired together by the given `scratchllm/capstone.py`. The
# reading (`exercises/units/u09_capstone/README.md`) explains the pipeline, the
# presets, how to read a loss curve and how the capstone is graded. This notebook
# runs your checks, then the three commands, one cell each, and draws what the
# training recorded.
#
# **In Colab**, the first cell fetches the course into `/content/llm-from-scratch`;
# your own modules go into `exercises/scratchllm/` there (upload them with the file
# browser, left). Choose a GPU runtime (Runtime, Change runtime type) and the
# training below uses it. Colab forgets its files when the runtime stops: download
# the run folder if you want to keep your model.

# %%
# In Colab: fetch the course and install it (Colab's own torch, CPU or GPU, is kept).
# On your own machine, with the kit installed, this only opens the unit.
import os
import sys

if "google.colab" in sys.modules:
    if not os.path.isdir("/content/llm-from-scratch"):
        print("Fetching the course ...")
        # !git clone --quiet --depth 1 https://github.com/llm-from-scratch/llm-from-scratch /content/llm-from-scratch
        # %pip install --quiet -e /content/llm-from-scratch
    sys.path.insert(0, "/content/llm-from-scratch")
    os.chdir("/content/llm-from-scratch/exercises/units/u09_capstone")

from grader.notebook import open_unit

unit = open_unit("u09")

# %% [markdown]
# ## Check your code
#
# This is `llmfs check u09`: a small end-to-end run of your whole package. If an
# earlier unit still has a TODO, it says which; `llmfs check u02` ... `u08` tell
# you more.

# %%
unit.check()

# %% [markdown]
# ## The commands
#
# Each cell below runs one `llmfs` command on this notebook's target (your
# `exercises/` unless `LLMFS_TARGET` says otherwise) and shows its output as it
# comes. They are the same commands you would type in a terminal.

# %%
import json
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch


def llmfs(*args):
    """Run `llmfs ARGS` as a terminal would (train, generate and eval with this notebook's
    --target); True if it succeeded.

    Its output is shown as it comes, except that the progress bar, redrawn at every
    step, is shown once every 10 seconds. Stopping the cell (the ■ button) stops the
    command as Ctrl-C would: `llmfs train` then saves a checkpoint that --resume continues.
    """
    args = [str(a) for a in args]
    if args[0] in ("train", "generate", "eval"):
        args += ["--target", unit.target_spec]
    print("$ llmfs", " ".join(args), flush=True)
    cmd = [sys.executable, "-m", "grader", "--course", str(unit.course.path), *args]
    # Its own session, so that the one Ctrl-C it gets is the one sent below.
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, encoding="utf-8",
                          errors="replace", start_new_session=os.name != "nt") as proc:
        try:
            show(proc.stdout)
        except KeyboardInterrupt:
            if os.name == "nt":
                proc.terminate()
            else:
                proc.send_signal(signal.SIGINT)
            show(proc.stdout)
    return proc.returncode == 0


def show(output):
    """Print a command's output line by line; a progress bar's redraws ("\r") arrive as lines
    of their own, and one in 10 seconds is enough."""
    last_bar = 0.0
    for line in output:
        if not line.strip():
            continue
        if "%|" in line:
            if time.monotonic() - last_bar < 10:
                continue
            last_bar = time.monotonic()
        print(line.strip("\r\n"), flush=True)


DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

# %% [markdown]
# ## The data and the model
#
# The real thing is the preset `shakespeare-char` on tinyshakespeare, which
# `llmfs data prepare` downloads once and checks against its SHA-256. Without
# internet, set `SHAKESPEARE = False`: the same preset then trains on a file of the
# course's own readings (`data=FILE` takes any UTF-8 text file). The quick setting
# (CI) does that, with a much smaller model and a few dozen steps.

# %%
SHAKESPEARE = not unit.quick  # False: train on the course's readings, nothing to download
if unit.quick:
    scratch = tempfile.TemporaryDirectory(prefix="u09-notebook-")  # removed when the kernel stops
    RUNS = Path(scratch.name)
    SHAPE = ["val_fraction=0.02", "n_layer=1", "n_head=2", "d_model=32", "d_ff=64", "block_size=32",
             "batch_size=8", "max_lr=1e-2", "min_lr=1e-3", "eval_interval=10", "eval_iters=4",
             "sample_tokens=80"]
    MAX_ITERS = 50
else:
    RUNS = unit.course.root / "runs"
    SHAPE = []  # the preset as it is: 4 layers, d_model 128, block_size 64, batch 12
    MAX_ITERS = 2000  # the preset's own; fewer (e.g. 500) for a quicker look

if SHAKESPEARE:
    DATA = []  # the preset's own corpus
    data_ready = llmfs("data", "prepare", "tinyshakespeare")
else:
    corpus = RUNS / "readings.txt"
    readings = sorted((unit.course.exercises / "units").glob("*/README.md"))
    RUNS.mkdir(parents=True, exist_ok=True)
    corpus.write_text("\n".join(p.read_text(encoding="utf-8") for p in readings), encoding="utf-8")
    DATA = [f"data={corpus}"]
    data_ready = True
RUN = RUNS / f"u09-notebook-{'shakespeare' if SHAKESPEARE else 'readings'}"

# %% [markdown]
# ## Train
#
# `llmfs train` writes a run folder: the resolved settings, the tokenizer, your
# checkpoint, `history.jsonl` (one line per step) and a sample of text. On a
# laptop's CPU the full preset takes some minutes; on a Colab GPU about a minute.
# Stop the cell (■) as you would press Ctrl-C: your `train` saves a checkpoint of
# the last finished step, and the cells below use it. Run this cell again and it
# leaves an existing run alone: delete the folder to train afresh, or continue
# the run in a terminal with `llmfs train shakespeare-char --out FOLDER --resume
# --max-iters N` (the run folder remembers its settings).

# %%
if (RUN / "ckpt.pt").is_file():
    print(f"{RUN} already holds a run; delete that folder to train again.")
elif data_ready:
    llmfs("train", "shakespeare-char", *DATA, *SHAPE, "--max-iters", MAX_ITERS, "--out", RUN, "--device", DEVICE)
else:
    print("Not yet: no corpus to train on (`llmfs data prepare` said why above; or set SHAKESPEARE = False).")

# %% [markdown]
# ## What the training recorded
#
# Left, the loss: every batch (pale), its running mean, and the validation loss
# at every `eval_interval`. It starts at about ln V (section 2 of the reading
# tells the rest of the story of a healthy curve). Right, the learning rate your
# `train` set at each step: your warmup and cosine.

# %%
history_file = RUN / "history.jsonl"
if history_file.is_file():
    with open(history_file, encoding="utf-8") as f:
        history = [json.loads(line) for line in f if line.strip()]
    with open(RUN / "config.json", encoding="utf-8") as f:
        config = json.load(f)
    its = [r["iteration"] + 1 for r in history]
    losses = [r["train_loss"] for r in history]
    window = max(1, len(losses) // 20)
    smooth = [sum(losses[max(0, i - window + 1):i + 1]) / len(losses[max(0, i - window + 1):i + 1])
              for i in range(len(losses))]
    val = [(r["iteration"] + 1, r["val_loss"]) for r in history if r["val_loss"] is not None]

    fig, (ax_loss, ax_lr) = plt.subplots(1, 2, figsize=(14, 4.5))
    ax_loss.plot(its, losses, color="tab:blue", alpha=0.3, label="train (one batch)")
    ax_loss.plot(its, smooth, color="tab:blue", label=f"train (mean of the last {window})")
    if val:
        ax_loss.plot(*zip(*val), "o-", color="tab:orange", label="validation")
    ln_v = torch.log(torch.tensor(float(config["vocab_size"]))).item()
    ax_loss.axhline(ln_v, color="black", linestyle="--", label=f"ln V, V = {config['vocab_size']}")
    low = min(losses + [v for _, v in val])
    ax_loss.set_ylim(low - 0.1, ln_v + 0.6 * (ln_v - low) + 0.1)  # room for the legend above the curves
    ax_loss.set_xlabel("iteration")
    ax_loss.set_ylabel("loss (nats per character)")
    ax_loss.set_title("loss")
    ax_loss.legend(loc="upper right", ncol=2)
    ax_lr.plot(its, [r["lr"] for r in history], color="tab:green")
    ax_lr.set_xlabel("iteration")
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_title(f"learning rate: warmup {config['warmup_iters']}, cosine to {config['cosine_iters']}")
    fig.suptitle(f"{config['preset']} on {Path(config['data']).name}: n_layer {config['n_layer']}, "
                 f"d_model {config['d_model']}, {len(history)} steps")
    fig.tight_layout()
    plt.show()
else:
    print(f"Not yet: no history in {RUN}; the training above did not run to the end.")

# %% [markdown]
# ## Generate
#
# `llmfs generate` samples with your u08 `generate`, streaming each character as it
# is drawn. Try other prompts, `--temperature`, `--top-k`, `--top-p` or
# `--greedy`. (The quick model has had a few dozen steps: expect letters and
# spaces, not words.)

# %%
if (RUN / "ckpt.pt").is_file():
    llmfs("generate", RUN, "--prompt", "ROMEO:", "--max-new-tokens", 80 if unit.quick else 500,
          "--temperature", 0.8, "--seed", 0)
else:
    print("Not yet: train a model above first.")

# %% [markdown]
# ## Evaluate
#
# `llmfs eval` scores the held-out tenth of the text with your u08 `perplexity`
# and `bits_per_byte` (section 3 of the reading). Bits per byte is the figure the
# grader computes, itself, from your weights: see section 4.

# %%
if (RUN / "ckpt.pt").is_file():
    llmfs("eval", RUN)
else:
    print("Not yet: train a model above first.")

# %% [markdown]
# ## Next
#
# Change a setting and train again (`n_layer=6`, `d_model=256`, `dropout=0.2`,
# `data=shakespeare-plays`, the `shakespeare-bpe` preset with your own tokenizer,
# or the `addition` task), and compare the curves and the bits per byte. Section 6
# of the reading says what to expect, and what no model of this size will do.
