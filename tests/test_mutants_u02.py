"""u02's public tests catch the bugs students really make with BPE.

Each mutant is the reference with one realistic bug planted by a text
substitution (see tests/test_mutants.py for the idea).
"""

import pytest

from kit import assert_mutant_caught

# (description, old text, new text), all in tokenizer.py
MUTANTS = [
    # pre-tokenization and special tokens
    ("pattern without the whitespace lookahead",
     r"""|\s+(?!\S)|\s+""", r"""|\s+"""),
    ("special tokens tried shortest first",
     "sorted(special_tokens, key=len, reverse=True)", "sorted(special_tokens, key=len)"),
    ("special tokens tried in the order given",
     "longest_first = sorted(special_tokens, key=len, reverse=True)", "longest_first = list(special_tokens)"),
    ("special tokens not escaped in the pattern",
     'regex.escape(s) for s in longest_first', "s for s in longest_first"),
    # merging one pair
    ("merge_pair does not skip the merged token (overlapping merges)",
     "            out.append(a + b)\n            i += 2", "            out.append(a + b)\n            i += 1"),
    ("merge_pair drops the last token",
     "    while i < len(tokens):\n        if i + 1", "    while i < len(tokens) - 1:\n        if i + 1"),
    # training
    ("ties broken by the smallest pair",
     "return self.pair > other.pair", "return self.pair < other.pair"),
    ("ties broken by the concatenation a + b",
     "return self.pair > other.pair",
     "return self.pair[0] + self.pair[1] > other.pair[0] + other.pair[1]"),
    ("every distinct pre-token counted once, whatever its frequency",
     "counts = list(word_counts.values())", "counts = [1] * len(word_counts)"),
    ("training without pre-tokenization: merges cross word boundaries",
     "word_counts = Counter(p for p in iter_pretokens(chunks, specials) if p not in specials)",
     "word_counts = Counter(p for c in chunks for p in split_on_specials(c, specials) if p not in specials)"),
    ("special tokens trained on as ordinary text",
     "if p not in specials)", ")"),
    ("special tokens take no id",
     '        vocab[len(vocab)] = s.encode("utf-8")\n    if vocab_size', "        pass\n    if vocab_size"),
    ("pairs of a merged word added but the old ones never subtracted",
     "change[p] -= counts[i]", "change[p] -= 0"),
    ("one merge too many",
     "while len(vocab) < vocab_size:", "while len(vocab) <= vocab_size:"),
    ("streamed training text split chunk by chunk",
     "hold = 3 + max((len(s) for s in specials), default=0)", "hold = 0"),
    # encoding and decoding
    ("encode merges the leftmost known pair, not the earliest learned",
     "pair = min(zip(tokens, tokens[1:]), key=lambda p: self.ranks.get(p, len(self.ranks)))",
     "pair = next((p for p in zip(tokens, tokens[1:]) if p in self.ranks), None)"),
    ("encode treats special tokens as text",
     "if piece in self.special_ids:", "if False:"),
    ("stream hold-back ignores the length of special tokens",
     "hold = 3 + max((len(s) for s in specials), default=0)", "hold = 3"),
    ("encode_iterable joins the whole input first",
     "for piece in iter_pretokens(lines, self.special_tokens):",
     'for piece in iter_pretokens(["".join(lines)], self.special_tokens):'),
    ("decode token by token, breaking characters that span tokens",
     'return b"".join(self.vocab[i] for i in ids).decode("utf-8", errors="replace")',
     'return "".join(self.vocab[i].decode("utf-8", errors="replace") for i in ids)'),
    ("decode drops invalid bytes",
     'decode("utf-8", errors="replace")', 'decode("utf-8", errors="ignore")'),
    # save and load
    ("save turns invalid UTF-8 into U+FFFD",
     'text = token.decode("utf-8", errors="surrogateescape")', 'text = token.decode("utf-8", errors="replace")'),
    ("save writes a backslash unescaped",
     'out.append("\\\\\\\\")', 'out.append("\\\\")'),
    ("a special token missing from a vocab with gaps gets len(vocab), not max id + 1",
     "ids = [max(self.vocab, default=-1) + 1]", "ids = [len(self.vocab)]"),
    ("load forgets the special tokens",
     'return cls(vocab, merges, data["special_tokens"])', "return cls(vocab, merges)"),
]


@pytest.mark.parametrize("description, old, new", MUTANTS, ids=[m[0] for m in MUTANTS])
def test_public_tests_catch_the_mutant(tmp_path, description, old, new):
    assert_mutant_caught(tmp_path, "u02", "tokenizer", description, old, new,
                         tests="exercises/tests/test_u02_tokenization.py")
