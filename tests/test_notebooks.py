"""The notebooks run top to bottom on the committed results/, render every
figure, and are stored with their outputs stripped (reviewable diffs, no
stale numbers).  Generic over notebooks/*.ipynb."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

nbformat = pytest.importorskip("nbformat")

#: a code cell that shows a figure: plt.show(), display(Image(...)) or a
#: figure object left as the cell's value
FIGURE = re.compile(r"plt\.show\(|display\(\s*Image\(|^fig\s*$", re.M)


def figure_cells(nb) -> list[int]:
    return [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and FIGURE.search(c.source)]


def execute(path: Path, cwd: Path):
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(cwd)}})
    client.execute()        # raises CellExecutionError naming the cell on any error
    return nb


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks/*.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stripped(path):
    nb = nbformat.read(path, as_version=4)
    for i, c in enumerate(nb.cells):
        if c.cell_type == "code":
            assert not c.outputs and c.execution_count is None, \
                f"{path.name}: cell {i} has outputs; strip them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_from_outside_the_repo_and_renders_its_figures(path, tmp_path,
                                                                     monkeypatch):
    """Executed with its working directory outside the repository: every
    figure cell must have an image/png output (a forced Agg backend, or a
    chart helper switching it, leaves plt.show() with no output)."""
    assert (ROOT / "results" / "results.csv").exists(), \
        "results/results.csv missing: run `execbench all` (the notebooks read results/)"
    monkeypatch.delenv("EXECBENCH_RESULTS_DIR", raising=False)
    nb = execute(path, tmp_path)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors
    cells = figure_cells(nb)
    assert cells, f"{path.name}: no figure cell found"
    for i in cells:
        pngs = [o for o in nb.cells[i].outputs if "image/png" in o.get("data", {})]
        assert pngs, f"{path.name}: figure cell {i} rendered no image/png"


def test_design_comparison_says_where_results_are_expected(tmp_path, monkeypatch):
    nbclient = pytest.importorskip("nbclient")
    path = ROOT / "notebooks" / "design-comparison.ipynb"
    monkeypatch.setenv("EXECBENCH_RESULTS_DIR", str(tmp_path / "nothing-here"))
    nb = nbformat.read(path, as_version=4)
    nb.cells = nb.cells[:2]        # the title and the set-up cell that finds results/
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    with pytest.raises(nbclient.exceptions.CellExecutionError) as e:
        client.execute()
    msg = str(e.value)
    assert "execbench all" in msg and "nothing-here" in msg
