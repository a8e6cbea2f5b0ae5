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
"""

from __future__ import annotations

import heapq
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence

import regex

# The pre-tokenization pattern of GPT-2: contractions, optionally-spaced runs
# of letters, of digits, of other symbols, and whitespace. `\s+(?!\S)` takes
# a run of whitespace but leaves its last space to the word that follows.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
_GPT2 = regex.compile(GPT2_PATTERN)


def pretokenize(text: str) -> list[str]:
    """Cut `text` into pre-tokens with GPT2_PATTERN; joined, they give back `text`.

    pretokenize("Hello, world!  ok") == ["Hello", ",", " world", "!", " ", " ok"]
    """
    return _GPT2.findall(text)


def split_on_specials(text: str, special_tokens: Sequence[str]) -> list[str]:
    """Cut `text` around the special tokens, keeping them as pieces of their own.

    split_on_specials("a<|x|>b", ["<|x|>"]) == ["a", "<|x|>", "b"]. The
    leftmost match wins; where several special tokens match at the same
    place, the longest. No empty pieces.
    """
    if not special_tokens:
        return [text] if text else []
    longest_first = sorted(special_tokens, key=len, reverse=True)
    pattern = "(" + "|".join(regex.escape(s) for s in longest_first) + ")"
    return [piece for piece in regex.split(pattern, text) if piece]


def iter_pretokens(chunks: Iterable[str], special_tokens: Sequence[str] = ()) -> Iterator[str]:
    """The special tokens and pre-tokens of "".join(chunks), in order, read lazily.

    The end of what has been read so far may still split differently once
    more text arrives ("'l" + "l" is "'ll", "<|endof" + "text|>" is a special
    token, "  " + "x" is " " and " x"). So after each chunk, only pieces that
    end at least `hold` characters before the end of the buffer are given
    out; the rest waits for the next chunk. Memory stays bounded by the
    longest piece plus one chunk, whatever the length of the stream.
    """
    specials = set(special_tokens)
    hold = 3 + max((len(s) for s in specials), default=0)
    buffer = ""
    for chunk in chunks:
        buffer += chunk
        safe = len(buffer) - hold
        done = 0
        for piece in _pieces(buffer, special_tokens, specials):
            if done + len(piece) > safe:
                break
            yield piece
            done += len(piece)
        buffer = buffer[done:]
    yield from _pieces(buffer, special_tokens, specials)


def _pieces(text: str, special_tokens: Sequence[str], specials: set[str]) -> Iterator[str]:
    for part in split_on_specials(text, special_tokens):
        if part in specials:
            yield part
        else:
            yield from pretokenize(part)


def merge_pair(tokens: list[bytes], pair: tuple[bytes, bytes]) -> list[bytes]:
    """Replace every occurrence of `pair` in `tokens`, scanning left to right.

    Occurrences do not overlap: merging (a, a) in [a, a, a] gives [aa, a].
    """
    a, b = pair
    out: list[bytes] = []
    i = 0
    while i < len(tokens):
        if i + 1 < len(tokens) and tokens[i] == a and tokens[i + 1] == b:
            out.append(a + b)
            i += 2
        else:
            out.append(tokens[i])
            i += 1
    return out


def train_bpe(text: str | Iterable[str], vocab_size: int,
              special_tokens: Sequence[str] = ()) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]]]:
    """Learn merges from `text` until the vocabulary has `vocab_size` tokens.

    Returns (vocab, merges): vocab maps id -> bytes (0..255 the bytes, then the
    special tokens, then merged tokens); merges lists the merged pairs in the
    order they were learned. Stops early when no pair is left to merge.
    Ties go to the lexicographically greatest pair of bytes.

    Counting every pair from scratch after each merge is correct but slow.
    Here the counts are kept up to date instead: a merge of (a, b) changes
    only the words that contain it, so we subtract those words' old pairs
    and add their new ones, and a heap finds the most frequent pair.
    """
    specials = list(dict.fromkeys(special_tokens))
    vocab = {i: bytes([i]) for i in range(256)}
    for s in specials:
        vocab[len(vocab)] = s.encode("utf-8")
    if vocab_size < len(vocab):
        raise ValueError(f"vocab_size={vocab_size} is smaller than the 256 bytes plus "
                         f"{len(specials)} special tokens")

    chunks = [text] if isinstance(text, str) else text
    word_counts = Counter(p for p in iter_pretokens(chunks, specials) if p not in specials)
    words = [[bytes([b]) for b in w.encode("utf-8")] for w in word_counts]
    counts = list(word_counts.values())

    pair_counts: dict[tuple[bytes, bytes], int] = defaultdict(int)
    where: dict[tuple[bytes, bytes], set[int]] = defaultdict(set)  # pair -> words that contain it
    for i, word in enumerate(words):
        for pair in zip(word, word[1:]):
            pair_counts[pair] += counts[i]
            where[pair].add(i)
    heap = [(-n, _Greatest(pair)) for pair, n in pair_counts.items()]
    heapq.heapify(heap)

    merges: list[tuple[bytes, bytes]] = []
    while len(vocab) < vocab_size:
        pair = _pop_most_frequent(heap, pair_counts)
        if pair is None:
            break
        merges.append(pair)
        vocab[len(vocab)] = pair[0] + pair[1]

        change: dict[tuple[bytes, bytes], int] = defaultdict(int)
        for i in where.pop(pair):
            word = words[i]
            merged = merge_pair(word, pair)
            if len(merged) == len(word):  # an old entry: the pair left this word already
                continue
            for p in zip(word, word[1:]):
                change[p] -= counts[i]
            for p in zip(merged, merged[1:]):
                change[p] += counts[i]
                where[p].add(i)
            words[i] = merged
        for p, d in change.items():
            if d == 0:
                continue
            pair_counts[p] += d
            if pair_counts[p] > 0:
                heapq.heappush(heap, (-pair_counts[p], _Greatest(p)))
            else:
                del pair_counts[p]
    return vocab, merges


class _Greatest:
    """Heap entry for a pair: heapq pops the smallest, we want the greatest pair."""

    __slots__ = ("pair",)

    def __init__(self, pair: tuple[bytes, bytes]):
        self.pair = pair

    def __lt__(self, other: _Greatest) -> bool:
        return self.pair > other.pair


def _pop_most_frequent(heap: list, pair_counts: dict) -> tuple[bytes, bytes] | None:
    """Pop the most frequent pair (greatest on ties), skipping outdated entries."""
    while heap:
        neg, entry = heapq.heappop(heap)
        if pair_counts.get(entry.pair) == -neg:
            return entry.pair
    return None


class Tokenizer:
    """Encodes text into token ids and decodes ids into text with given merges."""

    def __init__(self, vocab: dict[int, bytes], merges: list[tuple[bytes, bytes]],
                 special_tokens: Sequence[str] = ()):
        self.vocab = dict(vocab)
        self.merges = [tuple(m) for m in merges]
        self.special_tokens = list(dict.fromkeys(special_tokens))
        self.special_ids: dict[str, int] = {}
        for s in self.special_tokens:
            b = s.encode("utf-8")
            ids = [i for i, tok in self.vocab.items() if tok == b]
            if not ids:  # a special token missing from vocab gets the next free id
                ids = [max(self.vocab, default=-1) + 1]
                self.vocab[ids[0]] = b
            self.special_ids[s] = max(ids)
        self.ranks = {}
        for rank, pair in enumerate(self.merges):
            self.ranks.setdefault(pair, rank)
        self.ids: dict[bytes, int] = {}  # ordinary (non-special) token -> id
        for i in sorted(self.vocab):
            if i not in self.special_ids.values():
                self.ids.setdefault(self.vocab[i], i)
        self._cache: dict[str, list[int]] = {}

    def encode_word(self, word: str) -> list[int]:
        """Ids of one pre-token: its bytes, then the earliest-learned merge, again and again."""
        if word in self._cache:
            return self._cache[word]
        tokens = [bytes([b]) for b in word.encode("utf-8")]
        while len(tokens) > 1:
            pair = min(zip(tokens, tokens[1:]), key=lambda p: self.ranks.get(p, len(self.ranks)))
            if pair not in self.ranks:
                break
            tokens = merge_pair(tokens, pair)
        ids = [self.ids[t] for t in tokens]
        self._cache[word] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        """Token ids for `text`: special tokens first, then pre-tokens, then merges."""
        return list(self.encode_iterable([text]))

    def encode_iterable(self, lines: Iterable[str]) -> Iterator[int]:
        """Yield the ids of "".join(lines) lazily: the same ids as encode() on the joined text."""
        for piece in iter_pretokens(lines, self.special_tokens):
            if piece in self.special_ids:
                yield self.special_ids[piece]
            else:
                yield from self.encode_word(piece)

    def decode(self, ids: Iterable[int]) -> str:
        """The text of `ids`: their bytes joined, invalid UTF-8 shown as U+FFFD."""
        return b"".join(self.vocab[i] for i in ids).decode("utf-8", errors="replace")

    def save(self, path) -> None:
        """Write the tokenizer as JSON that a person can read (see `_token_to_text`)."""
        lines = ["{", '  "format": "scratchllm-bpe-1",',
                 f'  "special_tokens": {json.dumps(self.special_tokens, ensure_ascii=False)},',
                 '  "vocab": {']
        entries = [f"    {json.dumps(str(i))}: {_json_text(tok)}" for i, tok in sorted(self.vocab.items())]
        lines.append(",\n".join(entries))
        lines.append("  },")
        lines.append('  "merges": [')
        entries = [f"    [{_json_text(a)}, {_json_text(b)}]" for a, b in self.merges]
        lines.append(",\n".join(entries))
        lines.append("  ]")
        lines.append("}")
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")

    @classmethod
    def load(cls, path) -> Tokenizer:
        """Read a file written by `save`."""
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        vocab = {int(i): _text_to_token(t) for i, t in data["vocab"].items()}
        merges = [(_text_to_token(a), _text_to_token(b)) for a, b in data["merges"]]
        return cls(vocab, merges, data["special_tokens"])


def _json_text(token: bytes) -> str:
    return json.dumps(_token_to_text(token), ensure_ascii=False)


def _token_to_text(token: bytes) -> str:
    r"""A token as readable text: UTF-8 as itself, "\" as "\\", other bytes as "\xNN".

    _token_to_text(b" caf\xc3\xa9") == " café";  _token_to_text(b"\xe6\x97") == "\\xe6\\x97"
    """
    text = token.decode("utf-8", errors="surrogateescape")  # a bad byte b -> chr(0xDC00 + b)
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif "\udc80" <= ch <= "\udcff":
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        else:
            out.append(ch)
    return "".join(out)


def _text_to_token(text: str) -> bytes:
    """The inverse of `_token_to_text`."""
    out = bytearray()
    i = 0
    while i < len(text):
        if text.startswith("\\\\", i):
            out += b"\\"
            i += 2
        elif text.startswith("\\x", i):
            out.append(int(text[i + 2:i + 4], 16))
            i += 4
        else:
            out += text[i].encode("utf-8")
            i += 1
    return bytes(out)
