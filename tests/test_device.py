"""The device contract on a CPU: cache keys differ by device, private random streams leave the caller's state alone,
dropout masks are drawn where their keys live, and the one-call device check runs as a dry run
(`tools/device_check.py --device cpu`)."""
import json, subprocess, sys

import torch

from updates_leak.core import numerics_key, private_rng
from updates_leak.data import Data
from updates_leak.models import MnistCNN
from updates_leak.updates import UpdateConfig, sample_updating_sets, update_seeds, updates_fingerprint
from updates_leak.updates_msr import gan_run_key
from conftest import REPO


def test_cache_keys_differ_by_device():
    pool = Data(torch.rand(10, 1, 28, 28), torch.arange(10) % 10, classes=[str(i) for i in range(10)])
    args = (MnistCNN(), pool)
    kw = dict(sets=sample_updating_sets(10, 3, set_size=2), seeds=update_seeds(3), probe=pool.x[:2], config=UpdateConfig())
    assert updates_fingerprint(*args, **kw, device='cpu') != updates_fingerprint(*args, **kw, device='cuda')
    assert updates_fingerprint(*args, **kw, device='cuda:0') == updates_fingerprint(*args, **kw, device='cuda:1')  # the device type, not the index
    g, d = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
    assert gan_run_key(g, d, sets=torch.zeros(1, 2), delta=None, device='cpu') != gan_run_key(g, d, sets=torch.zeros(1, 2), delta=None, device='cuda')


def test_cache_keys_differ_by_cpu_instruction_set_and_torch_version(monkeypatch, tmp_path):
    "PyTorch picks its CPU kernels by the instruction set, and a release may change them: a cache written under either is not served under the other."
    from updates_leak.updates import Scale, make_setting, train_model
    pool = Data(torch.rand(10, 1, 28, 28), torch.arange(10) % 10, classes=[str(i) for i in range(10)])
    args = (MnistCNN(), pool)
    kw = dict(sets=sample_updating_sets(10, 3, set_size=2), seeds=update_seeds(3), probe=pool.x[:2], config=UpdateConfig())
    tiny = make_setting('mnist-embedded', Scale(n_train=100, target_pool=100, epochs=1, lr=0.01, n_shadow_updates=4, n_target_updates=2))
    def keys():
        train_model(tiny, 'target', seed=0, device='cpu', progress=False, cache_dir=tmp_path)
        return updates_fingerprint(*args, **kw, device='cpu'), gan_run_key(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1), sets=torch.zeros(1, 2), delta=None, **numerics_key('cpu'))  # as the GAN trainer keys its runs
    here = keys()
    monkeypatch.setattr(torch.backends.cpu, 'get_cpu_capability', lambda: 'another instruction set')
    other_cpu = keys()
    monkeypatch.setattr(torch, '__version__', '0.0.0')
    other_torch = keys()
    assert len({here[0], other_cpu[0], other_torch[0]}) == 3 and len({here[1], other_cpu[1], other_torch[1]}) == 3
    assert len(list(tmp_path.glob('model-*.safetensors'))) == 3  # one trained model per machine, none served across


def test_private_rng_restores_the_callers_stream():
    torch.manual_seed(5); expected = torch.rand(3)
    torch.manual_seed(5)
    with private_rng(1): inside = torch.rand(2)
    with private_rng(1): again = torch.rand(2)
    assert torch.equal(inside, again) and torch.equal(torch.rand(3), expected)


def test_dropout_masks_are_drawn_on_the_keys_device_and_change_with_the_key_and_step():
    model, keys = MnistCNN(), torch.tensor([3, 4])
    masks = model.dropout_masks(keys, 0, n=5)
    assert all(m.device == keys.device and set(m.unique().tolist()) <= {0., 2.} for m in masks)
    assert not torch.equal(masks[1][0], masks[1][1]) and not torch.equal(masks[1], model.dropout_masks(keys, 1, n=5)[1])
    assert abs(torch.cat([m.flatten() for m in model.dropout_masks(torch.arange(200), 0, n=50)]).mean() - 1) < 0.02  # rate 0.5, scaled by 2


def _state(model):
    return [p.detach().clone() for p in model.parameters()], [p.requires_grad for p in model.parameters()], model.training


def test_white_box_features_and_the_active_attack_take_a_device_and_leave_the_model_alone():
    from updates_leak.membership_features import membership_features, per_sample_gradients
    from updates_leak.membership_federated import FederatedSetting, ascent_response
    from updates_leak.models import MLP
    torch.manual_seed(0)
    model, data = MLP([6, 8, 3]).train(), Data(torch.rand(12, 6), torch.arange(12) % 3)
    model[1].weight.requires_grad_(False)  # a frozen layer stays frozen
    before = _state(model)
    here = membership_features(model, data, layers=['3'])
    there = membership_features(model, data, layers=['3'], device='cpu')
    assert all(torch.equal(here[k], there[k]) and there[k].device.type == 'cpu' for k in here)
    grads = per_sample_gradients(model, data.x, y=data.y, layers=['3'], device='cpu')['3']
    assert torch.allclose(grads, here['grad:3'])
    setting = FederatedSetting('location', participants=2, records=6, rounds=1, local_epochs=1)
    out = ascent_response(model, setting, victim_data=data.subset(range(6)), targets=data.subset(range(6, 12)), group_size=3, step=0.1, device='cpu')
    assert all(v.device.type == 'cpu' and v.shape == (6,) for v in out.values())
    after = _state(model)
    assert all(torch.equal(a, b) for a, b in zip(before[0], after[0])) and before[1:] == after[1:]


def test_the_device_check_runs_as_a_dry_run(tmp_path):
    done = subprocess.run([sys.executable, str(REPO/'tools'/'device_check.py'), '--device', 'cpu', '--out', str(tmp_path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path/'device_check.json').read_text())
    assert report['dry_run'] and report['tests']['returncode'] == 0 and 'passed' in report['tests']['summary']
    assert set(report['benchmarks']) == {'shadow-updates', 'per-sample-gradients', 'reference-models', 'cbm-gan', 'face-inversion'}
    assert all('rows' in b for b in report['benchmarks'].values())  # the data root comes from the test run's environment
