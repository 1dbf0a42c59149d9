"""Reproducible training and safe weight files."""
import os, pickle

import pytest
import torch

from updates_leak.core import set_seed
from updates_leak.data import load_embedded_mnist
from updates_leak.models import MnistCNN, UnsafeFileError, fit, load_weights, online_update, predict_proba, save_weights

def _train(seed):
    set_seed(seed)
    m = MnistCNN()
    fit(m, load_embedded_mnist().subset(range(300)), epochs=1, seed=seed, device='cpu', progress=False)
    return m

def test_same_seed_same_model_and_update():
    a, b = _train(1), _train(1)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    upd = load_embedded_mnist('test').subset(range(100))
    ua, ub = online_update(a, upd, seed=4, device='cpu'), online_update(b, upd, seed=4, device='cpu')
    x = load_embedded_mnist('test').x[100:200]
    assert torch.equal(predict_proba(ua, x), predict_proba(ub, x))

def test_different_seed_different_model():
    a, b = _train(1), _train(2)
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))

def test_safetensors_round_trip(tmp_path):
    m = _train(0)
    p = save_weights(m, tmp_path/'m.safetensors')
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(predict_proba(load_weights(MnistCNN(), p), x), predict_proba(m, x))

def test_plain_tensor_checkpoint_loads(tmp_path):
    m = MnistCNN()
    torch.save(m.state_dict(), tmp_path/'m.pt')
    load_weights(MnistCNN(), tmp_path/'m.pt')

class _Payload:
    def __reduce__(self): return (os.system, ('touch /tmp/updates_leak_pwned',))

def test_pickle_payload_is_refused(tmp_path):
    torch.save({'conv1.weight': _Payload()}, tmp_path/'evil.pt')
    with pytest.raises(UnsafeFileError, match='refusing to unpickle'): load_weights(MnistCNN(), tmp_path/'evil.pt')
    assert not os.path.exists('/tmp/updates_leak_pwned')
    assert issubclass(UnsafeFileError, pickle.UnpicklingError)

def test_save_requires_safetensors_suffix(tmp_path):
    with pytest.raises(ValueError, match='safetensors'): save_weights(MnistCNN(), tmp_path/'m.pt')

def test_dp_sgd_update_matches_opacus():
    "Clipping, averaging and momentum as opacus's DPOptimizer does them (noise off, so both are deterministic)."
    import copy
    import torch.nn.functional as F
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer
    model, data = _train(0), load_embedded_mnist('test').subset(range(8))
    ours = online_update(model, data, lr=0.05, batch_size=4, shuffle=False, seed=3, device='cpu', clip_norm=0.5)
    reference = GradSampleModule(copy.deepcopy(model).train())
    opt = DPOptimizer(torch.optim.SGD(reference.parameters(), lr=0.05, momentum=0.9), noise_multiplier=0., max_grad_norm=0.5, expected_batch_size=4)
    for step, idx in enumerate(torch.arange(8).split(4)):
        masks = [m[0] for m in model.dropout_masks(torch.tensor([3]), step, n=4)]
        opt.zero_grad()
        F.cross_entropy(reference(data.x[idx], masks=masks), data.y[idx]).backward()
        opt.step()
    plain = online_update(model, data, lr=0.05, batch_size=4, shuffle=False, seed=3, device='cpu')
    for p, q, r in zip(ours.parameters(), reference._module.parameters(), plain.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
    assert max((p - r).abs().max() for p, r in zip(ours.parameters(), plain.parameters())) > 1e-3  # clipping did bite

def test_dp_sgd_noise_has_the_promised_scale():
    from updates_leak.core import seeded_generator
    from updates_leak.models import dp_sgd_gradient
    zero = [torch.zeros(5, 200_000)]  # five samples with zero gradients: only noise is left
    g = dp_sgd_gradient(zero, clip_norm=2., noise_multiplier=0.5, generator=seeded_generator(0))[0]
    assert abs(g.std().item() - 0.5 * 2. / 5) < 0.002 and abs(g.mean().item()) < 0.002

def test_dp_sgd_settings_are_checked():
    data = load_embedded_mnist('test').subset(range(4))
    with pytest.raises(ValueError, match='clip_norm'): online_update(MnistCNN(), data, noise_multiplier=1.)
    with pytest.raises(ValueError, match='positive'): online_update(MnistCNN(), data, clip_norm=-1.)

def test_cosine_schedule_anneals_each_step_to_zero():
    # A linear loss has a constant gradient, so plain SGD moves the weight by exactly the learning rate of each step.
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    seen = []
    def linear_loss(m, x, y):
        seen.append(m.weight.item())
        return m(x).sum()
    data = torch.utils.data.TensorDataset(torch.ones(4, 1), torch.zeros(4))
    fit(model, data, epochs=3, lr=0.1, batch_size=1, momentum=0., loss_fn=linear_loss, cosine=True, device='cpu', progress=False)
    seen.append(model.weight.item())
    steps = torch.tensor(seen[:-1]) - torch.tensor(seen[1:])
    expected = 0.1 * (1 + torch.cos(torch.pi * torch.arange(12) / 12)) / 2
    assert torch.allclose(steps, expected, atol=1e-6)
