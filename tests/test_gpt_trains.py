"""The full GPT built from the reference learns: a char-level model trained
for 80 steps on a tiny generated corpus ends far below ln(vocab_size).

Everything is seeded and runs on one thread, so the run is the same each time.
"""

import math
import random

import pytest
import torch

from grader.course import load_course
from grader.targets import load_package, resolve_target

from kit import ROOT

PACKAGE = "scratchllm_gpt_trains"


def tiny_corpus(n_sentences: int = 24, seed: int = 0) -> str:
    """A few hundred characters of sentences from a small grammar, e.g. "the cat sat on a log."."""
    rnd = random.Random(seed)
    subjects = ["the cat", "a dog", "my bird", "the fox"]
    verbs = ["sat on", "ran to", "looked at", "jumped over"]
    objects = ["the mat", "a log", "the hill", "my hat"]
    return " ".join(f"{rnd.choice(subjects)} {rnd.choice(verbs)} {rnd.choice(objects)}."
                    for _ in range(n_sentences))


@pytest.fixture(scope="module")
def reference_model_module():
    course = load_course(ROOT / "course.toml")
    pkg = load_package(resolve_target(course, "solutions"), PACKAGE)
    import importlib

    return importlib.import_module(f"{pkg.__name__}.model")


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("style", [dict(positions="learned", norm="layer", ffn="gelu", tie_weights=True),
                                   dict(positions="rope", norm="rms", ffn="swiglu", tie_weights=False)],
                         ids=["gpt2", "llama"])
def test_reference_gpt_learns_a_tiny_corpus(reference_model_module, one_thread, style):
    text = tiny_corpus()
    chars = sorted(set(text))
    data = torch.tensor([chars.index(c) for c in text])
    V, T = len(chars), 32
    assert 400 <= len(text) <= 1000 and 15 <= V <= 30, (len(text), V)

    torch.manual_seed(0)
    model_module = reference_model_module
    config = model_module.GPTConfig(vocab_size=V, block_size=T, n_layer=2, n_head=4, d_model=64,
                                    d_ff=128, **style)
    model = model_module.GPT(config)
    gen = torch.Generator().manual_seed(0)
    windows = torch.arange(len(data) - T)

    def loss_on(starts):
        idx = torch.stack([data[s:s + T] for s in starts.tolist()])
        targets = torch.stack([data[s + 1:s + T + 1] for s in starts.tolist()])
        return model(idx, targets)[1]

    model.eval()
    with torch.no_grad():
        initial = float(loss_on(windows))
    assert abs(initial - math.log(V)) < 0.15, f"loss at initialisation {initial:.3f}, ln(V) = {math.log(V):.3f}"

    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    for _ in range(80):
        loss = loss_on(windows[torch.randint(0, len(windows), (16,), generator=gen)])
        opt.zero_grad()
        loss.backward()
        opt.step()

    model.eval()
    with torch.no_grad():
        final = float(loss_on(windows))
    assert final < 0.4 * math.log(V), f"loss went from {initial:.3f} to {final:.3f}; ln(V) = {math.log(V):.3f}"
