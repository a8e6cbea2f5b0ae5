"""Taking in a submission: a folder or a .zip holding `scratchllm/`.

The submission is checked before anything of it is used, and staged into a
fresh folder: exercises/scratchllm as the base, with only the modules that
course.toml names taken from the submission. Refused outright (the whole
submission scores 0, with the reason): symbolic links, absolute or parent
paths (zip-slip), oversized files, and non-Python files inside the package.
Accepted: CRLF line endings and a UTF-8 byte-order mark (normalised away);
``__pycache__`` folders (ignored).
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .course import Course

MAX_FILE_BYTES = 2 << 20      # one module
MAX_TOTAL_BYTES = 20 << 20    # the whole package
MAX_FILES = 200


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


def _normalise(data: bytes) -> bytes:
    """UTF-8 without BOM and with LF line endings; raises UnicodeDecodeError."""
    text = data.decode("utf-8-sig")
    return text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")


def _read_package_from_dir(src: Path, package: str) -> dict[str, bytes]:
    if src.is_symlink():
        raise IntakeError(f"{src.name} is a symbolic link; submit the files themselves")
    if not src.is_dir():
        raise IntakeError(f"{src} is not a folder or a .zip file")
    candidates = [src / package] if (src / package).is_dir() else \
        [d / package for d in sorted(src.iterdir()) if d.is_dir() and not d.is_symlink() and (d / package).is_dir()]
    if src.name == package:
        candidates = [src]
    if not candidates:
        raise IntakeError(f"no {package}/ folder found in the submission")
    pkg = candidates[0]
    if pkg.is_symlink():
        raise IntakeError(f"{package}/ is a symbolic link")
    files: dict[str, bytes] = {}
    for dirpath, dirnames, filenames in os.walk(pkg, followlinks=False):
        rel_dir = Path(dirpath).relative_to(pkg)
        for d in list(dirnames):
            if (Path(dirpath) / d).is_symlink():
                raise IntakeError(f"{package}/{(rel_dir / d).as_posix()} is a symbolic link")
            if d == "__pycache__":
                dirnames.remove(d)
        for name in filenames:
            path = Path(dirpath) / name
            rel = (rel_dir / name).as_posix()
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                raise IntakeError(f"{package}/{rel} is a symbolic link")
            if not stat.S_ISREG(st.st_mode):
                raise IntakeError(f"{package}/{rel} is not a regular file")
            files[rel] = _checked(rel, st.st_size, package, lambda p=path: p.read_bytes())
    return files


def _checked(rel: str, size: int, package: str, read) -> bytes:
    if rel.endswith(".pyc"):
        return b""
    if not rel.endswith(".py"):
        raise IntakeError(f"{package}/{rel} is not a Python file; only .py files belong in {package}/")
    if size > MAX_FILE_BYTES:
        raise IntakeError(f"{package}/{rel} is {size} bytes; the limit is {MAX_FILE_BYTES} bytes")
    return read()


def _read_package_from_zip(src: Path, package: str) -> dict[str, bytes]:
    try:
        zf = zipfile.ZipFile(src)
    except (zipfile.BadZipFile, OSError) as e:
        raise IntakeError(f"{src.name} is not a readable zip file ({e})") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > 10 * MAX_FILES:
            raise IntakeError(f"{src.name} holds {len(infos)} entries; too many")
        prefix = None
        for info in infos:
            name = info.filename.replace("\\", "/")  # some Windows tools write backslashes
            p = PurePosixPath(name)
            if name.startswith("/") or ":" in p.parts[0] or ".." in p.parts:
                raise IntakeError(f"{src.name}: entry {name!r} has an absolute or parent path")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise IntakeError(f"{src.name}: entry {name!r} is a symbolic link")
            if package in p.parts and prefix is None:
                prefix = p.parts[:p.parts.index(package) + 1]
        if prefix is None:
            raise IntakeError(f"no {package}/ folder found in {src.name}")
        files: dict[str, bytes] = {}
        total = 0
        for info in infos:
            p = PurePosixPath(info.filename.replace("\\", "/"))
            if info.is_dir() or p.parts[:len(prefix)] != prefix or "__pycache__" in p.parts:
                continue
            rel = PurePosixPath(*p.parts[len(prefix):]).as_posix()
            total += info.file_size
            if total > MAX_TOTAL_BYTES:
                raise IntakeError(f"{package}/ is larger than {MAX_TOTAL_BYTES} bytes")
            files[rel] = _checked(rel, info.file_size, package, lambda i=info: _read_capped(zf, i))
        return files


def _read_capped(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    with zf.open(info) as f:
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:  # the header lied about the size
        raise IntakeError(f"{info.filename} is larger than {MAX_FILE_BYTES} bytes")
    return data


def stage(course: Course, src: Path) -> Staged:
    """Check a submission and stage it; raises IntakeError if it is refused."""
    src = Path(src)
    package = course.package
    if src.suffix.lower() == ".zip" and src.is_file():
        files = _read_package_from_zip(src, package)
    else:
        files = _read_package_from_dir(src, package)
    files = {k: v for k, v in files.items() if not k.endswith(".pyc")}
    if len(files) > MAX_FILES:
        raise IntakeError(f"{package}/ holds {len(files)} files; the limit is {MAX_FILES}")
    if sum(len(v) for v in files.values()) > MAX_TOTAL_BYTES:
        raise IntakeError(f"{package}/ is larger than {MAX_TOTAL_BYTES} bytes")

    root = Path(tempfile.mkdtemp(prefix="llmfs-sub-"))
    os.chmod(root, 0o755)
    pkg_dir = root / package
    shutil.copytree(course.exercises / package, pkg_dir,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    staged = Staged(root=root, package_dir=pkg_dir)
    named = [m for u in course.ready_units for m in u.modules]
    for module in named:
        data = files.get(f"{module}.py")
        if data is None:
            staged.missing.append(module)
            continue
        try:
            (pkg_dir / f"{module}.py").write_bytes(_normalise(data))
            staged.taken.append(module)
        except UnicodeDecodeError as e:
            staged.invalid[module] = f"{module}.py is not UTF-8 text (byte {e.start})"
    ignored = sorted(k for k in files if k[:-3] not in named)
    if ignored:
        staged.notes.append(f"ignored (not graded, taken from exercises/): {', '.join(ignored)}")
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            os.chmod(Path(dirpath) / d, 0o755)
        for f in filenames:
            os.chmod(Path(dirpath) / f, 0o644)
    return staged
