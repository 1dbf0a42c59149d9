"""Every notebook runs top to bottom through `nbdev_test` (one test per notebook)."""
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO/'nbs').glob('*.ipynb'))

@pytest.mark.parametrize('nb', NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook(nb, nb_flags):
    cmd = ['nbdev_test', '--path', str(nb), '--n_workers', '0'] + (['--flags', nb_flags] if nb_flags else [])
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, f"{nb.name} failed:\n{res.stdout[-5000:]}\n{res.stderr[-5000:]}"
