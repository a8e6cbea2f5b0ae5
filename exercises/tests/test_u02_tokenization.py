"""Public tests for unit u02, byte-level BPE tokenization.

Each test builds its inputs here (seeded), runs a probe against your
package with `student.run`, and judges the result here. The judges are:

- merges and vocabularies stored in data/test_u02_tokenization.json: the
  `snapshot_*` probes below, run once on the reference with
  `python -m grader.snapshots --unit u02`, with the corpora they trained on;
- HF `tokenizers`, loaded with the same vocab and merges (the GPT-2 way of
  writing bytes as characters), for encodings, and trained with its own
  BpeTrainer for compression;
- Python's own `bytes.decode(..., errors="replace")` for decoding.

Run them with `llmfs check u02` or `pytest exercises/tests -m u02`.
"""

import contextlib
import itertools
import os
import random
import signal
import tempfile
import threading

import pytest
import regex
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from grader.snapshots import load_snapshot
from grader.testing import Mismatch, assert_close, assert_equal

pytestmark = pytest.mark.u02

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
EOT = "<|endoftext|>"

# Text that breaks tokenizers: multi-byte characters, whitespace runs, CRLF.
HARD_TEXTS = [
    "Hello, world!  How's it going?\n",
    "emoji 🙂🙃👍🏽 and a family 👨‍👩‍👧 in a row",
    "東京タワーは日本の電波塔です。中文也可以。",
    "café naïve Ζεύς Москва עברית العربية",
    "spaces     then\ttabs\t\tthen\n\n\nnewlines   ",
    "windows\r\nline\r\n\r\nendings\r\n",
    "I'll say they're 1234567 or 3.14159, isn't it?",
    "  leading and trailing  ",
    "",
]

# Random text for property tests: any unicode, or a jumble of pieces that are hard to split.
HARD_PIECES = ["\r\n", "\n\n", "   ", "\t", "\u00a0", "'ll", "'", "s", "don't", "café", "東京", "🙂", "42", "!?",
               " the", "x"]
RANDOM_TEXT = st.text(max_size=40) | st.lists(st.sampled_from(HARD_PIECES), max_size=12).map("".join)

# Settings for property tests: deterministic, bounded, and no shrinking (each example is a
# call into your code; the failing example is reported as found).
PROPERTY = settings(max_examples=30, derandomize=True, database=None, deadline=None,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


# ---------------------------------------------------------------- probes
# Probes run beside your code (in another process under `llmfs grade`):
# they take your package first and return plain data. A Tokenizer never
# crosses: probes get vocab, merges and special tokens and build one.

def pretokenize_probe(pkg, texts):
    return [pkg.tokenizer.pretokenize(t) for t in texts]


def split_probe(pkg, text, specials):
    return pkg.tokenizer.split_on_specials(text, specials)


def merge_pair_probe(pkg, tokens, pair):
    return pkg.tokenizer.merge_pair(tokens, pair)


def train_probe(pkg, text, vocab_size, specials):
    return pkg.tokenizer.train_bpe(text, vocab_size, specials)


def train_streamed_probe(pkg, chunks, vocab_size, specials):
    return pkg.tokenizer.train_bpe((c for c in chunks), vocab_size, specials)


def make_tokenizer(pkg, vocab, merges, specials):
    return pkg.tokenizer.Tokenizer(vocab, merges, specials)


def encode_probe(pkg, vocab, merges, specials, texts):
    tok = make_tokenizer(pkg, vocab, merges, specials)
    return [tok.encode(t) for t in texts]


def round_trip_probe(pkg, vocab, merges, specials, texts):
    tok = make_tokenizer(pkg, vocab, merges, specials)
    return [tok.decode(tok.encode(t)) for t in texts]


def decode_probe(pkg, vocab, merges, specials, id_lists):
    tok = make_tokenizer(pkg, vocab, merges, specials)
    return [tok.decode(ids) for ids in id_lists]


def encode_iterable_probe(pkg, vocab, merges, specials, chunks):
    tok = make_tokenizer(pkg, vocab, merges, specials)
    return list(tok.encode_iterable(c for c in chunks))


def numbered_lines(seen, n):
    for i in range(n):
        seen[0] = i + 1
        yield f"line {i}: the quick brown fox\n"


def lazy_probe(pkg, vocab, merges, n_lines, n_take):
    """How many lines encode_iterable read before giving out its first ids."""
    tok = make_tokenizer(pkg, vocab, merges, [])
    seen = [0]
    first = list(itertools.islice(tok.encode_iterable(numbered_lines(seen, n_lines)), n_take))
    return seen[0], len(first)


def save_load_probe(pkg, vocab, merges, specials, texts):
    tok = make_tokenizer(pkg, vocab, merges, specials)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "tokenizer.json")
        tok.save(path)
        with open(path, "rb") as f:
            saved = f.read()
        loaded = pkg.tokenizer.Tokenizer.load(path)
    before = [tok.encode(t) for t in texts]
    after = [loaded.encode(t) for t in texts]
    decoded = [loaded.decode(ids) for ids in before]
    return saved, before, after, decoded


def compression_probe(pkg, corpus, vocab_size):
    vocab, merges = pkg.tokenizer.train_bpe(corpus, vocab_size)
    tok = make_tokenizer(pkg, vocab, merges, [])
    ids = tok.encode(corpus)
    return len(vocab), len(ids), tok.decode(ids) == corpus


# ---------------------------------------------------------------- judges

def gpt2_byte_chars():
    """GPT-2's table byte -> printable character, which HF's ByteLevel uses."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def hf_tokenizer(vocab, merges, specials=()):
    """HF `tokenizers` with our vocab and merges: BPE model, ByteLevel pre-tokenizer."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    chars = gpt2_byte_chars()

    def as_text(token):
        return "".join(chars[b] for b in token)

    special_bytes = {s.encode("utf-8") for s in specials}
    hf_vocab = {(tok.decode("utf-8") if i >= 256 and tok in special_bytes else as_text(tok)): i
                for i, tok in vocab.items()}
    tok = Tokenizer(models.BPE(hf_vocab, [(as_text(a), as_text(b)) for a, b in merges]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    if specials:
        tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    return tok


def hf_bytes_per_token(corpus, vocab_size):
    """Bytes per token of HF's own BpeTrainer (ByteLevel, all 256 bytes) on `corpus`."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([corpus], trainer)
    return len(corpus.encode("utf-8")) / len(tok.encode(corpus).ids)


@contextlib.contextmanager
def time_limit(seconds, what):
    """Fail with "too slow" instead of hanging. A guard against runaway code, not a speed test:
    the limit is far above what a plain correct implementation needs."""
    if not hasattr(signal, "SIGALRM") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def give_up(signum, frame):
        pytest.fail(f"too slow: {what} took more than {seconds} s; count pairs over the distinct "
                    f"pre-tokens (with their counts), not over the whole text", pytrace=False)

    previous = signal.signal(signal.SIGALRM, give_up)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ---------------------------------------------------------------- corpora

def small_corpus(seed, n_words=150):
    """Words over a tiny alphabet (many ties), with unicode, digits, punctuation and odd spacing."""
    rng = random.Random(seed)
    letters = ["a", "b", "c", "d", "é", "日", "本", "🙂"]
    gaps = [" ", " ", " ", "  ", "\n", "\r\n", "\t", ", ", ". ", "'s ", "'ll "]
    out = []
    for _ in range(n_words):
        if rng.random() < 0.1:
            out.append(str(rng.randint(0, 999)))
        else:
            out.append("".join(rng.choice(letters[:rng.randint(2, len(letters))])
                               for _ in range(rng.randint(1, 6))))
        out.append(rng.choice(gaps))
    return "".join(out)


def pseudo_english(n_chars, seed):  # llmfs: not an oracle (builds a seeded corpus)
    """Seeded text that looks like English to a tokenizer: a Zipf-distributed lexicon of
    made-up words, capitals, punctuation, numbers, dialogue and a little unicode."""
    rng = random.Random(seed)
    onsets = ["", "b", "br", "c", "ch", "d", "f", "g", "h", "l", "m", "n", "p", "r", "s", "sh",
              "st", "t", "th", "tr", "w", "y"]
    vowels = ["a", "e", "i", "o", "u", "ea", "ou", "ai", "ee"]
    codas = ["", "", "n", "r", "s", "t", "nd", "ng", "ll", "ck", "st"]
    lexicon = sorted({"".join(rng.choice(onsets) + rng.choice(vowels) + rng.choice(codas)
                              for _ in range(rng.choice([1, 1, 2, 2, 3])))
                      for _ in range(800)})
    rng.shuffle(lexicon)
    lexicon[:6] = ["the", "and", "of", "to", "café", "東京"]
    weights = [1.0 / (rank + 1) for rank in range(len(lexicon))]
    speakers = ["ROMEO", "JULIET", "First Citizen", "MENENIUS"]
    out, size = [], 0
    while size < n_chars:
        if rng.random() < 0.15:
            out.append(f"\n\n{rng.choice(speakers)}:\n")
        words = rng.choices(lexicon, weights, k=rng.randint(3, 14))
        words[0] = words[0].capitalize()
        if rng.random() < 0.2:
            words.insert(rng.randrange(len(words)), str(rng.randint(1, 2000)))
        if rng.random() < 0.2:
            words[-1] += rng.choice(["'s", "'ll", "'d"])
        sentence = " ".join(words) + rng.choice([".", ".", ",", "!", "?", ";", " 🙂"])
        out.append(sentence + rng.choice([" ", " ", "\n"]))
        size += len(sentence) + 1
    return "".join(out)


# ---------------------------------------------------------------- snapshots
# What the reference learns from seeded corpora: each snapshot probe returns
# the corpus (the input) with the merges and new vocab entries (the outputs).

SMALL_SEEDS = [1, 2, 3, 4, 5]
TRAINED = {"trained_400": (400, ()), "trained_400_eot": (400, (EOT,)), "trained_450_eot": (450, (EOT,))}


def trained_as_snapshot(pkg, text, vocab_size, specials, keep_text=True, **inputs):
    vocab, merges = pkg.tokenizer.train_bpe(text, vocab_size, specials)
    return {"text": text if keep_text else "", "vocab_size": vocab_size, "specials": list(specials), **inputs,
            "merges": merges, "new_tokens": sorted((i, t) for i, t in vocab.items() if i >= 256)}


def snapshot_small_corpora(pkg):
    return {f"small_{seed}": trained_as_snapshot(pkg, small_corpus(seed), 256 + 40 + 10 * seed, [])
            for seed in SMALL_SEEDS}


def snapshot_special_tokens(pkg):
    corpus = EOT.join(small_corpus(s, 60) for s in range(6)) + EOT + EOT + "<|pad|>" + EOT
    return {"specials": trained_as_snapshot(pkg, corpus, 330, [EOT, "<|pad|>"])}


def snapshot_streamed(pkg):
    rng = random.Random(7)
    text = EOT.join(small_corpus(s, 80) for s in range(4))
    chunks = random_cuts(text, rng, 60) + ["x\r", "\ny", "'l", "l go", "<|endof", "text|>", "z  ", "w"]
    return {"streamed": trained_as_snapshot(pkg, "".join(chunks), 320, [EOT], keep_text=False, chunks=chunks)}


def snapshot_tokenizers(pkg):
    """Vocabularies and merges the encode/decode tests use."""
    corpus = small_corpus(0, 300) + " ".join(HARD_TEXTS) + pseudo_english(3000, 0)
    return {name: trained_as_snapshot(pkg, corpus, size, specials, keep_text=False)
            for name, (size, specials) in TRAINED.items()}


SNAP = load_snapshot(__file__)


def stored(name):
    """(text, vocab_size, specials, vocab, merges) of a snapshot, as train_bpe returns them."""
    snap = SNAP[name]
    vocab = {**{i: bytes([i]) for i in range(256)}, **{i: t for i, t in snap["new_tokens"]}}
    return snap["text"], snap["vocab_size"], snap["specials"], vocab, [tuple(m) for m in snap["merges"]]


def trained(name):
    """A vocab, merges and special tokens to test Tokenizer with (learned by the reference, not by you)."""
    _, _, specials, vocab, merges = stored(name)
    return vocab, merges, specials


def random_cuts(text, rng, n):
    cuts = sorted(rng.sample(range(1, len(text)), min(n, len(text) - 1))) if len(text) > 1 else []
    return [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)])]


# ---------------------------------------------------------------- pre-tokenization

def test_pretokenize_examples(student):
    cases = {
        "Hello, world!  ok": ["Hello", ",", " world", "!", " ", " ok"],
        "I'll go, they're 42x": ["I", "'ll", " go", ",", " they", "'re", " 42", "x"],
        "a\r\n\r\nb": ["a", "\r\n\r", "\n", "b"],
        "end  \n\n\n": ["end", "  \n\n\n"],
        "x   y": ["x", "  ", " y"],
        "東京タワー 🙂🙃!": ["東京タワー", " 🙂🙃!"],
    }
    got = student.run(pretokenize_probe, list(cases))
    for (text, want), pieces in zip(cases.items(), got):
        assert_equal(pieces, want, what=f"pretokenize({text!r})",
                     hint="use regex.findall with GPT2_PATTERN (the `regex` package: \\p{L} needs it)")


@PROPERTY
@given(texts=st.lists(RANDOM_TEXT, min_size=1, max_size=10))
def test_pretokenize_matches_the_gpt2_pattern_on_random_text(student, texts):
    got = student.run(pretokenize_probe, texts)
    for text, pieces in zip(texts, got):
        assert_equal(pieces, regex.findall(GPT2_PATTERN, text), what=f"pretokenize({text!r})",
                     hint="the pieces must be exactly GPT2_PATTERN's matches, in order")


# ---------------------------------------------------------------- special tokens and merges

@pytest.mark.parametrize("text, specials, want", [
    ("a<|x|>b", ["<|x|>"], ["a", "<|x|>", "b"]),
    (EOT + EOT, [EOT], [EOT, EOT]),
    ("hi" + EOT + EOT + "there" + EOT, [EOT], ["hi", EOT, EOT, "there", EOT]),
    ("<|a|><|a|><|b|>", ["<|a|>", "<|a|><|b|>"], ["<|a|>", "<|a|><|b|>"]),
    ("x<|a|><|b|>y<|a|>", ["<|a|><|b|>", "<|a|>"], ["x", "<|a|><|b|>", "y", "<|a|>"]),
    ("no specials here", [], ["no specials here"]),
    ("a.b*c", [".", "*"], ["a", ".", "b", "*", "c"]),
], ids=["simple", "two-in-a-row", "several", "prefix-given-first", "prefix-given-last",
        "none", "regex-characters"])
def test_split_on_specials(student, text, specials, want):
    got = student.run(split_probe, text, specials)
    assert_equal(got, want, what=f"split_on_specials({text!r}, {specials!r})",
                 hint="try the longest special token first, escape them (regex.escape), drop empty pieces")


@pytest.mark.parametrize("tokens, pair, want", [
    ([b"a", b"a", b"a"], (b"a", b"a"), [b"aa", b"a"]),
    ([b"a", b"a", b"a", b"a"], (b"a", b"a"), [b"aa", b"aa"]),
    ([b"a", b"b", b"a", b"b"], (b"a", b"b"), [b"ab", b"ab"]),
    ([b"x", b"a", b"b"], (b"a", b"b"), [b"x", b"ab"]),
    ([b"b", b"a"], (b"a", b"b"), [b"b", b"a"]),
    ([b"th", b"e", b" ", b"th", b"e"], (b"th", b"e"), [b"the", b" ", b"the"]),
], ids=["overlap-3", "overlap-4", "twice", "at-end", "absent", "longer-tokens"])
def test_merge_pair(student, tokens, pair, want):
    got = student.run(merge_pair_probe, tokens, pair)
    assert_equal(got, want, what=f"merge_pair({tokens!r}, {pair!r})",
                 hint="scan left to right; after a merge skip both tokens, so occurrences never overlap")


# ---------------------------------------------------------------- training

def test_train_textbook_example(student):
    vocab, merges = student.run(train_probe, "aaabdaaabac", 259, [])
    assert_equal(merges, [(b"a", b"a"), (b"aa", b"a"), (b"aaa", b"b")], what='merges learned from "aaabdaaabac"',
                 hint='"aaa" holds two overlapping "aa" pairs, which both count; then (b"aa", b"a") ties with '
                      '(b"a", b"b") at 2 and wins, because b"aa" > b"a"')
    want = {**{i: bytes([i]) for i in range(256)}, 256: b"aa", 257: b"aaa", 258: b"aaab"}
    assert_equal(vocab, want, what='vocab learned from "aaabdaaabac"',
                 hint="ids 0..255 are the single bytes; each merge adds the next id")


def test_train_breaks_ties_by_the_greatest_pair(student):
    # Every pair occurs once. The greatest pair of bytes objects wins: (b"c", b"d") first;
    # then (b"a", b"b") beats (b" ", b"cd") since b"a" > b" ".
    _, merges = student.run(train_probe, "ab cd", 259, [])
    assert_equal(merges, [(b"c", b"d"), (b"a", b"b"), (b" ", b"cd")], what='merges learned from "ab cd"',
                 hint="among the most frequent pairs take max((count, (a, b))): the greatest pair wins")
    # After (b"a", b"a"), four pairs tie at 1. (b"z", b"z") is the greatest; then (b"aa", b"a") beats
    # (b"a", b"z") because b"aa" > b"a", though "aaa" < "az": compare the pair, not a + b, nor ids.
    _, merges = student.run(train_probe, "azz aaa", 259, [])
    assert_equal(merges, [(b"a", b"a"), (b"z", b"z"), (b"aa", b"a")], what='merges learned from "azz aaa"',
                 hint="compare pairs as tuples of bytes (a, b): not their concatenation a + b, not their ids")


@pytest.mark.parametrize("seed", SMALL_SEEDS)
def test_train_matches_the_reference_on_small_corpora(student, seed):
    corpus, vocab_size, _, want_vocab, want_merges = stored(f"small_{seed}")
    with time_limit(60, f"train_bpe on {len(corpus)} characters"):
        vocab, merges = student.run(train_probe, corpus, vocab_size, [])
    assert_equal(merges, want_merges, what=f"merges learned from small_corpus({seed}) at vocab_size={vocab_size}",
                 hint="count pairs inside pre-tokens, weighted by how often each pre-token occurs; "
                      "break ties with the greatest pair")
    assert_equal(vocab, want_vocab, what=f"vocab learned from small_corpus({seed})")


def test_train_with_special_tokens(student):
    corpus, vocab_size, specials, want_vocab, want_merges = stored("specials")
    vocab, merges = student.run(train_probe, corpus, vocab_size, specials)
    assert_equal(vocab.get(256), EOT.encode(), what="vocab[256]",
                 hint="special tokens take ids 256, 257, ... in the order given, before any merge")
    assert_equal(vocab.get(257), b"<|pad|>", what="vocab[257]")
    assert_equal(merges, want_merges, what="merges learned from a corpus with <|endoftext|> between documents",
                 hint="cut the special tokens out of the text before pre-tokenizing; never count pairs across them")
    assert_equal(vocab, want_vocab, what="vocab learned with two special tokens",
                 hint="vocab_size counts the 256 bytes, the special tokens and the merges")


def test_train_on_streamed_chunks_equals_joined_text(student):
    _, vocab_size, specials, want_vocab, want_merges = stored("streamed")
    vocab, merges = student.run(train_streamed_probe, SNAP["streamed"]["chunks"], vocab_size, specials)
    assert_equal(merges, want_merges, what="merges learned from a generator of chunks (cut anywhere)",
                 hint='train on "".join(chunks): "\\r" + "\\n", "\'l" + "l", "<|endof" + "text|>" cut across '
                      'chunks must not change anything; pre-tokenize only what can no longer change')
    assert_equal(vocab, want_vocab, what="vocab learned from a generator of chunks")


def test_train_stops_when_nothing_is_left_to_merge(student):
    vocab, merges = student.run(train_probe, "ab ab", 1000, [])
    assert_equal(merges, [(b"a", b"b"), (b" ", b"ab")], what='merges learned from "ab ab" at vocab_size=1000',
                 hint="stop when no pair is left, even if the vocabulary is smaller than vocab_size")
    assert_equal(sorted(vocab), list(range(258)), what='ids of the vocab learned from "ab ab"')


def test_train_on_pseudo_english_gets_the_requested_size(student):
    corpus = pseudo_english(20_000, 11)
    with time_limit(60, f"train_bpe on {len(corpus)} characters"):
        vocab, merges = student.run(train_probe, corpus, 500, [EOT])
    assert_equal(sorted(vocab), list(range(500)), what="ids of a 500-token vocab",
                 hint="vocab_size counts everything: 256 bytes + special tokens + merges")
    assert_equal(len(merges), 500 - 257, what="number of merges at vocab_size=500 with one special token")
    for i, (a, b) in enumerate(merges):
        assert_equal(vocab[257 + i], a + b, what=f"vocab[{257 + i}], made by merge {i}")


# ---------------------------------------------------------------- encode and decode

def test_encode_textbook_example(student):
    merges = [(b"a", b"a"), (b"aa", b"a"), (b"aaa", b"b")]
    vocab = {**{i: bytes([i]) for i in range(256)}, 256: b"aa", 257: b"aaa", 258: b"aaab"}
    texts = ["aaabdaaabac", "aaaa", "baaab"]
    got = student.run(encode_probe, vocab, merges, [], texts)
    want = [[258, ord("d"), 258, ord("a"), ord("c")], [256, 256], [ord("b"), 258]]
    for text, ids, w in zip(texts, got, want):
        assert_equal(ids, w, what=f"encode({text!r}) with merges {merges}",
                     hint="apply the earliest-learned merge first, until no pair of the word is a merge")


def test_encode_matches_hf_tokenizers(student):
    vocab, merges, specials = trained("trained_450_eot")
    rng = random.Random(3)
    alphabet = "abcdeé日本🙂 \n\r\t,.'" + EOT
    texts = [*HARD_TEXTS, pseudo_english(600, 5), EOT + "Once" + EOT + EOT + " upon\r\n" + EOT,
             *("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))) for _ in range(40))]
    got = student.run(encode_probe, vocab, merges, specials, texts)
    hf = hf_tokenizer(vocab, merges, specials)
    for text, ids in zip(texts, got):
        assert_equal(ids, hf.encode(text, add_special_tokens=False).ids, what=f"encode({text!r})",
                     hint="special tokens first, then pre-tokenize, then in each pre-token apply the "
                          "lowest-ranked merge present, again and again")


@pytest.mark.parametrize("specials, text", [
    ([EOT], EOT + EOT),
    ([EOT], "a" + EOT + EOT + "b" + EOT),
    (["<|a|>", "<|a|><|b|>"], "<|a|><|a|><|b|> <|a|>"),
    (["<|a|><|b|>", "<|a|>"], "x<|a|><|b|><|b|>"),
    ([EOT, "<|end|>"], "<|end<|end|>" + EOT + "|>"),
], ids=["doubled", "around-text", "prefix-given-first", "prefix-given-last", "almost-special"])
def test_encode_overlapping_special_tokens(student, specials, text):
    vocab, merges, _ = trained("trained_400")
    vocab = {**vocab, **{len(vocab) + i: s.encode() for i, s in enumerate(specials)}}
    got = student.run(encode_probe, vocab, merges, specials, [text])[0]
    want = hf_tokenizer(vocab, merges, specials).encode(text, add_special_tokens=False).ids
    assert_equal(got, want, what=f"encode({text!r}) with special tokens {specials!r}",
                 hint="the longest special token that matches wins, so try longer ones first")


def test_special_tokens_missing_from_a_vocab_with_gaps_get_the_next_free_ids(student):
    # Ids 256..299 are unused (a pruned vocabulary); 300 is b"ab". The special tokens are not in
    # the vocab, so they get max id + 1 = 301, then 302: not len(vocab) = 257, which is free here
    # but in general may be taken.
    vocab = {**{i: bytes([i]) for i in range(256)}, 300: b"ab"}
    text = EOT + "ab" + "<|pad|>" + " ab"
    got = student.run(encode_probe, vocab, [(b"a", b"b")], [EOT, "<|pad|>"], [text])[0]
    assert_equal(got, [301, 300, 302, ord(" "), 300],
                 what=f"encode({text!r}) with vocab ids 0..255 and 300 (b'ab'), special tokens {EOT!r} and "
                      "'<|pad|>' not in the vocab",
                 hint="a special token missing from vocab gets the next free id, max(vocab) + 1 (then + 2, ...); "
                      "len(vocab) is not free when the ids have gaps")
    back = student.run(decode_probe, vocab, [(b"a", b"b")], [EOT, "<|pad|>"], [[301, 300, 302]])[0]
    assert_equal(back, EOT + "ab<|pad|>", what="decode([301, 300, 302]) with those special tokens",
                 hint="decode must know the ids the special tokens were given")


def test_decode_invalid_utf8_gives_replacement_characters(student):
    vocab, merges, _ = trained("trained_400")
    by_bytes = {tok: i for i, tok in vocab.items()}
    snow = "日".encode()  # 3 bytes: e6 97 a5
    id_lists = [[by_bytes[snow[:1]], by_bytes[snow[1:2]]],  # a character cut short
                [by_bytes[b"\xff"], ord("a")],  # a byte that is never UTF-8
                [by_bytes[snow[:1]], by_bytes[snow[1:2]], by_bytes[snow[2:]]],  # a character split over ids
                [ord("a"), by_bytes[b"\x80"], ord("b"), by_bytes[b"\xe6"]],
                []]
    got = student.run(decode_probe, vocab, merges, [], id_lists)
    for ids, text in zip(id_lists, got):
        want = b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")
        assert_equal(text, want, what=f"decode({ids})",
                     hint="join the bytes of all ids first, then .decode('utf-8', errors='replace'); "
                          "decoding id by id breaks characters that span several tokens")


def test_round_trip_on_hard_text(student):
    vocab, merges, specials = trained("trained_400_eot")
    texts = [*HARD_TEXTS, EOT.join(HARD_TEXTS), "\r\n" * 5 + " " * 9 + "\t\n" * 3]
    got = student.run(round_trip_probe, vocab, merges, specials, texts)
    for text, back in zip(texts, got):
        assert_equal(back, text, what=f"decode(encode({text!r}))",
                     hint="encoding must lose nothing: every byte of the text ends up in some token")


@PROPERTY
@given(texts=st.lists(RANDOM_TEXT, min_size=1, max_size=10))
def test_round_trip_on_random_unicode(student, texts):
    vocab, merges, specials = trained("trained_400_eot")
    got = student.run(round_trip_probe, vocab, merges, specials, texts)
    for text, back in zip(texts, got):
        assert_equal(back, text, what=f"decode(encode({text!r}))")


# ---------------------------------------------------------------- streaming

@pytest.mark.parametrize("how", ["lines", "characters", "random-cuts", "nasty-cuts"])
def test_encode_iterable_equals_encode_of_the_joined_text(student, how):
    vocab, merges, specials = trained("trained_400_eot")
    text = (pseudo_english(1500, 2) + EOT + "end  \n\n\nI'll go\r\n\r\n" + EOT + EOT + "  x"
            + "".join(HARD_TEXTS))
    if how == "lines":
        chunks = text.splitlines(keepends=True)
    elif how == "characters":
        chunks = list(text)
    elif how == "random-cuts":
        chunks = random_cuts(text, random.Random(1), 200)
    else:
        chunks = ["I'", "ll say\r", "\nx  ", "  ", "y<|endof", "text|><|endoftext", "|>", "", "z \n", "\n"]
        text = "".join(chunks)
    got = student.run(encode_iterable_probe, vocab, merges, specials, chunks)
    want = hf_tokenizer(vocab, merges, specials).encode(text, add_special_tokens=False).ids
    assert_equal(got, want, what=f"list(encode_iterable(chunks)) with chunks cut by {how}",
                 hint='the ids must be those of "".join(chunks): a pre-token or a special token may be cut '
                      "across chunks; hold back the end of the buffer until more text arrives")


def test_encode_iterable_is_lazy(student):
    vocab, merges, _ = trained("trained_400")
    seen, n = student.run(lazy_probe, vocab, merges, 100_000, 50)
    assert_equal(n, 50, what="number of ids taken from encode_iterable over 100000 lines")
    if seen > 1000:
        raise Mismatch(f"encode_iterable read {seen} of 100000 lines before giving out its first 50 ids",
                       hint="make it a generator that yields ids as it reads, so memory does not grow with "
                            "the input (do not join or list the lines first)")


# ---------------------------------------------------------------- save and load

def test_save_and_load_round_trip(student):
    specials = [EOT, "<|ünï|>"]
    merges = [(b"h", b"e"), (b"he", b"l"), (b"hel", b"l"), (b"hell", b"o"), (b"\r", b"\n"),
              (b"\\", b"x"), (b"\\x", b"4"), (b"\\x4", b"1"), (b"\xe6", b"\x97"), (b"\xe6\x97", b"\xa5"),
              (b"\xc3", b"\xa9"), (b"f", b"\xc3\xa9"), (b" ", b"\"")]
    vocab = {i: bytes([i]) for i in range(256)}
    for s in specials:
        vocab[len(vocab)] = s.encode()
    for a, b in merges:
        vocab[len(vocab)] = a + b
    texts = ["hello\r\nworld\r\n", "\\x41 is not A", "日本 café", EOT + "hello" + EOT + "<|ünï|>",
             ' "quoted" \\ backslash', "\x00\x01 control"]
    saved, before, after, decoded = student.run(save_load_probe, vocab, merges, specials, texts)
    try:
        saved_text = saved.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Mismatch("the saved file is not UTF-8 text", str(e),
                       hint='open the file with encoding="utf-8" and write text, not raw bytes or pickle') from None
    if "hello" not in saved_text:
        raise Mismatch("the saved file does not show the token b'hello' as readable text",
                       hint="write tokens as text a person can read, e.g. JSON strings")
    for text, b, a, d in zip(texts, before, after, decoded):
        assert_equal(a, b, what=f"encode({text!r}) after save and load, compared with before",
                     hint="save must keep every token byte for byte: tokens may be invalid UTF-8, and may hold "
                          "\\r, \\n, quotes and backslashes; keep the special tokens too")
        assert_equal(d, text, what=f"decode after load of encode({text!r})")


# ---------------------------------------------------------------- compression

def test_compression_close_to_hf_tokenizers(student):
    corpus = pseudo_english(30_000, 1)
    vocab_size = 500
    with time_limit(60, f"train_bpe on {len(corpus)} characters"):
        n_vocab, n_ids, round_trip = student.run(compression_probe, corpus, vocab_size)
    assert_equal(round_trip, True, what="decode(encode(corpus)) == corpus for a 30000-character corpus")
    assert_equal(n_vocab, vocab_size, what="size of the vocab trained at vocab_size=500")
    mine = len(corpus.encode("utf-8")) / n_ids
    theirs = hf_bytes_per_token(corpus, vocab_size)
    assert_close(mine / theirs, 1.0, atol=0.02, rtol=0,
                 what=f"your bytes per token ({mine:.4f}) relative to HF tokenizers' BpeTrainer ({theirs:.4f}), "
                      f"both at vocab_size={vocab_size}",
                 hint="below 1: merges are learned or applied in the wrong order; above 1: merges cross "
                      "pre-token boundaries")
