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
