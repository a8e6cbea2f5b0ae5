"""`llmfs train | generate | eval` end to end, with the reference package.

Every run trains a very small shakespeare-char model for a few steps on a
corpus generated here (never the network, never ../shared), through the
command line as a user types it: the run folder's files, streaming
generation, the evaluation figures, exact resumption (k steps, then --resume
to 2k, equals 2k steps straight, bit for bit), `--nproc 2` through torchrun,
and the one-line errors.
"""

import io
import json
import math
import os
import random
import subprocess
import sys
from contextlib import redirect_stdout

import pytest
import torch

from grader import cli

from kit import ROOT

COURSE = str(ROOT / "course.toml")
SMALL = ["n_layer=1", "n_head=2", "d_model=32", "d_ff=64", "block_size=16", "batch_size=4", "eval_interval=3",
         "eval_iters=4", "sample_tokens=20"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """About 12 KB of 'SPEAKER:' speeches from a few words, in a file."""
    r = random.Random(0)
    words = "the king queen lord of and to my thy love night day sweet fair good shall not be is".split()
    speeches = [f"{r.choice(['ROMEO', 'JULIET', 'NURSE'])}:\n" +
                " ".join(r.choice(words) for _ in range(r.randint(4, 9))).capitalize() + ".\n"
                for _ in range(400)]
    path = tmp_path_factory.mktemp("corpus") / "speeches.txt"
    path.write_text("\n".join(speeches), encoding="utf-8")
    return str(path)


def llmfs(*args, capsys=None):
    """cli.main(args): (exit status, stdout, stderr)."""
    out = io.StringIO()
    with redirect_stdout(out):
        rc = cli.main(["--course", COURSE, *args])
    err = capsys.readouterr().err if capsys is not None else ""
    return rc, out.getvalue(), err


def train(run, corpus, *extra, capsys=None):
    return llmfs("train", "shakespeare-char", "--target", "solutions", f"data={corpus}", *SMALL, "--out", str(run),
                 *extra, capsys=capsys)


@pytest.fixture(scope="module")
def run6(tmp_path_factory, corpus):
    run = tmp_path_factory.mktemp("runs") / "r6"
    rc, out, _ = train(run, corpus, "--max-iters", "6")
    assert rc == 0, out
    return run


def test_the_run_folder_holds_everything(run6, corpus):
    names = sorted(os.listdir(run6))
    assert names == ["ckpt.pt", "config.json", "history.jsonl", "loss.png", "samples.txt", "tokenizer.json"]
    config = json.loads((run6 / "config.json").read_text(encoding="utf-8"))
    assert (config["preset"], config["max_iters"], config["n_layer"], config["data"]) == (
        "shakespeare-char", 6, 1, corpus)
    chars = json.loads((run6 / "tokenizer.json").read_text(encoding="utf-8"))["chars"]
    with open(corpus, encoding="utf-8") as f:
        assert chars == sorted(set(f.read()))
    assert config["vocab_size"] == len(chars)
    ckpt = torch.load(run6 / "ckpt.pt", weights_only=True)
    assert ckpt["iteration"] == 6
    assert ckpt["model"]["tok_emb.weight"].shape == (len(chars), 32)
    history = [json.loads(line) for line in (run6 / "history.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["iteration"] for r in history] == list(range(6))
    assert [r["val_loss"] is not None for r in history] == [False, False, True, False, False, True]
    assert all(math.isfinite(r["train_loss"]) and r["tokens_per_s"] > 0 for r in history)
    assert (run6 / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len((run6 / "samples.txt").read_text(encoding="utf-8")) >= 20


def test_generate_streams_the_same_text_for_the_same_seed(run6):
    rc, first, _ = llmfs("generate", str(run6), "--target", "solutions", "--prompt", "ROMEO:",
                         "--max-new-tokens", "30", "--seed", "3")
    assert rc == 0
    assert first.startswith("ROMEO:") and len(first.rstrip("\n")) >= len("ROMEO:") + 25
    _, again, _ = llmfs("generate", str(run6), "--target", "solutions", "--prompt", "ROMEO:",
                        "--max-new-tokens", "30", "--seed", "3")
    _, other, _ = llmfs("generate", str(run6), "--target", "solutions", "--prompt", "ROMEO:",
                        "--max-new-tokens", "30", "--seed", "4")
    assert again == first and other != first
    _, greedy, _ = llmfs("generate", str(run6), "--target", "solutions", "--prompt", "ROMEO:",
                         "--max-new-tokens", "30", "--greedy", "--seed", "9")
    _, greedy2, _ = llmfs("generate", str(run6), "--target", "solutions", "--prompt", "ROMEO:",
                          "--max-new-tokens", "30", "--greedy", "--seed", "1")
    assert greedy == greedy2


def test_eval_figures_agree_with_each_other(run6, corpus):
    rc, out, _ = llmfs("eval", str(run6), "--target", "solutions", "--format", "json")
    assert rc == 0
    got = json.loads(out)
    with open(corpus, encoding="utf-8") as f:
        text = f.read()
    assert got["tokens"] == round(len(text) * 0.1)  # the held-out 10%, one token per character
    assert math.log(len(json.loads((run6 / "tokenizer.json").read_text(encoding="utf-8"))["chars"])) > \
        got["val_loss"] > 0.5
    assert got["perplexity"] == pytest.approx(math.exp(got["val_loss"]), rel=1e-9)
    # ASCII text, one byte per character: bits per byte is the loss in bits
    assert got["bits_per_byte"] == pytest.approx(got["val_loss"] / math.log(2), rel=1e-9)
    rc, table, _ = llmfs("eval", str(run6), "--target", "solutions")
    assert rc == 0 and "bits per byte" in table and f"{got['bits_per_byte']:.4f}" in table


def test_resume_continues_exactly(tmp_path, corpus):
    straight, halves = tmp_path / "straight", tmp_path / "halves"
    assert train(straight, corpus, "--max-iters", "8", "cosine_iters=8")[0] == 0
    assert train(halves, corpus, "--max-iters", "4", "cosine_iters=8")[0] == 0
    assert torch.load(halves / "ckpt.pt", weights_only=True)["iteration"] == 4
    assert llmfs("train", "shakespeare-char", "--target", "solutions", "--out", str(halves), "--resume",
                 "--max-iters", "8")[0] == 0
    a = torch.load(straight / "ckpt.pt", weights_only=True)
    b = torch.load(halves / "ckpt.pt", weights_only=True)
    assert a["iteration"] == b["iteration"] == 8
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    lines = [(p / "history.jsonl").read_text(encoding="utf-8").splitlines() for p in (straight, halves)]
    loss = [[json.loads(x)["train_loss"] for x in ls] for ls in lines]
    assert len(loss[0]) == 8 and loss[0] == loss[1]


@pytest.mark.parametrize("args, words", [
    (["train", "shakespeare-word"], ["unknown preset 'shakespeare-word'", "shakespeare-char"]),
    (["train", "shakespeare-char", "n_layers=2"], ["unknown key 'n_layers'", "n_layer"]),
    (["train", "shakespeare-char", "n_layer=two"], ["n_layer=two", "int"]),
    (["train", "shakespeare-char", "data=tinyshakespeare"], ["llmfs data prepare tinyshakespeare"]),
    (["eval", "no-such-run"], ["not a run folder"]),
])
def test_one_line_errors(tmp_path, monkeypatch, capsys, args, words):
    monkeypatch.setenv("LLMFS_DATA", str(tmp_path / "empty"))
    monkeypatch.chdir(tmp_path)
    rc, _, err = llmfs(*args, "--target", "solutions", capsys=capsys)
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("llmfs: ") and "Traceback" not in err
    for w in words:
        assert w in err


def test_resume_with_another_config_is_refused(run6, capsys):
    rc, _, err = llmfs("train", "shakespeare-char", "--target", "solutions", "--out", str(run6), "--resume",
                       "n_layer=2", capsys=capsys)
    assert rc == 2 and "another configuration" in err and "n_layer" in err
    rc, _, err = llmfs("train", "shakespeare-char", "--target", "solutions", "--out", str(run6), capsys=capsys)
    assert rc == 2 and "--resume" in err


def test_a_checkpoint_that_does_not_fit_its_config_is_refused(run6, tmp_path, capsys):
    run = tmp_path / "edited"
    run.mkdir()
    for name in ("ckpt.pt", "tokenizer.json", "history.jsonl"):
        (run / name).write_bytes((run6 / name).read_bytes())
    config = json.loads((run6 / "config.json").read_text(encoding="utf-8"))
    (run / "config.json").write_text(json.dumps(dict(config, d_model=48)), encoding="utf-8")
    rc, _, err = llmfs("eval", str(run), "--target", "solutions", capsys=capsys)
    assert rc == 2 and "another configuration" in err


def test_unfinished_stubs_name_their_unit(tmp_path, corpus, capsys):
    rc, _, err = llmfs("train", "shakespeare-char", "--target", "exercises", f"data={corpus}", *SMALL,
                       "--out", str(tmp_path / "r"), "--max-iters", "2", capsys=capsys)
    assert rc == 2 and "Traceback" not in err and err.count("\n") == 1
    assert "is not finished yet" in err and "finish unit u0" in err and "--target solutions" in err


def test_two_processes_through_torchrun(tmp_path, corpus):
    run = tmp_path / "ddp"
    proc = subprocess.run([sys.executable, "-m", "grader", "--course", COURSE, "train", "shakespeare-char",
                           "--target", "solutions", f"data={corpus}", *SMALL, "--out", str(run), "--max-iters", "4",
                           "--nproc", "2"], capture_output=True, text=True, encoding="utf-8", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 process(es)" in proc.stdout
    assert torch.load(run / "ckpt.pt", weights_only=True)["iteration"] == 4
    history = (run / "history.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(x)["iteration"] for x in history] == [0, 1, 2, 3]  # rank 0 alone writes
