"""Intake: every submission, however broken or hostile, gets a report.

Damaged zips are refused with one line naming the entry; file names that
are not UTF-8 are shown escaped; limits are checked from metadata before any
file is read, so memory stays bounded whatever the submission holds. Most
tests call `intake.stage` directly; the ones named `..._through_llmfs_grade`
grade for real and read the report.
"""

import json
import os
import tempfile
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from grader import intake
from grader.course import load_course

from kit import ROOT, llmfs

COURSE = load_course(ROOT / "course.toml")
REFERENCE = (ROOT / "solutions" / "scratchllm" / "attention.py").read_bytes()
ENTRY = "scratchllm/attention.py"


# --- damaged zips --------------------------------------------------------------

def zip_of(path: Path, name: str = ENTRY, data: bytes = REFERENCE, method: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        info = zipfile.ZipInfo(name)
        info.compress_type = method
        zf.writestr(info, data)
    return path


def bad_crc(path: Path) -> Path:
    b = bytearray(zip_of(path).read_bytes())
    b[b.index(b"def causal_mask")] ^= 0x20  # one stored byte changed: the CRC no longer matches
    path.write_bytes(b)
    return path


def encrypted(path: Path) -> Path:
    b = bytearray(zip_of(path).read_bytes())  # zipfile cannot encrypt: set the flag in both headers
    b[6] |= 1
    b[b.index(b"PK\x01\x02") + 8] |= 1
    path.write_bytes(b)
    return path


def utf8_flag_not_utf8(path: Path) -> Path:
    zip_of(path, name="scratchllm/n\u00e9.py", data=b"x = 1\n")  # flagged UTF-8 because not ASCII
    path.write_bytes(path.read_bytes().replace("n\u00e9.py".encode(), b"n\xff\xfe.py"))
    return path


def corrupt_deflate(path: Path) -> Path:
    b = bytearray(zip_of(path, method=zipfile.ZIP_DEFLATED).read_bytes())
    start = 30 + len(ENTRY)  # the local header, then the name, then the deflate stream
    b[start:start + 2] = b"\xff\xff"  # block type 3 does not exist
    path.write_bytes(b)
    return path


DAMAGED = {  # maker -> (what the entry is called in the refusal, words of the reason)
    "bad_crc": (bad_crc, ENTRY, "checksum"),
    "encrypted": (encrypted, ENTRY, "encrypted"),
    "utf8_flag_not_utf8": (utf8_flag_not_utf8, "scratchllm/n\\xff\\xfe.py", "not UTF-8"),
    "corrupt_deflate": (corrupt_deflate, ENTRY, "compressed data"),
}


@pytest.mark.parametrize("kind", DAMAGED)
def test_a_damaged_zip_is_refused_in_one_line_naming_the_entry(tmp_path, kind, monkeypatch):
    make, entry, words = DAMAGED[kind]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    with pytest.raises(intake.IntakeError) as e:
        intake.stage(COURSE, make(tmp_path / f"{kind}.zip"))
    message = str(e.value)
    assert "\n" not in message and entry in message and words in message, message
    assert not list(scratch.iterdir()), "a refused submission left its staging folder behind"


@pytest.mark.parametrize("kind", DAMAGED)
def test_a_damaged_zip_gets_a_refusal_report_through_llmfs_grade(tmp_path, kind):
    make, entry, words = DAMAGED[kind]
    proc = llmfs("grade", str(make(tmp_path / f"{kind}.zip")), "--unit", "u04", "--format", "json", timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    r = json.loads(proc.stdout)
    assert r["score"] == 0 and r["error"].startswith("submission refused: ") and entry in r["error"], r["error"]


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_a_zip_naming_one_file_twice_is_refused(tmp_path):
    path = tmp_path / "twice.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(ENTRY, REFERENCE)
        zf.writestr(ENTRY, b"x = 1\n")  # which one would be graded?
    with pytest.raises(intake.IntakeError, match="twice"):
        intake.stage(COURSE, path)


def test_a_zip_with_too_many_entries_is_refused_before_its_listing_is_read(tmp_path, monkeypatch):
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(intake.MAX_ENTRIES + 1):
            zf.writestr(f"scratchllm/__pycache__/m{i}.pyc", b"")
    monkeypatch.setattr(zipfile.ZipFile, "_RealGetContents",
                        lambda self: pytest.fail("the central directory was parsed"))
    with pytest.raises(intake.IntakeError, match="entries"):
        intake.stage(COURSE, path)


# --- names that are not UTF-8 ------------------------------------------------------

def folder_with(tmp_path: Path, files: dict[bytes, bytes]) -> Path:
    pkg = tmp_path / "sub" / "scratchllm"
    pkg.mkdir(parents=True)
    for name, data in files.items():
        with open(os.path.join(os.fsencode(pkg), name), "wb") as f:
            f.write(data)
    return pkg.parent


def test_a_file_name_that_is_not_utf8_is_noted_escaped(tmp_path):
    staged = intake.stage(COURSE, folder_with(tmp_path, {b"attention.py": REFERENCE, b"notes\xff.py": b"x = 1\n"}))
    try:
        note = " ".join(staged.notes)
        assert "notes\\xff.py" in note, staged.notes
        note.encode("utf-8")  # a lone surrogate here is what made the report unwritable
        assert staged.taken == ["attention"]
    finally:
        staged.cleanup()


def test_a_file_name_that_is_not_utf8_gets_a_report_through_llmfs_grade(tmp_path):
    sub = folder_with(tmp_path, {b"attention.py": REFERENCE, b"notes\xff.py": b"x = 1\n",
                                 "bidi\u202e\x1b[2J.py".encode(): b"y = 2\n"})
    out = tmp_path / "report.json"  # --out is what grade-all uses
    proc = llmfs("grade", str(sub), "--unit", "u04", "--format", "json", "--out", str(out), timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(out.read_text(encoding="utf-8"))
    assert r["score"] == r["max_score"] > 0
    ignored = next(n for n in r["notes"] if n.startswith("ignored"))
    assert "notes\\xff.py" in ignored and "bidi\\u202e\\x1b[2J.py" in ignored, ignored


# --- bounded memory ----------------------------------------------------------------

def sparse_files(pkg: Path, count: int, size: int, stem: str = "m") -> None:
    for i in range(count):
        with open(pkg / f"{stem}{i}.py", "wb") as f:
            f.truncate(size)  # takes no disk space; reading it makes `size` zero bytes


def peak_bytes_while(fn) -> int:
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def refused_with(match: str, sub: Path) -> int:
    def go():
        with pytest.raises(intake.IntakeError, match=match):
            intake.stage(COURSE, sub)
    return peak_bytes_while(go)


def test_too_many_files_are_refused_before_any_is_read(tmp_path):
    sub = folder_with(tmp_path, {b"attention.py": REFERENCE})
    sparse_files(sub / "scratchllm", 400, 64 << 10)  # the issue: 400 sparse 2 MB files took the judge to 1 GB
    assert refused_with("more than 200 files", sub) < 1 << 20


def test_too_many_bytes_are_refused_before_any_file_is_read(tmp_path):
    sub = folder_with(tmp_path, {b"attention.py": REFERENCE})
    sparse_files(sub / "scratchllm", 11, intake.MAX_FILE_BYTES)  # each allowed, 22 MB together
    assert refused_with("larger than", sub) < 1 << 20


def test_an_oversized_module_is_refused_before_it_is_read(tmp_path):
    sub = folder_with(tmp_path, {})
    sparse_files(sub / "scratchllm", 1, intake.MAX_FILE_BYTES + 1, stem="attention")
    (sub / "scratchllm" / "attention0.py").rename(sub / "scratchllm" / "attention.py")
    assert refused_with("the limit is", sub) < 1 << 20


def test_graded_modules_are_staged_one_at_a_time(tmp_path):
    size = 3 * intake.MAX_FILE_BYTES // 4
    body = b"# padding\n" * (size // 10)
    modules = [m for u in COURSE.ready_units for m in u.modules]
    assert len(modules) >= 4
    sub = folder_with(tmp_path, {f"{m}.py".encode(): body for m in modules})
    staged = []
    peak = peak_bytes_while(lambda: staged.append(intake.stage(COURSE, sub)))
    try:
        assert sorted(staged[0].taken) == sorted(modules)
        assert all((staged[0].package_dir / f"{m}.py").read_bytes() == body for m in modules)
    finally:
        staged[0].cleanup()
    # holding every module at once would take len(modules) * size; one at a time, a few copies of one
    assert peak < 3 * size, (peak, size)


def test_a_zip_entry_larger_than_its_header_says_is_refused(tmp_path):
    path = zip_of(tmp_path / "liar.zip", data=b"#" * (intake.MAX_FILE_BYTES + 10))
    b = bytearray(path.read_bytes())  # claim 10 bytes in both headers
    b[22:26] = (10).to_bytes(4, "little")
    c = b.index(b"PK\x01\x02")
    b[c + 24:c + 28] = (10).to_bytes(4, "little")
    path.write_bytes(b)
    with pytest.raises(intake.IntakeError, match="attention.py"):
        intake.stage(COURSE, path)
