"""Shared pytest configuration.

`--nb-flags "slow gpu"` forwards flags to `nbdev_test`, so flagged notebook cells run too.
Tests marked `gpu` take the `device` fixture: CUDA when present, and they are skipped otherwise, unless
`UPDATES_LEAK_TEST_DEVICE` names the device to use (`tools/device_check.py --device cpu` sets it to `cpu`, a dry run
of the GPU checks that keeps them from rotting).
Tests run in parallel workers (pytest-xdist, see pytest.ini), each with one PyTorch thread.
Real-data tests read `UPDATES_LEAK_DATA`; when it is unset, the suite uses a `shared/data` folder beside the
repository (where CI keeps it). With a data root, a missing file fails the test with the loader's message naming the
paths it tried. Without any (a fresh clone on a newcomer's machine), a test that fails for want of real data is
reported as skipped with the reason, and every other test runs.
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

NO_DATA_ROOT = ("needs the real datasets, and there is no data root: set UPDATES_LEAK_DATA to a folder holding them "
                "(the README's Data section; each loader's error names where to get its files)")

def pytest_configure(config):
    if not os.environ.get('UPDATES_LEAK_DATA'):
        os.environ['UPDATES_LEAK_DATA'] = str(REPO.parent/'shared'/'data')
    root = Path(os.environ['UPDATES_LEAK_DATA'])
    config.no_data_root = not (root.is_dir() and any(root.iterdir()))

def _wants_data(report) -> bool:
    """Whether a failure is a loader's missing data: `MissingDataError`, raised here or in a notebook the test ran, or
    its one line from a command the test ran ('no data found')."""
    texts = [report.longreprtext, *(content for _, content in report.sections)]
    return any('MissingDataError' in t or 'no data found' in t for t in texts)

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    "Without a data root, a test that failed for want of real data is a skip that says so (never silent)."
    report = (yield).get_result()
    if report.failed and call.when in ('setup', 'call') and item.config.no_data_root and _wants_data(report):
        report.outcome, report.longrepr = 'skipped', (str(item.path), item.location[1] or 0, NO_DATA_ROOT)

@pytest.fixture
def nb_flags(request): return request.config.getoption('--nb-flags')

@pytest.fixture
def device():
    "Where a `gpu`-marked test computes: `UPDATES_LEAK_TEST_DEVICE`, else CUDA (the test is skipped without it)."
    import torch
    chosen = os.environ.get('UPDATES_LEAK_TEST_DEVICE') or ('cuda' if torch.cuda.is_available() else None)
    if chosen is None: pytest.skip('needs a CUDA device (or UPDATES_LEAK_TEST_DEVICE)')
    return torch.device(chosen)
