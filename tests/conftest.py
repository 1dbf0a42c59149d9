"""Shared pytest configuration.

`--nb-flags "slow gpu"` forwards flags to `nbdev_test`, so flagged notebook cells run too.
Tests marked `gpu` take the `device` fixture: CUDA when present, and they are skipped otherwise, unless
`UPDATES_LEAK_TEST_DEVICE` names the device to use (`tools/device_check.py --device cpu` sets it to `cpu`, a dry run
of the GPU checks that keeps them from rotting).
Tests run in parallel workers (pytest-xdist, see pytest.ini), each with one PyTorch thread.
Real-data tests read `UPDATES_LEAK_DATA`; when it is unset, the suite uses the project's shared data folder
`../shared/data` beside the repository (where CI and the project's machines keep it). A missing file then
fails the test with the loader's message naming the paths it tried: it is never skipped silently.
"""
import os
from pathlib import Path

import pytest

if os.environ.get('PYTEST_XDIST_WORKER'):
    # Parallel workers share the cores: one intra-op thread each (notebooks and CLIs run as subprocesses inherit it).
    os.environ['OMP_NUM_THREADS'] = os.environ['MKL_NUM_THREADS'] = '1'
    import torch
    torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]

def pytest_addoption(parser):
    parser.addoption('--nb-flags', default='', help='flags passed to nbdev_test --flags, e.g. "slow gpu"')

def pytest_configure(config):
    if not os.environ.get('UPDATES_LEAK_DATA'):
        os.environ['UPDATES_LEAK_DATA'] = str(REPO.parent/'shared'/'data')

@pytest.fixture
def nb_flags(request): return request.config.getoption('--nb-flags')

@pytest.fixture
def device():
    "Where a `gpu`-marked test computes: `UPDATES_LEAK_TEST_DEVICE`, else CUDA (the test is skipped without it)."
    import torch
    chosen = os.environ.get('UPDATES_LEAK_TEST_DEVICE') or ('cuda' if torch.cuda.is_available() else None)
    if chosen is None: pytest.skip('needs a CUDA device (or UPDATES_LEAK_TEST_DEVICE)')
    return torch.device(chosen)
