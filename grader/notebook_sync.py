"""Keep every unit's notebook in step with its source, its set-up cell and its reading.

A ready unit's notebook lives beside its reading, in two forms:

- ``exercises/units/<dir>/<dir>.py``: the source, in jupytext's ``py:percent``
  format (reviewable, diffable, linted). Edit this one.
- ``exercises/units/<dir>/<dir>.ipynb``: the same cells as a notebook, with no
  outputs, committed so that Colab opens it straight from the repository.

``python -m grader.notebook_sync`` lists every way the two disagree (and exits 1);
``--write`` regenerates each .ipynb from its source. It also holds each notebook's
first code cell to `setup_cell` (the one way a notebook sets itself up, in Colab or
not), and each reading and the README's table of notebooks to the notebook's "Open in
Colab" link, all built from course.toml's ``repository`` and ``branch``. Needs the
``notebooks`` extra (jupytext).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from .course import Course, Unit, load_course

COLAB = "https://colab.research.google.com/github"
BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
CLONE = "/content/llm-from-scratch"  # where a Colab runtime keeps its copy of the course


@dataclass(frozen=True)
class Notebook:
    unit: Unit
    folder: Path  # exercises/units/<dir>

    @property
    def source(self) -> Path:
        return self.folder / f"{self.folder.name}.py"

    @property
    def ipynb(self) -> Path:
        return self.folder / f"{self.folder.name}.ipynb"

    @property
    def reading(self) -> Path:
        return self.folder / "README.md"


def notebooks(course: Course) -> list[Notebook]:
    """One per ready unit that has a reading folder."""
    found = []
    for u in course.ready_units:
        folders = sorted(p for p in (course.exercises / "units").glob(f"{u.id}_*") if p.is_dir())
        if folders:
            found.append(Notebook(u, folders[0]))
    return found


def colab_url(course: Course, nb: Notebook) -> str:
    rel = nb.ipynb.relative_to(course.root).as_posix()
    return f"{COLAB}/{course.repository.removeprefix('https://github.com/')}/blob/{course.branch}/{rel}"


def colab_link(course: Course, nb: Notebook) -> str:
    """The Markdown badge a reading carries."""
    return f"[![Open in Colab]({BADGE})]({colab_url(course, nb)})"


def setup_cell(course: Course, nb: Notebook) -> str:
    """The first code cell of every notebook: in Colab, fetch and install the course
    (keeping Colab's own torch, CPU or GPU); anywhere, open the unit."""
    unit_dir = f"{CLONE}/{nb.folder.relative_to(course.root).as_posix()}"
    return (
        "# In Colab: fetch the course and install it (Colab's own torch, CPU or GPU, is kept).\n"
        "# On your own machine, with the kit installed, this only opens the unit.\n"
        "import os\n"
        "import sys\n"
        "\n"
        "if \"google.colab\" in sys.modules:\n"
        f"    if not os.path.isdir(\"{CLONE}\"):\n"
        "        print(\"Fetching the course ...\")\n"
        f"        !git clone --quiet --depth 1 {course.repository} {CLONE}\n"
        f"        %pip install --quiet -e {CLONE}\n"
        f"    sys.path.insert(0, \"{CLONE}\")\n"
        f"    os.chdir(\"{unit_dir}\")\n"
        "\n"
        "from grader.notebook import open_unit\n"
        "\n"
        f"unit = open_unit(\"{nb.unit.id}\")"
    )


def _jupytext():
    try:
        import jupytext
    except ImportError:
        sys.exit("the notebooks need jupytext: pip install -e \".[notebooks]\"")
    return jupytext


def _cells(nb) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def problems(course: Course) -> list[str]:
    """Every way a ready unit's notebook, its .ipynb or its reading is out of step."""
    jupytext = _jupytext()
    found: list[str] = []
    have = {nb.unit.id for nb in notebooks(course)}
    found += [f"{u.id}: no reading folder exercises/units/{u.id}_*/ (its notebook lives there)"
              for u in course.ready_units if u.id not in have]
    for nb in notebooks(course):
        rel = nb.folder.relative_to(course.root).as_posix()
        if not nb.source.is_file():
            found.append(f"{rel}: no notebook source {nb.source.name}")
            continue
        src = jupytext.read(nb.source, fmt="py:percent")
        code = [c.source.strip() for c in src.cells if c.cell_type == "code"]
        if not code or code[0] != setup_cell(course, nb):
            found.append(f"{rel}/{nb.source.name}: the first code cell is not the set-up cell "
                         "(python -m grader.notebook_sync --write puts it back)")
        if not nb.ipynb.is_file():
            found.append(f"{rel}: no {nb.ipynb.name} (python -m grader.notebook_sync --write makes it)")
        else:
            built = jupytext.read(nb.ipynb, fmt="ipynb")
            if _cells(built) != _cells(src):
                found.append(f"{rel}/{nb.ipynb.name} differs from {nb.source.name} "
                             "(python -m grader.notebook_sync --write regenerates it)")
            if any(c.get("outputs") or c.get("execution_count") for c in built.cells if c.cell_type == "code"):
                found.append(f"{rel}/{nb.ipynb.name} holds outputs: commit it as --write makes it, without them")
        reading = nb.reading.read_text(encoding="utf-8") if nb.reading.is_file() else ""
        if colab_url(course, nb) not in reading:
            found.append(f"{rel}/README.md has no \"Open in Colab\" link; put this at its top: "
                         f"{colab_link(course, nb)}")
    readme = course.root / "README.md"
    text = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    found += [f"README.md has no \"Open in Colab\" link to {colab_url(course, nb)}"
              for nb in notebooks(course) if colab_url(course, nb) not in text]
    return found


def write(course: Course) -> list[Path]:
    """Regenerate each .ipynb from its source (first putting the set-up cell right)."""
    jupytext = _jupytext()
    written = []
    for nb in notebooks(course):
        if not nb.source.is_file():
            continue
        src = jupytext.read(nb.source, fmt="py:percent")
        code = [c for c in src.cells if c.cell_type == "code"]
        if code and code[0].source.strip() != setup_cell(course, nb):
            code[0].source = setup_cell(course, nb)
            jupytext.write(src, nb.source, fmt="py:percent")
        src.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3",
                                               "language": "python"})
        src.metadata.setdefault("colab", {"provenance": []})
        for i, c in enumerate(src.cells):  # stable ids, so that regenerating changes nothing
            c.metadata.pop("lines_to_next_cell", None)
            c.id = f"{nb.unit.id}-{i:02d}"
        jupytext.write(src, nb.ipynb, fmt="ipynb")
        written.append(nb.ipynb)
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m grader.notebook_sync",
                                description="Check that each ready unit's notebook (.ipynb) matches its "
                                            "py:percent source, starts with the set-up cell and is linked "
                                            "from its reading; --write regenerates the .ipynb files.")
    p.add_argument("--write", action="store_true", help="regenerate every .ipynb from its source")
    p.add_argument("--course", metavar="PATH", default=None, help="course.toml to use")
    args = p.parse_args(argv)
    course = load_course(args.course)
    if args.write:
        for path in write(course):
            print(f"wrote {path.relative_to(course.root)}")
    found = problems(course)
    for line in found:
        print(line)
    if not found:
        print(f"notebooks in step: {len(notebooks(course))} units")
    return 1 if found else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
