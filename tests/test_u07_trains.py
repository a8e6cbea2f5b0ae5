"""The reference trains the reference GPT: u07's `train` on a generated corpus.

A char-level GPT (u06's reference) trained by the reference loop (AdamW,
warmup + cosine, clipping, dropout on) reaches a validation loss far below
ln V; a run stopped half-way and resumed from its checkpoint by a fresh
model ends bit-identical to a run that never stopped; and the history it
returns is drawn by grader.plots.plot_history.

Everything is seeded and runs on one thread, so the run is the same each time.
"""

import importlib
import math
import random

import pytest
import torch
import torch.nn.functional as F

from grader.course import load_course
from grader.plots import plot_history
from grader.targets import load_package, resolve_target

from kit import ROOT

PACKAGE = "scratchllm_u07_trains"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def corpus(n_sentences: int, seed: int) -> str:
    """Sentences from a small grammar, e.g. "a red fox sees the old tree."."""
    rnd = random.Random(seed)
    pick = rnd.choice
    return " ".join(f"{pick(['a', 'the'])} {pick(['red', 'old', 'big', 'shy'])} "
                    f"{pick(['fox', 'owl', 'cat', 'hen'])} {pick(['sees', 'finds', 'likes'])} "
                    f"{pick(['the', 'a'])} {pick(['tree', 'pond', 'barn', 'moon'])}."
                    for _ in range(n_sentences))


@pytest.fixture(scope="module")
def ref():
    course = load_course(ROOT / "course.toml")
    pkg = load_package(resolve_target(course, "solutions"), PACKAGE)
    return (importlib.import_module(f"{pkg.__name__}.model"),
            importlib.import_module(f"{pkg.__name__}.training"))


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def data():
    train_text, val_text = corpus(120, 0), corpus(20, 1)
    chars = sorted(set(train_text + val_text))
    encode = lambda s: torch.tensor([chars.index(c) for c in s])  # noqa: E731
    return encode(train_text), encode(val_text), len(chars)


def new_gpt(model_module, V):
    torch.manual_seed(0)
    return model_module.GPT(model_module.GPTConfig(vocab_size=V, block_size=32, n_layer=2, n_head=4,
                                                   d_model=64, d_ff=128, dropout=0.1))


def val_loss(model, tokens, T=32):
    """The judge's own loss: every window of the validation text, u06's F.cross_entropy."""
    model.eval()
    starts = range(len(tokens) - T)
    x = torch.stack([tokens[s:s + T] for s in starts])
    y = torch.stack([tokens[s + 1:s + T + 1] for s in starts])
    with torch.no_grad():
        logits, _ = model(x)
    return float(F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1)))


def config(training, out_dir, **overrides):
    base = dict(batch_size=16, block_size=32, max_iters=100, max_lr=3e-3, min_lr=3e-4, warmup_iters=10,
                cosine_iters=100, weight_decay=0.1, betas=(0.9, 0.95), max_norm=1.0, eval_interval=25,
                eval_iters=64, checkpoint_interval=50, out_dir=str(out_dir), progress=False, seed=0)
    return training.TrainConfig(**dict(base, **overrides))


def test_reference_train_learns_and_its_history_plots(ref, one_thread, tmp_path):
    model_module, training = ref
    train_tokens, val_tokens, V = data()
    assert 15 <= V <= 30 and len(val_tokens) > 200, V
    model = new_gpt(model_module, V)
    initial = val_loss(model, val_tokens)
    history = training.train(model, train_tokens, val_tokens, config(training, tmp_path))
    final = val_loss(model, val_tokens)
    assert abs(initial - math.log(V)) < 0.2, f"loss at initialisation {initial:.3f}, ln V = {math.log(V):.3f}"
    assert final < 0.5 * math.log(V), \
        f"validation loss went from {initial:.3f} to {final:.3f}; ln V = {math.log(V):.3f}"
    assert [r["iteration"] for r in history] == list(range(100))
    assert [r["iteration"] for r in history if r["val_loss"] is not None] == [24, 49, 74, 99]
    assert history[-1]["val_loss"] < history[24]["val_loss"]
    assert history[0]["lr"] == 0.0 and history[10]["lr"] == pytest.approx(3e-3)

    png = plot_history(history, tmp_path / "plots" / "history.png", title="u07 reference")
    raw = png.read_bytes()
    assert raw.startswith(PNG_MAGIC) and len(raw) > 10_000, len(raw)
    import matplotlib.image

    pixels = matplotlib.image.imread(png)
    assert pixels.shape[0] >= 500 and pixels.shape[1] >= 600, pixels.shape
    assert float(pixels[..., :3].std()) > 0.05, "the plot is blank"


def test_reference_train_resumes_bit_exactly(ref, one_thread, tmp_path):
    model_module, training = ref
    train_tokens, val_tokens, V = data()
    short = dict(max_iters=24, eval_interval=8, eval_iters=16, checkpoint_interval=100)

    straight_model = new_gpt(model_module, V)
    straight = training.train(straight_model, train_tokens, val_tokens, config(training, tmp_path / "a", **short))

    first = new_gpt(model_module, V)
    training.train(first, train_tokens, val_tokens, config(training, tmp_path / "b", **dict(short, max_iters=12)))
    torch.manual_seed(123)  # whatever happens in between, the checkpoint restores it
    resumed_model = new_gpt(model_module, V)
    resumed = training.train(resumed_model, train_tokens, val_tokens,
                             config(training, tmp_path / "b", resume=True, **short))

    strip = [[{k: v for k, v in r.items() if k != "tokens_per_s"} for r in h] for h in (straight, resumed)]
    assert strip[1] == strip[0]
    for (name, a), (_, b) in zip(straight_model.state_dict().items(), resumed_model.state_dict().items()):
        assert torch.equal(a, b), f"{name} differs after resuming"
