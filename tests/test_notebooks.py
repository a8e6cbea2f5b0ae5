"""Every ready unit's notebook: in step with its source, and runs top to bottom.

Each notebook is executed the way CI promises (issue 15): a real Jupyter kernel,
against the solutions target, in its small configuration (LLMFS_NOTEBOOK_QUICK=1).
A cell that raises fails the test with that cell's error. The check cell must
report every public test passing, and the pictures must really be drawn (a
notebook whose cells all print "still TODO" would otherwise pass).
"""

from __future__ import annotations

import os
import re
import sys

import nbclient  # the test extra installs both: a missing one is a failure, never a skip
import nbformat
import pytest

from grader.course import load_course
from grader.notebook_sync import notebooks, problems, setup_cell

COURSE = load_course()
NOTEBOOKS = {nb.unit.id: nb for nb in notebooks(COURSE)}


def test_every_ready_unit_has_a_notebook_in_step_with_its_source():
    assert problems(COURSE) == []
    assert sorted(NOTEBOOKS) == sorted(u.id for u in COURSE.ready_units)


def test_the_sync_check_sees_an_edited_notebook(tmp_path):
    """The check above can fail: a cell edited in the .ipynb only is reported."""
    import shutil

    nb = NOTEBOOKS["u04"]
    copy = tmp_path / "course"
    for top in ("exercises",):
        shutil.copytree(COURSE.root / top, copy / top, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(COURSE.path, copy / "course.toml")
    course = load_course(copy / "course.toml")
    ipynb = copy / nb.ipynb.relative_to(COURSE.root)
    data = nbformat.read(ipynb, as_version=4)
    data.cells[-1].source += "\nprint('edited in Colab')"
    nbformat.write(data, ipynb)
    (copy / nb.reading.relative_to(COURSE.root)).write_text("# no link\n", encoding="utf-8")
    found = problems(course)
    assert any("differs from" in p for p in found), found
    assert any("Open in Colab" in p for p in found), found


def test_the_setup_cell_installs_from_the_course_repository():
    cell = setup_cell(COURSE, NOTEBOOKS["u04"])
    assert f"!git clone --quiet --depth 1 {COURSE.repository} " in cell
    pip = [line for line in cell.splitlines() if "%pip install" in line]
    assert pip and not any("torch" in line for line in pip)  # Colab's own torch is kept
    assert 'open_unit("u04")' in cell


def _outputs(cell) -> str:
    text = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            text.append(out.get("text", ""))
        elif "data" in out:
            text.append(out["data"].get("text/plain", ""))
    return "".join(text)


@pytest.mark.parametrize("unit_id", sorted(NOTEBOOKS))
def test_notebook_runs_against_the_solutions(unit_id, monkeypatch):
    nb = NOTEBOOKS[unit_id]
    monkeypatch.setenv("LLMFS_TARGET", "solutions")
    monkeypatch.setenv("LLMFS_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # as under llmfs grade: two torch threads on a busy 2-core machine crawl
    # The kernel is this interpreter, whichever environment runs the tests.
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    data = nbformat.read(nb.ipynb, as_version=4)
    client = nbclient.NotebookClient(data, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(nb.folder)}})
    client.execute()
    text = "\n".join(_outputs(c) for c in data.cells if c.cell_type == "code")
    assert "still TODO" not in text, text[-2000:]
    counts = re.findall(r"(\d+)/(\d+) tests passed", text)
    assert counts and all(a == b != "0" for a, b in counts), text[-2000:]
    images = sum("image/png" in out.get("data", {}) for c in data.cells if c.cell_type == "code"
                 for out in c.get("outputs", []))
    assert images >= 1, f"{nb.ipynb.name} drew no picture"
