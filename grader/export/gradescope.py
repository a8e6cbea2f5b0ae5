"""`llmfs export gradescope OUT.zip`: the course as a Gradescope autograder.

Gradescope builds a Docker image from an autograder zip and then runs one
script per submission (its specification:
https://gradescope-autograders.readthedocs.io/en/latest/specs/). The zip
this module writes holds, at its root:

- ``setup.sh``: run once, as root, when Gradescope builds the image. It makes
  a virtual environment in ``/autograder/venv``, installs the pinned CPU
  build of torch from PyTorch's own wheel index (``TORCH_INDEX_URL``; plain
  pip would fetch the CUDA build), then the kit itself (``pip install -e
  /autograder/source``);
- ``run_autograder``: run for every submission. It calls
  ``python -m grader.export.gradescope_run``, which arranges
  ``/autograder/submission`` into a folder holding ``scratchllm/``, grades it
  with ``llmfs grade --format json`` and writes
  ``/autograder/results/results.json``; if even that fails, the script
  writes a results.json with a score of 0 itself;
- what grading needs: course.toml, pyproject.toml, README.md, LICENSE,
  grader/ (with grader/hidden/), exercises/, solutions/ (the judge loads the
  reference for hidden tests; the sandboxed worker never sees it) and
  datasets/. Caches, virtual environments and version control are left out.

``LLMFS_AUTOGRADER_ROOT`` replaces ``/autograder`` in both scripts, so the
kit's test runs the real scripts against a folder of its own.
"""

from __future__ import annotations

import os
import shlex
import tempfile
import zipfile
from pathlib import Path

from ..course import Course
from ..errors import UserError
from ..release import SKIP_NAMES, SKIP_SUFFIXES

# The torch that setup.sh installs: this version, from this index (PyTorch's
# CPU-only wheels; `--torch-index-url` picks another, e.g. a CUDA one).
TORCH_VERSION = "2.13.0"
TORCH_INDEX_URL = "https://download.pytorch.org/whl/cpu"

# How hidden tests may be shown to students (Gradescope's visibility values;
# public tests are always "visible").
HIDDEN_VISIBILITIES = ("after_published", "after_due_date", "hidden")

# Grading one submission stops after the course's submission_timeout_s plus
# this margin (for starting Python and writing results), unless --timeout-s.
TIMEOUT_MARGIN_S = 60

# What goes into the zip from the course folder (course.toml is added apart,
# from the file the course was read from). Anything else stays out: the kit's
# tests, docs, benchmarks, and the data/ folder where corpora are prepared.
TOP_FILES = ("pyproject.toml", "README.md", "LICENSE", "conftest.py")
NEEDED_FILES = ("pyproject.toml", "README.md")  # `pip install -e` reads both
TOP_FOLDERS = ("grader", "exercises", "solutions", "datasets")
# Inside those folders: caches, version control and virtual environments
# (also any folder holding a pyvenv.cfg) stay out.
SKIP_FOLDERS = SKIP_NAMES | {".venv", "venv"}

EXECUTABLE = 0o100755  # regular file, rwxr-xr-x
READABLE = 0o100644    # regular file, rw-r--r--
ZIP_TIME = (2020, 1, 1, 0, 0, 0)  # every entry's date: the same course gives the same zip

SETUP_SH = """\
#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image.
# Written by `llmfs export gradescope`. It installs Python, the CPU build of
# torch {torch_version} and the llm-from-scratch kit into a virtual environment.
# LLMFS_AUTOGRADER_ROOT replaces /autograder (for testing this script).
set -euo pipefail

ROOT="${{LLMFS_AUTOGRADER_ROOT:-/autograder}}"
SOURCE="$ROOT/source"
VENV="$ROOT/venv"
TORCH_VERSION={torch_version}
TORCH_INDEX_URL={torch_index_url}

if command -v apt-get >/dev/null 2>&1; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv python3-pip
fi
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --upgrade pip
# torch first, from PyTorch's CPU index: the package index alone would install the CUDA build.
"$VENV/bin/python" -m pip install --index-url "$TORCH_INDEX_URL" "torch==$TORCH_VERSION"
"$VENV/bin/python" -m pip install -e "$SOURCE"
# The sandboxed worker runs as an unprivileged user: it must be able to read Python and torch.
chmod -R a+rX "$VENV"
"$VENV/bin/python" -c "import grader, numpy, torch; print('llmfs autograder ready: torch', torch.__version__)"
"""

RUN_AUTOGRADER = """\
#!/usr/bin/env bash
# Gradescope runs this for every submission, as root, in /autograder.
# Written by `llmfs export gradescope`: grades /autograder/submission with
# `llmfs grade` and writes /autograder/results/results.json, always.
# LLMFS_AUTOGRADER_ROOT replaces /autograder (the kit's test uses it).
ROOT="${{LLMFS_AUTOGRADER_ROOT:-/autograder}}"
RESULTS="$ROOT/results/results.json"
PYTHON="$ROOT/venv/bin/python"
[ -x "$PYTHON" ] || PYTHON=python3

mkdir -p "$ROOT/results"
rm -f "$RESULTS"
cd "$ROOT/source" && "$PYTHON" -m grader.export.gradescope_run --root "$ROOT" {options}
status=$?
if [ ! -s "$RESULTS" ]; then
    echo "run_autograder: the grader wrote no results (exit status $status); writing a score of 0"
    cat > "$RESULTS" <<'EOF'
{fallback}
EOF
fi
exit 0
"""

# results.json when Python itself could not run (written by run_autograder).
FALLBACK_RESULTS = ('{"score": 0, "output": "The autograder could not run, so this submission was not graded '
                    '(score 0). Please tell your instructor.", "stdout_visibility": "hidden", "tests": []}')


def register(sub) -> None:
    p = sub.add_parser(
        "gradescope", help="write a Gradescope autograder zip (setup.sh, run_autograder and the course)",
        description="Write a Gradescope autograder zip. Gradescope runs its setup.sh once (it installs the CPU "
                    "build of torch and this kit) and its run_autograder for every submission: that grades "
                    "the submission with 'llmfs grade' and writes results.json, so the scores equal "
                    "'llmfs grade'. See docs/instructors.md.")
    p.add_argument("out", metavar="OUT.zip", help="the zip to write (replaced if it exists)")
    p.add_argument("--unit", action="append", dest="units", metavar="UNIT",
                   help="grade only this unit (repeatable; default: every ready unit)")
    p.add_argument("--hidden-visibility", choices=HIDDEN_VISIBILITIES, default="after_published",
                   help="when students see hidden tests' results: 'after_published' (default: once you publish "
                        "grades), 'after_due_date', or 'hidden' (never); public tests are always visible")
    p.add_argument("--torch-index-url", default=TORCH_INDEX_URL, metavar="URL",
                   help=f"the wheel index setup.sh installs torch=={TORCH_VERSION} from "
                        f"(default: {TORCH_INDEX_URL}, CPU only)")
    p.add_argument("--timeout-s", type=float, default=None, metavar="S",
                   help="give up grading one submission after S seconds and score it 0 with that reason "
                        "(default: the course's submission_timeout_s plus a minute); set Gradescope's own "
                        "autograder timeout above it")
    p.set_defaults(func=_main)


def _main(args) -> int:
    from ..cli import course_from

    course = course_from(args)
    units = check_units(course, args.units)
    out = Path(args.out)
    count = export(course, out, units=args.units, hidden_visibility=args.hidden_visibility,
                   torch_index_url=args.torch_index_url, timeout_s=args.timeout_s)
    points = sum(course.unit(u).points for u in units)
    limit = args.timeout_s if args.timeout_s is not None else course.defaults.submission_timeout_s + TIMEOUT_MARGIN_S
    print(f"wrote {out} ({count} files): units {', '.join(units)}, {points:g} points in all; hidden tests: "
          f"{args.hidden_visibility}.\nIn Gradescope, give the assignment {points:g} points and an autograder "
          f"timeout above {limit:g} s.")
    return 0


def check_units(course: Course, units: list[str] | None) -> list[str]:
    """The units the autograder grades; refuses a course it cannot grade."""
    if not course.hidden_tests.is_dir() or not (course.solutions / course.package).is_dir():
        raise UserError("this course has no grader/hidden/ or solutions/ (a student release?): "
                        "export the instructor's course")
    for u in units or []:
        if not course.unit(u).ready:
            raise UserError(f"unit {u} is planned, not ready: it has nothing to grade yet")
    return list(units) if units else [u.id for u in course.ready_units]


def run_options(units: list[str] | None, hidden_visibility: str, timeout_s: float | None) -> list[str]:
    """The arguments run_autograder passes to grader.export.gradescope_run."""
    options = [arg for u in units or [] for arg in ("--unit", u)]
    options += ["--hidden-visibility", hidden_visibility]
    if timeout_s is not None:
        options += ["--timeout-s", f"{timeout_s:g}"]
    return options


def setup_script(torch_index_url: str = TORCH_INDEX_URL) -> str:
    return SETUP_SH.format(torch_version=shlex.quote(TORCH_VERSION), torch_index_url=shlex.quote(torch_index_url))


def run_script(units: list[str] | None = None, hidden_visibility: str = "after_published",
               timeout_s: float | None = None) -> str:
    options = " ".join(shlex.quote(o) for o in run_options(units, hidden_visibility, timeout_s))
    return RUN_AUTOGRADER.format(options=options, fallback=FALLBACK_RESULTS)


def course_files(course: Course) -> list[tuple[str, Path]]:
    """(name in the zip, file) for every course file grading needs, in a stable order."""
    root = course.root
    for name in NEEDED_FILES:
        if not (root / name).is_file():
            raise UserError(f"{root / name}: no such file; setup.sh installs the kit with pip, which needs it")
    files = [("course.toml", course.path)]
    files += [(name, root / name) for name in TOP_FILES if (root / name).is_file()]
    for top in TOP_FOLDERS:
        for dirpath, dirnames, filenames in os.walk(root / top):
            here = Path(dirpath)
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_FOLDERS and not d.endswith(".egg-info")
                                 and not (here / d / "pyvenv.cfg").exists() and not (here / d).is_symlink())
            for name in sorted(filenames):
                path = here / name
                if name in SKIP_NAMES or name.endswith(SKIP_SUFFIXES) or not path.is_file() or path.is_symlink():
                    continue
                files.append((path.relative_to(root).as_posix(), path))
    return files


def _add(zf: zipfile.ZipFile, name: str, data: bytes, mode: int) -> None:
    info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
    info.create_system = 3  # Unix: unzip honours the mode below
    info.external_attr = mode << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data)


def export(course: Course, out: Path, *, units: list[str] | None = None,
           hidden_visibility: str = "after_published", torch_index_url: str = TORCH_INDEX_URL,
           timeout_s: float | None = None) -> int:
    """Write the autograder zip to `out` (whole or not at all); returns how many files it holds."""
    check_units(course, units)
    if timeout_s is not None and not timeout_s > 0:
        raise UserError("--timeout-s must be a positive number of seconds")
    if hidden_visibility not in HIDDEN_VISIBILITIES:
        raise UserError(f"--hidden-visibility must be one of {', '.join(HIDDEN_VISIBILITIES)}")
    out = Path(out)
    if out.parent and not out.parent.is_dir():
        raise UserError(f"{out.parent}: no such folder")
    files = course_files(course)
    fd, tmp = tempfile.mkstemp(prefix=".gradescope-", suffix=".zip", dir=out.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w") as zf:
            _add(zf, "setup.sh", setup_script(torch_index_url).encode("utf-8"), EXECUTABLE)
            _add(zf, "run_autograder", run_script(units, hidden_visibility, timeout_s).encode("utf-8"), EXECUTABLE)
            for name, path in files:
                _add(zf, name, path.read_bytes(), READABLE)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(files) + 2
