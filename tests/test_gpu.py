"""Checks of the device path, marked `gpu`: they run on CUDA when present (`tools/device_check.py` runs them in one
call), and on the CPU as a dry run when `UPDATES_LEAK_TEST_DEVICE=cpu`. Each compares the device's result with
the reference computation or checks that the caller's objects are left where they were."""

import pytest
import torch
import torch.nn as nn

from updates_leak.core import numerics_key
from updates_leak.data import Data
from updates_leak.exfiltration import lsb_decode, lsb_encode, randomize_low_bits
from updates_leak.inversion_faces import mi_face
from updates_leak.membership_features import loop_gradients, per_sample_gradients, weight_layers
from updates_leak.membership_lira import train_one_reference, train_references
from updates_leak.models import MLP, MnistCNN, fit
from updates_leak.oracle import Oracle
from updates_leak.updates import generate_updates, loop_updates, sample_updating_sets, stacked_updates, update_seeds

pytestmark = pytest.mark.gpu
POOL = Data(torch.rand(60, 1, 28, 28, generator=torch.Generator().manual_seed(0)), torch.arange(60) % 10, classes=[str(i) for i in range(10)])
PROBE = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(1))


def test_stacked_updates_equal_the_loop_on_the_device(device):
    model = MnistCNN()
    sets, seeds = sample_updating_sets(len(POOL), 6, set_size=10, seed=1), update_seeds(6, seed=1)
    a = stacked_updates(model, POOL, sets=sets, seeds=seeds, probe=PROBE, device=device)
    b = loop_updates(model, POOL, sets=sets, seeds=seeds, probe=PROBE, device=device)
    assert a.device.type == 'cpu' and (a - b).abs().max() <= 1e-5
    assert next(model.parameters()).device.type == 'cpu'  # the caller's model stays where it was


def test_a_cache_hit_equals_a_miss_on_the_device(device, tmp_path):
    sets = sample_updating_sets(len(POOL), 20, set_size=5, seed=2)
    kw = dict(probe=PROBE, seed=3, chunk=10, device=device, progress=False, cache_dir=tmp_path)
    model = MnistCNN()
    miss, hit = generate_updates(model, POOL, sets=sets, **kw), generate_updates(model, POOL, sets=sets, **kw)
    assert torch.equal(miss.after, hit.after) and len(list(tmp_path.glob('updates-*/chunk_*'))) == 2


def test_stacked_references_equal_training_alone_on_the_device(device):
    toy = Data(torch.rand(40, 6, generator=torch.Generator().manual_seed(0)), torch.arange(40) % 3)
    refs = train_references(MLP([6, 12, 3]), toy, n_models=3, epochs=3, lr=1e-2, batch_size=8, seed=1, progress=False, device=device)
    for k in range(3):
        alone = train_one_reference(MLP([6, 12, 3]), toy, keep=refs.keep[k], epochs=3, lr=1e-2, batch_size=8, seed=refs.seeds[k], device=device)
        with torch.no_grad(): assert (refs.logits(toy.x, device)[k] - alone(toy.x)).abs().max() <= 1e-5


def test_per_sample_gradients_equal_the_loop_on_the_device(device):
    model = MLP([20, 16, 4]).to(device)
    x, y = torch.rand(9, 20), torch.randint(0, 4, (9,))
    fast, slow = per_sample_gradients(model, x, y=y, layers=weight_layers(model)), loop_gradients(model, x, y=y, layers=weight_layers(model))
    for l in weight_layers(model): assert fast[l].device.type == 'cpu' and torch.allclose(fast[l], slow[l], atol=1e-5)


def test_fit_leaves_the_callers_random_state_and_reports_losses(device):
    model, data = MLP([20, 8, 3], dropout=0.2), (torch.rand(30, 20), torch.arange(30) % 3)
    before = torch.random.get_rng_state()
    losses = fit(model, data, epochs=2, device=device, progress=False)
    assert len(losses) == 2 and all(l > 0 for l in losses) and torch.equal(torch.random.get_rng_state(), before)


def test_exfiltration_round_trips_on_the_device(device):
    model = MLP([20, 16, 4]).to(device)
    bits = torch.randint(0, 2, (200,), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(lsb_decode(lsb_encode(model, bits, b=8), 200, b=8), bits)
    randomize_low_bits(model, 8, seed=0)
    assert next(model.parameters()).device.type == device.type


def test_oracle_and_mi_face_leave_the_model_where_it_was(device):
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    answers = Oracle(model, (16,), device=device, noise_std=0.01)(torch.rand(4, 16))
    assert answers.device.type == 'cpu' and next(model.parameters()).device.type == 'cpu'
    inv = mi_face(model, [0, 2], image_shape=(16,), max_steps=5, device=device)
    assert next(model.parameters()).device.type == 'cpu' and inv.images.device.type == 'cpu'


def test_the_cache_key_names_the_device_it_computes_on(device):
    key = numerics_key(device)
    assert key['device'] == torch.device(device).type and key['torch'] == torch.__version__
    if key['device'] == 'cuda':  # a cache written on one GPU model is not served on another
        assert key['gpu'] == torch.cuda.get_device_name(torch.device(device)) and 'threads' not in key
    else: assert key['cpu kernels'] == torch.backends.cpu.get_cpu_capability()
