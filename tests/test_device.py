"""The device contract on a CPU: cache keys differ by device, private random streams leave the caller's state alone,
and the one-call device check runs as a dry run (`tools/device_check.py --device cpu`)."""
import json, subprocess, sys

import torch

from updates_leak.core import private_rng
from updates_leak.data import Data
from updates_leak.models import MnistCNN
from updates_leak.updates import UpdateConfig, sample_updating_sets, update_seeds, updates_fingerprint
from updates_leak.updates_msr import gan_run_key
from conftest import REPO


def test_cache_keys_differ_by_device():
    pool = Data(torch.rand(10, 1, 28, 28), torch.arange(10) % 10, [str(i) for i in range(10)])
    args = (MnistCNN(), pool, sample_updating_sets(10, 3, 2), update_seeds(3), pool.x[:2], UpdateConfig())
    assert updates_fingerprint(*args, 'cpu') != updates_fingerprint(*args, 'cuda')
    assert updates_fingerprint(*args, 'cuda:0') == updates_fingerprint(*args, 'cuda:1')  # the device type, not the index
    g, d = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
    assert gan_run_key(g, d, torch.zeros(1, 2), None, device='cpu') != gan_run_key(g, d, torch.zeros(1, 2), None, device='cuda')


def test_private_rng_restores_the_callers_stream():
    torch.manual_seed(5); expected = torch.rand(3)
    torch.manual_seed(5)
    with private_rng(1): inside = torch.rand(2)
    with private_rng(1): again = torch.rand(2)
    assert torch.equal(inside, again) and torch.equal(torch.rand(3), expected)


def test_the_device_check_runs_as_a_dry_run(tmp_path):
    done = subprocess.run([sys.executable, str(REPO/'tools'/'device_check.py'), '--device', 'cpu', '--out', str(tmp_path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path/'device_check.json').read_text())
    assert report['dry_run'] and report['tests']['returncode'] == 0 and 'passed' in report['tests']['summary']
    assert set(report['benchmarks']) == {'shadow-updates', 'per-sample-gradients', 'reference-models', 'face-inversion'}
    assert all('rows' in b for b in report['benchmarks'].values())  # the data root comes from the test run's environment
