"""Hidden tests for unit u02, tokenization: random corpora, adversarial text, streams.

Never shipped to students. The reference solution is the judge here (the
public tests check it against stored snapshots of it and HF tokenizers).
Failure summaries (the first line) name the input, never the expected values.
"""

import os
import random
import tempfile

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from grader.testing import assert_close, assert_equal

pytestmark = pytest.mark.u02

EOT = "<|endoftext|>"
PROPERTY = settings(max_examples=40, derandomize=True, database=None, deadline=None,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# Special-token sets that trip up splitting: prefixes of each other, spaces,
# non-ASCII, regex metacharacters.
SPECIAL_SETS = [
    [EOT],
    [EOT, "<|pad|>"],
    ["<|a|>", "<|a|><|b|>"],
    ["<|a|><|b|>", "<|a|>", "<|b|>"],
    ["<|end of text|>", "<|ü|>"],
    ["[*]", "(.+)"],
]

# Pieces that make text hard: CRLF, whitespace runs, contractions, multi-byte characters.
HARD_PIECES = ["\r\n", "\r", "\n\n", "   ", "\t", "\u00a0", "\u3000", "'ll", "'s", "'", "l", "don't",
               "café", "Ζεύς", "東京", "👨‍👩‍👧", "🙂", "12", "3.5", "!!", "...", " the", "The", "a", "x"]


# ---------------------------------------------------------------- probes

def pretokenize_many(pkg, texts):
    return [pkg.tokenizer.pretokenize(t) for t in texts]


def train(pkg, text, vocab_size, specials):
    return pkg.tokenizer.train_bpe(text, vocab_size, specials)


def train_chunks(pkg, chunks, vocab_size, specials):
    return pkg.tokenizer.train_bpe(iter(chunks), vocab_size, specials)


def train_from_file(pkg, text, vocab_size, specials):
    """train_bpe on an open text file (newline="" keeps its CRLF), the way a student streams a corpus."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "corpus.txt")
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        with open(path, encoding="utf-8", newline="") as f:
            return pkg.tokenizer.train_bpe(f, vocab_size, specials)


def train_error(pkg, text, vocab_size, specials):
    try:
        pkg.tokenizer.train_bpe(text, vocab_size, specials)
    except NotImplementedError:
        raise  # a stub is not an answer
    except Exception as e:  # noqa: BLE001 - the type is the answer
        return type(e).__name__
    return "nothing"


def encode_many(pkg, vocab, merges, specials, texts):
    tok = pkg.tokenizer.Tokenizer(vocab, merges, specials)
    return [tok.encode(t) for t in texts]


def encode_and_decode(pkg, vocab, merges, specials, texts, id_lists):
    tok = pkg.tokenizer.Tokenizer(vocab, merges, specials)
    return [tok.encode(t) for t in texts], [tok.decode(ids) for ids in id_lists]


def encode_chunks(pkg, vocab, merges, specials, chunks):
    tok = pkg.tokenizer.Tokenizer(vocab, merges, specials)
    return list(tok.encode_iterable(iter(chunks)))


def save_crlf_load(pkg, vocab, merges, specials, texts):
    """Save, turn the file's line ends into CRLF (as a Windows checkout would), load, encode."""
    tok = pkg.tokenizer.Tokenizer(vocab, merges, specials)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "tok.json")
        tok.save(path)
        with open(path, "rb") as f:
            saved = f.read()
        with open(path, "wb") as f:
            f.write(saved.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
        loaded = pkg.tokenizer.Tokenizer.load(path)
        again = os.path.join(folder, "again.json")
        loaded.save(again)
        reloaded = pkg.tokenizer.Tokenizer.load(again)
    return ([tok.encode(t) for t in texts], [loaded.encode(t) for t in texts],
            [reloaded.encode(t) for t in texts], [loaded.decode(tok.encode(t)) for t in texts])


def bytes_per_token(pkg, corpus, vocab_size, specials):
    vocab, merges = pkg.tokenizer.train_bpe(corpus, vocab_size, specials)
    tok = pkg.tokenizer.Tokenizer(vocab, merges, specials)
    return len(corpus.encode("utf-8")) / len(tok.encode(corpus))


# ---------------------------------------------------------------- corpora

def mixed_corpus(seed, n_pieces):
    """Seeded text from hard pieces, plain words and special tokens, in random order."""
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "the", "of", "and", "ab", "ba", "aab", "abab", "bba"]
    out = []
    for _ in range(n_pieces):
        r = rng.random()
        if r < 0.45:
            out.append(rng.choice([" ", "", "  "]) + rng.choice(words))
        elif r < 0.9:
            out.append(rng.choice(HARD_PIECES))
        else:
            out.append(rng.choice(["<|", "|>", "<|a|>", "<|b|>", EOT, "<|pad|>", "<|end of text|>", "<|ü|>",
                                   "[*]", "(.+)", "<|endof"]))
    return "".join(out)


def markov_text(seed, n_chars):
    """Seeded prose in several scripts, with code, numbers and CRLF line ends."""
    rng = random.Random(seed)
    vocab = ["the", "a", "of", "to", "in", "is", "that", "it", "was", "for", "on", "are", "with", "as",
             "king", "queen", "sword", "night", "thou", "art", "thee", "hath", "doth", "Straße", "über",
             "naïve", "Ζεύς", "Москва", "日本語", "東京", "🙂", "🍕", "print(x)", "x**2", "3.14", "1,000",
             "won't", "it's", "we'll", "I'd"]
    weights = [1.0 / (1 + i) ** 0.9 for i in range(len(vocab))]
    out, size = [], 0
    while size < n_chars:
        line = " ".join(rng.choices(vocab, weights, k=rng.randint(2, 12)))
        line = line[0].upper() + line[1:] + rng.choice([".", "!", "?", ",", ":", ""])
        out.append(line + rng.choice(["\n", "\r\n", "\n\n", "  \n", " "]))
        size += len(line) + 1
    return "".join(out)


def cut(text, rng, n):
    cuts = sorted(rng.sample(range(1, len(text)), min(n, len(text) - 1))) if len(text) > 1 else []
    return [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)])]


_TRAINED: dict = {}


def reference_tokenizer(reference, seed=0, vocab_size=600, specials=()):
    """Vocab, merges and specials trained by the reference (deterministic, so kept once made)."""
    key = (seed, vocab_size, specials)
    if key not in _TRAINED:
        corpus = markov_text(seed, 6000) + mixed_corpus(seed, 800)
        _TRAINED[key] = reference.run(train, corpus, vocab_size, list(specials))
    vocab, merges = _TRAINED[key]
    return vocab, merges, list(specials)


# ---------------------------------------------------------------- pre-tokenization

@PROPERTY
@given(texts=st.lists(st.text(st.characters(codec="utf-8"), max_size=80) | st.lists(
    st.sampled_from(HARD_PIECES)).map("".join), min_size=1, max_size=8))
def test_pretokenize_random_text(student, reference, texts):
    got = student.run(pretokenize_many, texts)
    want = reference.run(pretokenize_many, texts)
    for text, g, w in zip(texts, got, want):
        assert_equal(g, w, what=f"pretokenize({text!r})")


# ---------------------------------------------------------------- training

@pytest.mark.parametrize("seed", range(8))
def test_train_random_corpora_with_special_tokens(student, reference, seed):
    rng = random.Random(seed)
    specials = SPECIAL_SETS[seed % len(SPECIAL_SETS)]
    corpus = mixed_corpus(seed, 500) + markov_text(seed, 1500)
    vocab_size = 256 + len(specials) + rng.randint(20, 160)
    got = student.run(train, corpus, vocab_size, specials)
    want = reference.run(train, corpus, vocab_size, specials)
    assert_equal(got[1], want[1], what=f"merges from a {len(corpus)}-character corpus with specials {specials}, "
                                       f"vocab_size={vocab_size}")
    assert_equal(got[0], want[0], what=f"vocab from a {len(corpus)}-character corpus with specials {specials}")


def test_train_when_every_pair_ties(student, reference):
    rng = random.Random(5)
    words = sorted({"".join(rng.choice("abcxyzé") for _ in range(rng.randint(2, 6))) for _ in range(200)})
    corpus = " ".join(words)  # every word once: ties at every step
    got = student.run(train, corpus, 330, [])
    want = reference.run(train, corpus, 330, [])
    assert_equal(got[1], want[1], what="merges from 200 distinct words, each once")


def test_train_on_a_file_object_with_crlf(student, reference):
    corpus = markov_text(3, 8000) + EOT + markov_text(4, 2000).replace("\n", "\r\n")
    got = student.run(train_from_file, corpus, 420, [EOT])
    want = reference.run(train, corpus, 420, [EOT])
    assert_equal(got[1], want[1], what="merges from an open file (read line by line, CRLF kept)")
    assert_equal(got[0], want[0], what="vocab from an open file")


@pytest.mark.parametrize("seed", range(3))
def test_train_on_chunks_cut_anywhere(student, reference, seed):
    rng = random.Random(seed)
    specials = SPECIAL_SETS[(seed + 2) % len(SPECIAL_SETS)]
    corpus = mixed_corpus(seed + 10, 600)
    chunks = cut(corpus, rng, 250)
    got = student.run(train_chunks, chunks, 360, specials)
    want = reference.run(train, corpus, 360, specials)
    assert_equal(got[1], want[1], what=f"merges from {len(chunks)} chunks cut at random, specials {specials}")


def test_train_with_room_for_no_merge(student, reference):
    got = student.run(train, "hello hello", 258, [EOT, "<|pad|>"])
    want = reference.run(train, "hello hello", 258, [EOT, "<|pad|>"])
    assert_equal(got[1], want[1], what="merges when vocab_size leaves no room for any merge")
    assert_equal(got[0], want[0], what="vocab when vocab_size is 256 + the special tokens")


def test_train_rejects_a_vocab_size_below_the_bytes(student):
    got = student.run(train_error, "hello", 200, [])
    assert_equal(got, "ValueError", what="train_bpe(..., vocab_size=200): the exception raised")


def test_train_on_empty_text(student, reference):
    got = student.run(train, "", 300, [EOT])
    want = reference.run(train, "", 300, [EOT])
    assert_equal(got[0], want[0], what="vocab trained on empty text")
    assert_equal(got[1], want[1], what="merges trained on empty text")


# ---------------------------------------------------------------- encode and decode

@PROPERTY
@given(parts=st.lists(st.sampled_from(HARD_PIECES + [EOT, "<|pad|>", "<|", "endoftext"]) | st.text(max_size=12),
                      max_size=30))
def test_encode_random_text_with_special_tokens(student, reference, parts):
    vocab, merges, specials = reference_tokenizer(reference, 1, 520, (EOT, "<|pad|>"))
    text = "".join(parts)
    got = student.run(encode_many, vocab, merges, specials, [text])
    want = reference.run(encode_many, vocab, merges, specials, [text])
    assert_equal(got[0], want[0], what=f"encode({text!r})")


def test_encode_long_text(student, reference):
    vocab, merges, specials = reference_tokenizer(reference, 2, 700, (EOT,))
    text = EOT.join(markov_text(s, 4000) for s in range(10, 14))
    got = student.run(encode_many, vocab, merges, specials, [text])
    want = reference.run(encode_many, vocab, merges, specials, [text])
    assert_equal(got[0], want[0], what=f"encode of a {len(text)}-character text")


def test_special_tokens_missing_from_vocab_get_new_ids(student, reference):
    vocab, merges, _ = reference_tokenizer(reference, 0, 500)
    specials = ["<|a|>", "<|a|><|b|>"]
    texts = ["x<|a|><|b|>y<|a|>", "<|a|><|a|><|b|><|b|>"]
    got = student.run(encode_many, vocab, merges, specials, texts)
    want = reference.run(encode_many, vocab, merges, specials, texts)
    for text, g, w in zip(texts, got, want):
        assert_equal(g, w, what=f"encode({text!r}) with special tokens that are not in the vocab")


def test_decode_random_ids(student, reference):
    vocab, merges, specials = reference_tokenizer(reference, 0, 560, (EOT,))
    rng = random.Random(11)
    ids = sorted(vocab)
    id_lists = [[rng.choice(ids) for _ in range(rng.randint(0, 30))] for _ in range(60)]
    id_lists += [[0xE6], [0xE6, 0x97], [0xF0, 0x9F, 0x99], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xFF, 0xFE]]
    _, got = student.run(encode_and_decode, vocab, merges, specials, [], id_lists)
    for ids_, text in zip(id_lists, got):
        want = b"".join(vocab[i] for i in ids_).decode("utf-8", errors="replace")
        assert_equal(text, want, what=f"decode({ids_})")


# ---------------------------------------------------------------- streaming

@PROPERTY
@given(chunks=st.lists(st.sampled_from(HARD_PIECES + [EOT, "<|endof", "text|>", "<|", "|>", "<|pad|>", ""])
                       | st.text(max_size=6), max_size=40))
def test_encode_iterable_any_chunking(student, reference, chunks):
    vocab, merges, specials = reference_tokenizer(reference, 1, 520, (EOT, "<|pad|>"))
    got = student.run(encode_chunks, vocab, merges, specials, chunks)
    want = reference.run(encode_many, vocab, merges, specials, ["".join(chunks)])[0]
    assert_equal(got, want, what=f"list(encode_iterable({chunks!r}))")


# No test of encode_iterable's memory here: a peak measured inside the worker (tracemalloc)
# is a number student code can forge. That encode_iterable streams is tested from the
# outside instead: the public test_encode_iterable_is_lazy counts the lines it consumed.


# ---------------------------------------------------------------- save and load

def test_save_load_with_crlf_line_ends_and_every_byte(student, reference):
    specials = [EOT, "<|ü|>", "<|end of text|>"]
    vocab, merges, _ = reference_tokenizer(reference, 4, 700, tuple(specials))
    texts = [markov_text(9, 800), EOT + "\r\n\\x41\\\\ \"q\" " + "<|ü|>" + "<|end of text|>",
             "".join(chr(c) for c in range(0, 600)), "🙂👨‍👩‍👧 東京\u3000\u00a0"]
    before, loaded, reloaded, decoded = student.run(save_crlf_load, vocab, merges, specials, texts)
    for text, b, a, r, d in zip(texts, before, loaded, reloaded, decoded):
        assert_equal(a, b, what=f"encode({text[:40]!r}...) after save, CRLF line ends, load")
        assert_equal(r, b, what=f"encode({text[:40]!r}...) after a second save and load")
        assert_equal(d, text, what=f"decode after load of encode({text[:40]!r}...)")


# ---------------------------------------------------------------- compression

@pytest.mark.parametrize("vocab_size", [400, 900])
def test_compression_close_to_the_reference(student, reference, vocab_size):
    corpus = markov_text(21, 40_000)
    got = student.run(bytes_per_token, corpus, vocab_size, [])
    want = reference.run(bytes_per_token, corpus, vocab_size, [])
    assert_close(got / want, 1.0, atol=0.02, rtol=0,
                 what=f"bytes per token relative to the reference's at vocab_size={vocab_size}")
