"""Taking in a submission: a folder or a .zip holding `scratchllm/`.

The submission is checked before anything of it is used, and staged into a
fresh folder: exercises/scratchllm as the base, with only the modules that
course.toml names taken from the submission. Refused outright (the whole
submission scores 0, with the reason): symbolic links, absolute or parent
paths (zip-slip), oversized files, too many files, and non-Python files
inside the package; zips that cannot be read as they claim (a bad CRC, a
corrupt compressed stream, an encrypted entry, a name flagged UTF-8 that is
not, an entry named twice). Accepted: CRLF line endings and a UTF-8
byte-order mark (normalised away); ``__pycache__`` folders (ignored).

Memory stays bounded whatever the submission holds: the listing is checked
from metadata alone (a folder's ``lstat``, a zip's central directory, whose
size is checked before it is parsed), every limit is applied before any file
is read, only the modules that are graded are read, one at a time and never
past the size limit, and each is written to the staging folder before the
next is read. Names are shown escaped (`report.printable`): a file name may
hold bytes that are not UTF-8, or control characters.
"""

from __future__ import annotations

import lzma
import os
import shutil
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Callable

from .course import Course
from .report import printable

MAX_FILE_BYTES = 2 << 20      # one module
MAX_TOTAL_BYTES = 20 << 20    # the whole package
MAX_FILES = 200               # .py files in the package
MAX_ENTRIES = 10 * MAX_FILES  # anything a zip or a folder walk may list, __pycache__ included
MAX_CENTRAL_DIR = 4 << 20     # a zip's table of contents


class IntakeError(Exception):
    """The submission is refused; the message says why, in the submitter's terms."""


@dataclass
class Staged:
    root: Path                  # folder holding scratchllm/
    package_dir: Path           # root / scratchllm
    taken: list[str] = field(default_factory=list)      # modules taken from the submission
    missing: list[str] = field(default_factory=list)    # named modules it lacked (stubs used)
    invalid: dict[str, str] = field(default_factory=dict)  # module -> why it could not be used
    notes: list[str] = field(default_factory=list)

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class _Entry:
    """One file of the submitted package, known from metadata; not read yet."""
    rel: str                    # path inside the package, "/"-separated
    size: int                   # as the file system or the zip's header says
    read: Callable[[], bytes]   # reads at most MAX_FILE_BYTES + 1 bytes; raises IntakeError


def shown(name: str) -> str:
    """A file name as a report may show it (escaped; see `report.printable`)."""
    return printable(name, 300)


def _normalise(data: bytes) -> bytes:
    """UTF-8 without BOM and with LF line endings; raises UnicodeDecodeError."""
    data.decode("utf-8")  # only checks; the text itself is not kept
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return data


# --- folders -----------------------------------------------------------------

def _find_package_dir(src: Path, package: str) -> Path:
    if src.is_symlink():
        raise IntakeError(f"{shown(src.name)} is a symbolic link; submit the files themselves")
    if not src.is_dir():
        raise IntakeError(f"{shown(str(src))} is not a folder or a .zip file")
    if src.name == package:
        pkg = src
    elif (src / package).is_dir():
        pkg = src / package
    else:
        with os.scandir(src) as it:  # one folder down, as "compress folder" tools make
            subdirs = sorted(e.name for _, e in zip(range(MAX_ENTRIES), it) if e.is_dir(follow_symlinks=False))
        found = [src / d / package for d in subdirs if (src / d / package).is_dir()]
        if not found:
            raise IntakeError(f"no {package}/ folder found in the submission")
        pkg = found[0]
    if pkg.is_symlink():
        raise IntakeError(f"{package}/ is a symbolic link")
    return pkg


def _list_dir(src: Path, package: str) -> list[_Entry]:
    """The package's files, from lstat alone; refuses as soon as a limit is passed."""
    pkg = _find_package_dir(src, package)
    entries: list[_Entry] = []
    seen = 0
    todo = [(pkg, "")]
    while todo:  # a walk of our own: no recursion, no following links, a bound on what it lists
        folder, prefix = todo.pop()
        try:
            with os.scandir(folder) as it:
                listing = sorted(it, key=lambda e: e.name)
        except OSError as e:
            raise IntakeError(f"could not read {package}/{shown(prefix)}: {e.strerror}") from None
        for item in listing:
            seen += 1
            if seen > MAX_ENTRIES:
                raise IntakeError(f"{package}/ holds more than {MAX_ENTRIES} files and folders; too many")
            rel = prefix + item.name
            try:
                st = item.stat(follow_symlinks=False)
            except OSError as err:
                raise IntakeError(f"could not read {package}/{shown(rel)}: {err.strerror}") from None
            if stat.S_ISLNK(st.st_mode):
                raise IntakeError(f"{package}/{shown(rel)} is a symbolic link")
            if stat.S_ISDIR(st.st_mode):
                if item.name != "__pycache__":
                    todo.append((Path(item.path), rel + "/"))
                continue
            if not stat.S_ISREG(st.st_mode):
                raise IntakeError(f"{package}/{shown(rel)} is not a regular file")
            entries.append(_Entry(rel, st.st_size, partial(_read_file, item.path, f"{package}/{rel}")))
            _check_so_far(entries, package)
    return entries


def _read_file(path: str, name: str) -> bytes:
    try:
        with open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK), "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):  # swapped since it was listed
                raise IntakeError(f"{shown(name)} is not a regular file")
            return f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise IntakeError(f"could not read {shown(name)}: {e.strerror}") from None


# --- zips --------------------------------------------------------------------

def _open_zip(src: Path) -> zipfile.ZipFile:
    bad = f"{shown(src.name)} is not a readable zip file"
    try:
        entries, toc_bytes = _table_of_contents(src)
        if entries > MAX_ENTRIES:
            raise IntakeError(f"{shown(src.name)} holds {entries} entries; the limit is {MAX_ENTRIES}")
        if toc_bytes > MAX_CENTRAL_DIR:
            raise IntakeError(f"{shown(src.name)}: its table of contents is {toc_bytes} bytes; "
                              f"the limit is {MAX_CENTRAL_DIR}")
        return zipfile.ZipFile(src)
    except UnicodeDecodeError as e:  # an entry flagged as UTF-8 whose name is not
        name = e.object.decode("utf-8", "surrogateescape") if isinstance(e.object, bytes) else str(e.object)
        raise IntakeError(f"{shown(src.name)}: entry {shown(name)} is marked as a UTF-8 name but is not "
                          f"UTF-8; zip it again with another tool") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError,
            RuntimeError) as e:
        raise IntakeError(f"{bad} ({printable(e, 200)})") from None


def _table_of_contents(src: Path) -> tuple[int, int]:
    """(entries, bytes) of a zip's central directory, from its end record alone,
    before zipfile parses the directory into memory (zipfile's own reader of
    that record; it handles zip64 and archive comments)."""
    with src.open("rb") as fh:
        end = zipfile._EndRecData(fh)  # type: ignore[attr-defined]
    if end is None:
        raise zipfile.BadZipFile("no end of central directory record")
    return end[zipfile._ECD_ENTRIES_TOTAL], end[zipfile._ECD_SIZE]  # type: ignore[attr-defined]


_READABLE_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}


def _list_zip(zf: zipfile.ZipFile, src: Path, package: str) -> list[_Entry]:
    infos = zf.infolist()
    where = shown(src.name)
    prefix = None
    for info in infos:
        name = info.filename.replace("\\", "/")  # some Windows tools write backslashes
        p = PurePosixPath(name)
        if name.startswith("/") or (p.parts and ":" in p.parts[0]) or ".." in p.parts:
            raise IntakeError(f"{where}: entry {shown(name)} has an absolute or parent path")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise IntakeError(f"{where}: entry {shown(name)} is a symbolic link")
        if package in p.parts and prefix is None:
            prefix = p.parts[:p.parts.index(package) + 1]
    if prefix is None:
        raise IntakeError(f"no {package}/ folder found in {where}")
    entries: list[_Entry] = []
    seen: set[str] = set()
    for info in infos:
        p = PurePosixPath(info.filename.replace("\\", "/"))
        if info.is_dir() or p.parts[:len(prefix)] != prefix or "__pycache__" in p.parts:
            continue
        rel = PurePosixPath(*p.parts[len(prefix):]).as_posix()
        label = f"{where}: entry {shown(info.filename)}"
        if rel in seen:
            raise IntakeError(f"{label} appears twice")
        seen.add(rel)
        if info.flag_bits & 0x1:
            raise IntakeError(f"{label} is encrypted; zip it again without a password")
        if info.compress_type not in _READABLE_METHODS:
            raise IntakeError(f"{label} uses compression method {info.compress_type}, which cannot be read; "
                              f"zip it again with ordinary (deflate) compression")
        entries.append(_Entry(rel, info.file_size, partial(_read_entry, zf, info, label)))
        _check_so_far(entries, package)
    return entries


def _read_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, label: str) -> bytes:
    """The entry's bytes, checked against its CRC; a damaged entry is refused, naming it."""
    try:
        with zf.open(info) as f:
            data = f.read(MAX_FILE_BYTES + 1)
            if len(data) <= MAX_FILE_BYTES:
                f.read(1)  # at the end: the CRC is checked now, if it was not already
    except RuntimeError:  # "encrypted, password required" (flag bits can disagree between headers)
        raise IntakeError(f"{label} is encrypted; zip it again without a password") from None
    except zipfile.BadZipFile as e:
        why = "its checksum (CRC) does not match its contents" if "CRC" in str(e) else printable(e, 200)
        raise IntakeError(f"{label} is damaged: {why}") from None
    except (zlib.error, lzma.LZMAError, EOFError, OSError, ValueError, NotImplementedError) as e:
        raise IntakeError(f"{label} is damaged: its compressed data cannot be read "
                          f"({printable(e, 200)})") from None
    return data


# --- both --------------------------------------------------------------------

def _check_so_far(entries: list[_Entry], package: str) -> None:
    """The limits a listing must keep, checked as each file is listed, before any is read."""
    e = entries[-1]
    if e.rel.endswith(".pyc"):
        entries.pop()  # compiled leftovers are ignored
        return
    if not e.rel.endswith(".py"):
        raise IntakeError(f"{package}/{shown(e.rel)} is not a Python file; only .py files belong in {package}/")
    if e.size > MAX_FILE_BYTES:
        raise IntakeError(f"{package}/{shown(e.rel)} is {e.size} bytes; the limit is {MAX_FILE_BYTES} bytes")
    if len(entries) > MAX_FILES:
        raise IntakeError(f"{package}/ holds more than {MAX_FILES} files; the limit is {MAX_FILES}")
    if sum(x.size for x in entries) > MAX_TOTAL_BYTES:
        raise IntakeError(f"{package}/ is larger than {MAX_TOTAL_BYTES} bytes")


def stage(course: Course, src: Path) -> Staged:
    """Check a submission and stage it; raises IntakeError if it is refused."""
    src = Path(src)
    package = course.package
    zf = None
    try:
        if src.suffix.lower() == ".zip" and src.is_file():
            zf = _open_zip(src)
            entries = _list_zip(zf, src, package)
        else:
            entries = _list_dir(src, package)
        return _stage_entries(course, {e.rel: e for e in entries})
    finally:
        if zf is not None:
            zf.close()


def _stage_entries(course: Course, entries: dict[str, _Entry]) -> Staged:
    package = course.package
    root = Path(tempfile.mkdtemp(prefix="llmfs-sub-"))
    try:
        os.chmod(root, 0o755)
        pkg_dir = root / package
        shutil.copytree(course.exercises / package, pkg_dir,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        staged = Staged(root=root, package_dir=pkg_dir)
        named = [m for u in course.ready_units for m in u.modules]
        total = 0
        for module in named:  # one at a time: read, check, write, let go
            entry = entries.get(f"{module}.py")
            if entry is None:
                staged.missing.append(module)
                continue
            data = entry.read()
            if len(data) > MAX_FILE_BYTES:  # it grew, or the zip's header lied about its size
                raise IntakeError(f"{package}/{module}.py is larger than {MAX_FILE_BYTES} bytes")
            total += len(data)
            if total > MAX_TOTAL_BYTES:  # the sizes listed were not the sizes read
                raise IntakeError(f"{package}/ is larger than {MAX_TOTAL_BYTES} bytes")
            try:
                (pkg_dir / f"{module}.py").write_bytes(_normalise(data))
                staged.taken.append(module)
            except UnicodeDecodeError as e:
                staged.invalid[module] = f"{module}.py is not UTF-8 text (byte {e.start})"
            del data
        ignored = sorted(k for k in entries if k[:-3] not in named)
        if ignored:
            staged.notes.append(f"ignored (not graded, taken from exercises/): {', '.join(map(shown, ignored))}")
        for dirpath, dirnames, filenames in os.walk(root):
            for d in dirnames:
                os.chmod(Path(dirpath) / d, 0o755)
            for f in filenames:
                os.chmod(Path(dirpath) / f, 0o644)
        return staged
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
