"""Unit u02: byte-level BPE tokenization.

A language model reads a sequence of integers, so text must become token
ids and back. Byte-level BPE (byte-pair encoding, as in GPT-2) does it in
three steps:

1. **Bytes.** Encode the text as UTF-8. Every string becomes a sequence of
   values 0..255, so ids 0..255 are the 256 single bytes and no text is ever
   out of vocabulary: emoji, CJK and invalid-looking input all encode.
2. **Pre-tokenize.** Cut the text into words with the GPT-2 pattern
   (`GPT2_PATTERN`): a word keeps its leading space (" the"), digits and
   punctuation form their own pieces, runs of whitespace stay together.
   Merges never cross a piece boundary, so "dog." and "dog!" share " dog".
3. **Merge.** Training repeats: count every adjacent pair of tokens inside
   the words (each word weighted by how often it occurs), and merge the most
   frequent pair (a, b) into a new token a + b everywhere. The list of merges,
   in the order they were learned, *is* the tokenizer. Encoding a word
   replays them: while some adjacent pair is a known merge, merge the pair
   that was learned first.

   "aaabdaaabac", vocab_size=259:  pairs aa:4 ab:2 ...  -> merge (a, a)
   [aa a b d aa a b a c]:           (aa, a):2 ties (a, b):2 -> (aa, a) wins
   [aaa b d aaa b a c]:             (aaa, b):2             -> merge (aaa, b)
   vocab: 0..255 bytes, 256 b"aa", 257 b"aaa", 258 b"aaab"

Conventions of this course (the tests rely on them):

- ``vocab`` maps id -> bytes. Ids 0..255 are the single bytes, bytes([i]);
  the special tokens come next, 256, 257, ... in the order given; then one
  new id per merge, in the order learned. ``vocab_size`` counts all of them.
- Ties: among the pairs with the highest count, merge the lexicographically
  greatest pair of bytes objects, i.e. ``max`` over ``(count, (a, b))``:
  (b"a", b"bc") < (b"ab", b"c") because b"a" < b"ab".
- Special tokens (e.g. "<|endoftext|>") are cut out of the text before
  pre-tokenizing, never merged with anything, and encode to their own id.
  Where two special tokens could match at the same place, the longer wins.
- Text given as several chunks means the same as the chunks joined.

Read exercises/units/u02_tokenization/README.md first. Check your work with
`llmfs check u02` or `pytest exercises/tests -m u02`. Measure your training
speed against HF tokenizers with `python benchmarks/bpe.py CORPUS`.
Not allowed here: the `tokenizers` package (see course.toml).
"""

from __future__ import annotations

import heapq  # noqa: F401  (useful for a fast train_bpe)
import json  # noqa: F401  (useful for save and load)
from collections import Counter, defaultdict  # noqa: F401
from collections.abc import Iterable, Iterator, Sequence

import regex  # noqa: F401  (the `regex` package: it knows \p{L}, unlike `re`)

# The pre-tokenization pattern of GPT-2: contractions, optionally-spaced runs
# of letters, of digits, of other symbols, and whitespace. `\s+(?!\S)` takes
# a run of whitespace but leaves its last space to the word that follows.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def pretokenize(text: str) -> list[str]:
    """Cut `text` into pre-tokens with GPT2_PATTERN; joined, they give back `text`.

    pretokenize("Hello, world!  ok") == ["Hello", ",", " world", "!", " ", " ok"]
    """
    # TODO(u02): Return all matches of GPT2_PATTERN in `text`, in order
    # (regex.findall; compile the pattern once, at module level, for speed).
    raise NotImplementedError("u02: pretokenize")


def split_on_specials(text: str, special_tokens: Sequence[str]) -> list[str]:
    """Cut `text` around the special tokens, keeping them as pieces of their own.

    split_on_specials("a<|x|>b", ["<|x|>"]) == ["a", "<|x|>", "b"]. The
    leftmost match wins; where several special tokens match at the same
    place, the longest. No empty pieces.
    """
    # TODO(u02): With no special tokens, return [text] (or [] for "").
    # Otherwise build one pattern "(s1|s2|...)" with every token escaped
    # (regex.escape: "|" and "." mean something in a pattern), the longest
    # first, so "<|a|><|b|>" is tried before "<|a|>". regex.split with a
    # capturing group keeps the separators. Drop the empty pieces.
    raise NotImplementedError("u02: split_on_specials")


def iter_pretokens(chunks: Iterable[str], special_tokens: Sequence[str] = ()) -> Iterator[str]:
    """The special tokens and pre-tokens of "".join(chunks), in order, read lazily.

    The end of what has been read so far may still split differently once
    more text arrives ("'l" + "l" is "'ll", "<|endof" + "text|>" is a special
    token, "  " + "x" is " " and " x"). So after each chunk, only pieces that
    end at least `hold` characters before the end of the buffer are given
    out; the rest waits for the next chunk. Memory stays bounded by the
    longest piece plus one chunk, whatever the length of the stream.
    """
    # TODO(u02): A generator.
    #   hold = 3 + the length of the longest special token (3 without any)
    #   buffer = ""
    #   for each chunk: buffer += chunk; then walk the pieces of the buffer
    #     (split_on_specials, then pretokenize every part that is not a
    #     special token) and yield each piece that ends at or before
    #     len(buffer) - hold; stop at the first that does not, and keep the
    #     buffer from there on.
    #   At the end, yield the pieces of what is left.
    # Three characters are a safe margin for GPT2_PATTERN: whether a match
    # ends where it does depends only on the character right after it.
    raise NotImplementedError("u02: iter_pretokens")


def merge_pair(tokens: list[bytes], pair: tuple[bytes, bytes]) -> list[bytes]:
    """Replace every occurrence of `pair` in `tokens`, scanning left to right.

    Occurrences do not overlap: merging (a, a) in [a, a, a] gives [aa, a].
    """
    # TODO(u02): Walk i along `tokens`; where tokens[i], tokens[i + 1] is
    # the pair, append a + b and skip two, else append tokens[i] and skip one.
    raise NotImplementedError("u02: merge_pair")


def train_bpe(text: str | Iterable[str], vocab_size: int,
              special_tokens: Sequence[str] = ()) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]]]:
    """Learn merges from `text` until the vocabulary has `vocab_size` tokens.

    Returns (vocab, merges): vocab maps id -> bytes (0..255 the bytes, then the
    special tokens, then merged tokens); merges lists the merged pairs in the
    order they were learned. Stops early when no pair is left to merge.
    Ties go to the lexicographically greatest pair of bytes.
    `text` is a str or an iterable of str (a file, read line by line).
    """
    # TODO(u02): Make it correct first:
    #   1. vocab = the 256 bytes, then the special tokens (UTF-8) at 256, ...;
    #      raise ValueError if vocab_size is smaller than that.
    #   2. Count the pre-tokens with a Counter over iter_pretokens(...),
    #      leaving the special tokens out. Work on the distinct pre-tokens,
    #      each a list of single bytes, with its count.
    #   3. Until len(vocab) == vocab_size: count all adjacent pairs (weighted
    #      by the counts); stop if there are none; pick
    #      max(pairs, key=lambda p: (pairs[p], p)); append it to merges, add
    #      a + b to vocab with the next id, merge_pair it in every word.
    # Then make it fast (see the reading and benchmarks/bpe.py): keep the
    # pair counts and, for each pair, the set of words that contain it; a
    # merge only changes those words, so subtract their old pairs and add
    # their new ones. A heap (heapq) finds the most frequent pair quickly.
    raise NotImplementedError("u02: train_bpe")


class Tokenizer:
    """Encodes text into token ids and decodes ids into text with given merges."""

    def __init__(self, vocab: dict[int, bytes], merges: list[tuple[bytes, bytes]],
                 special_tokens: Sequence[str] = ()):
        # TODO(u02): Keep what encode and decode need:
        #   - the vocab (id -> bytes) and the reverse map bytes -> id for
        #     ordinary tokens;
        #   - each merge's rank, its index in `merges` (lower = learned first);
        #   - the special tokens and their ids: the id whose bytes are the
        #     token's UTF-8; a special token missing from vocab gets the next
        #     free id, max(vocab) + 1.
        raise NotImplementedError("u02: Tokenizer.__init__")

    def encode_word(self, word: str) -> list[int]:
        """Ids of one pre-token: its bytes, then the earliest-learned merge, again and again."""
        # TODO(u02): tokens = the word's UTF-8 bytes, one bytes object each.
        # While there are two or more: among the adjacent pairs, find the one
        # with the lowest rank; if none is a merge, stop; else merge_pair it.
        # Map the tokens to ids. (Remembering the ids of words already seen
        # in a dict makes encoding much faster: words repeat a lot.)
        raise NotImplementedError("u02: Tokenizer.encode_word")

    def encode(self, text: str) -> list[int]:
        """Token ids for `text`: special tokens first, then pre-tokens, then merges."""
        # TODO(u02): The ids of encode_iterable([text]), as a list.
        raise NotImplementedError("u02: Tokenizer.encode")

    def encode_iterable(self, lines: Iterable[str]) -> Iterator[int]:
        """Yield the ids of "".join(lines) lazily: the same ids as encode() on the joined text."""
        # TODO(u02): A generator over iter_pretokens(lines, special tokens):
        # a special token gives its id, any other piece encode_word's ids.
        raise NotImplementedError("u02: Tokenizer.encode_iterable")

    def decode(self, ids: Iterable[int]) -> str:
        """The text of `ids`: their bytes joined, invalid UTF-8 shown as U+FFFD."""
        # TODO(u02): Join the bytes of all ids first (a character may span
        # several tokens), then .decode("utf-8", errors="replace").
        raise NotImplementedError("u02: Tokenizer.decode")

    def save(self, path) -> None:
        """Write the tokenizer to `path` as UTF-8 text that a person can read."""
        # TODO(u02): Write the vocab, the merges and the special tokens, e.g.
        # as JSON, with open(path, "w", encoding="utf-8"). Tokens are bytes
        # and need not be valid UTF-8 (b"\xe6" is a third of a character):
        # pick a text form that shows readable tokens as themselves and
        # still gives back every byte, e.g. UTF-8 where it decodes and
        # "\xNN" escapes (with "\" written as "\\") where it does not.
        raise NotImplementedError("u02: Tokenizer.save")

    @classmethod
    def load(cls, path) -> Tokenizer:
        """Read a file written by `save`."""
        # TODO(u02): Read with encoding="utf-8", turn the text back into
        # bytes, and return cls(vocab, merges, special_tokens).
        raise NotImplementedError("u02: Tokenizer.load")
