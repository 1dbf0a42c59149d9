"""Exfiltration: encodings round-trip, the countermeasure destroys LSB, capacity abuse works through the API, bad input."""
import copy, json, subprocess

import pytest
import torch

from updates_leak.data import load_dataset
from updates_leak.exfiltration import (capacity_abuse_data, capacity_abuse_decode, correlated_decode, correlated_value_loss, correlation_penalty, from_bits,
                                       levels_correct, lsb_capacity, lsb_decode, lsb_encode, mape, owner_model, randomize_low_bits, run_exfiltration,
                                       secret_images, sign_decode, sign_loss, sign_penalty, synthetic_inputs, to_bits, train_owner_model)
from updates_leak.models import MLP
from updates_leak.oracle import Oracle

@pytest.fixture(scope='module')
def owner(): return load_dataset('fashion-mnist', 'train')

@pytest.fixture(scope='module')
def small_owner(owner): return owner.subset(torch.arange(3000))

def test_lsb_round_trips_exactly_and_keeps_the_model(owner):
    model = owner_model(owner)
    secret = secret_images(owner, 50)
    for b in (1, 8, 16):
        encoded = lsb_encode(copy.deepcopy(model), to_bits(secret), b=b)
        assert torch.equal(from_bits(lsb_decode(encoded, secret.numel() * 8, b=b), secret.shape), secret)
        change = max((p - q).abs().max().item() / (q.abs().max().item() + 1e-12) for p, q in zip(encoded.parameters(), model.parameters()))
        assert change < 2 ** (b - 23 + 1)

def test_randomising_low_bits_destroys_lsb(owner):
    secret = secret_images(owner, 50)
    model = lsb_encode(owner_model(owner), to_bits(secret), b=8)
    randomize_low_bits(model, 8, seed=1)
    right = (lsb_decode(model, secret.numel() * 8, b=8) == to_bits(secret)).float().mean().item()
    assert abs(right - 0.5) < 0.01

def test_lsb_bad_input(owner):
    model = owner_model(owner)
    with pytest.raises(ValueError, match='between 1 and 23'): lsb_encode(model, torch.zeros(8, dtype=torch.uint8), b=0)
    with pytest.raises(ValueError, match='exceeds the capacity'):
        lsb_encode(model, torch.zeros(lsb_capacity(model, 2) + 1, dtype=torch.uint8), b=2)
    with pytest.raises(ValueError, match='float32'): lsb_encode(copy.deepcopy(model).double(), torch.zeros(8, dtype=torch.uint8), b=8)

def test_secret_larger_than_the_model_is_refused(owner):
    with pytest.raises(ValueError, match='exceeds'):
        sign_penalty(MLP([784, 4, 10]), torch.zeros(10_000, dtype=torch.uint8))
    with pytest.raises(ValueError, match='between 1 and'): secret_images(owner, 10 ** 9)

def test_correlated_parameters_correlate_with_the_secret(small_owner):
    secret = secret_images(small_owner, 20)
    values = secret.reshape(-1).float()
    model = train_owner_model(small_owner, correlated_value_loss(values, 1.), epochs=2)
    assert -correlation_penalty(model, values).item() > 0.9
    assert (correlated_decode(model, tuple(secret.shape)).float() - secret.float()).abs().mean() < 30

def test_sign_encoding_recovers_most_bits(small_owner):
    secret = secret_images(small_owner, 5)
    bits = to_bits(secret)
    model = train_owner_model(small_owner, sign_loss(bits, 10.), epochs=10)
    assert (sign_decode(model, len(bits)) == bits).float().mean() > 0.9

def test_capacity_abuse_recovers_a_small_secret_through_the_api(small_owner):
    secret = secret_images(small_owner, 5)
    model = train_owner_model(capacity_abuse_data(small_owner, secret), epochs=5)
    api = Oracle(model, (1, 28, 28), output='label')
    recovered = capacity_abuse_decode(api, tuple(secret.shape), n_classes=10, input_shape=(1, 28, 28))
    assert api.queries == secret.numel()
    background = ((secret.long() * 10 // 256) == 0).float().mean().item()  # always answering the darkest level
    assert levels_correct(recovered, secret, n_classes=10) > 0.9 > background + 0.2
    assert mape(recovered, secret) < 20

def test_sparse_synthetic_inputs_are_memorised_faster_than_dense_ones(small_owner):
    secret = secret_images(small_owner, 5)
    right = {}
    for on_pixels in (20, 392):
        model = train_owner_model(capacity_abuse_data(small_owner, secret, on_pixels=on_pixels), epochs=5)
        recovered = capacity_abuse_decode(Oracle(model, (1, 28, 28), output='label'), tuple(secret.shape), n_classes=10, input_shape=(1, 28, 28), on_pixels=on_pixels)
        right[on_pixels] = levels_correct(recovered, secret, n_classes=10)
    assert right[20] > right[392] + 0.2

def test_synthetic_inputs_bad_input():
    with pytest.raises(ValueError, match='between 1 and 784'): synthetic_inputs(3, (1, 28, 28), on_pixels=0)
    with pytest.raises(ValueError, match='between 1 and 784'): run_exfiltration('cap', n_secrets=1, on_pixels=785)

def test_cli_exfiltrate_lsb(tmp_path):
    r = subprocess.run(['updates-leak', 'exfiltrate', '--attack', 'lsb', '--secrets', '20', '--epochs', '1', '--out', str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path/'exfiltrate_lsb_fashion-mnist_epochs-1_secrets-20.json').read_text())
    assert res['bits_correct'] == 1.0 and res['mape'] == 0 and res['malicious_accuracy'] > 0.8
    assert (tmp_path/'exfiltrate_lsb_fashion-mnist_epochs-1_secrets-20.png').stat().st_size > 1000

def test_cli_exfiltrate_refuses_an_oversized_secret(tmp_path):
    r = subprocess.run(['updates-leak', 'exfiltrate', '--attack', 'sgn', '--secrets', '200', '--epochs', '1', '--out', str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "exceed what 'sgn' can hide" in r.stderr and 'Traceback' not in r.stderr

def test_cli_exfiltrate_cap_through_the_api(tmp_path):
    r = subprocess.run(['updates-leak', 'exfiltrate', '--attack', 'cap', '--secrets', '2', '--epochs', '1', '--out', str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path/'exfiltrate_cap_fashion-mnist_epochs-1_secrets-2.json').read_text())
    assert res['queries'] == 2 * 784 and 0 <= res['levels_correct'] <= 1
    assert (tmp_path/'exfiltrate_cap_fashion-mnist_epochs-1_secrets-2.png').stat().st_size > 1000
    r = subprocess.run(['updates-leak', 'exfiltrate', '--attack', 'cap', '--secrets', '2', '--on_pixels', '0', '--out', str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and 'on_pixels must be a whole number ≥ 1, got 0' in r.stderr and r.stderr.count('\n') == 1
