"""Reference models and the likelihood-ratio attacks: stacked training equals training alone, LiRA and RMIA equal a
direct computation, bad input is refused."""
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings, strategies as st

from updates_leak.data import as_data
from updates_leak.membership_lira import (inclusion_matrix, lira_scores, logit_confidence, rmia_scores, run_reference_attacks,
                                          train_one_reference, train_references, true_label_probability)
from updates_leak.models import MLP

TOY = as_data((torch.rand(48, 6, generator=torch.Generator().manual_seed(1)), torch.arange(48) % 3), name='toy')


@pytest.mark.parametrize('arch', [MLP([6, 12, 3]), nn.Sequential(nn.Linear(6, 10), nn.LayerNorm(10), nn.Tanh(), nn.Linear(10, 3))],
                         ids=['mlp', 'layernorm'])
def test_stacked_references_equal_training_alone(arch):
    refs = train_references(arch, TOY, 4, epochs=4, lr=1e-2, batch_size=10, seed=3, show=False, device='cpu')
    stacked = refs.logits(TOY.x, device='cpu')
    for k in range(4):
        alone = train_one_reference(arch, TOY, refs.keep[k], 4, 1e-2, 10, refs.seeds[k], device='cpu')
        assert torch.allclose(stacked[k], alone(TOY.x).detach(), atol=1e-5, rtol=0)


def test_chunks_and_cache_give_the_same_models(tmp_path):
    arch = MLP([6, 12, 3])
    whole = train_references(arch, TOY, 5, epochs=2, seed=0, show=False, device='cpu')
    tiny_memory = train_references(arch, TOY, 5, epochs=2, seed=0, show=False, device='cpu', memory=1, cache_dir=tmp_path)
    again = train_references(arch, TOY, 5, epochs=2, seed=0, show=False, device='cpu', memory=1, cache_dir=tmp_path)  # read back
    for a, b, c in zip(whole.states, tiny_memory.states, again.states):
        for k in a: assert torch.allclose(a[k], b[k], atol=1e-6) and torch.equal(b[k], c[k])


def test_the_architecture_is_not_changed():
    arch = MLP([6, 12, 3])
    before = {k: v.clone() for k, v in arch.state_dict().items()}
    train_references(arch, TOY, 2, epochs=1, show=False, device='cpu')
    assert all(torch.equal(before[k], v) for k, v in arch.state_dict().items())


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 20), st.integers(2, 300), st.integers(0, 99))
def test_every_model_trains_on_as_many_records_and_every_record_is_in_about_half(k, n, seed):
    n = max(n, 2 * k)  # fewer records than models cannot be balanced
    keep = inclusion_matrix(k, n, seed=seed)
    rows, cols = keep.sum(1), keep.sum(0)
    assert keep.shape == (k, n) and len(set(rows.tolist())) == 1
    half = max(1, k // 2)
    # at most half; the rows' equalising drops at most `half` records per model, so on average at most k·half/n per record
    assert cols.max() <= half and cols.float().mean() >= half * (1 - k / n) and (cols < k).all()


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000))
def test_logit_confidence_is_log_odds_of_the_true_label(seed):
    g = torch.Generator().manual_seed(seed)
    logits, y = torch.randn(7, 5, generator=g, dtype=torch.float64) * 3, torch.randint(0, 5, (7,), generator=g)
    p = torch.softmax(logits, 1)[torch.arange(7), y]
    assert torch.allclose(logit_confidence(logits, y), torch.log(p / (1 - p)), atol=1e-9)
    assert torch.allclose(true_label_probability(logits, y), p)


def test_lira_equals_a_direct_computation():
    rng = np.random.default_rng(0)
    refs, keep, target = rng.normal(size=(6, 4)), np.array([[1, 0, 1, 0], [0, 1, 0, 1]] * 3, dtype=bool), rng.normal(size=4)
    online = lira_scores(torch.tensor(target), torch.tensor(refs), torch.tensor(keep))
    offline = lira_scores(torch.tensor(target), torch.tensor(refs), torch.tensor(keep), online=False)
    from scipy.stats import norm
    for i in range(4):
        ins, outs = refs[keep[:, i], i], refs[~keep[:, i], i]
        direct = norm.logpdf(target[i], ins.mean(), ins.std(ddof=1)) - norm.logpdf(target[i], outs.mean(), outs.std(ddof=1))
        assert math.isclose(float(online[i]), direct, rel_tol=1e-9)
        assert math.isclose(float(offline[i]), norm.logcdf(target[i], outs.mean(), outs.std(ddof=1)), rel_tol=1e-9)


def test_rmia_equals_a_direct_computation():
    rng = np.random.default_rng(1)
    px_t, px_r, pz_t, pz_r = rng.random(5), rng.random((4, 5)), rng.random(7), rng.random((4, 7))
    keep = np.array([[1, 0, 0, 1, 0], [0, 1, 1, 0, 0], [1, 1, 0, 0, 1], [0, 0, 1, 1, 1]], dtype=bool)
    t = lambda a: torch.tensor(a)
    online = rmia_scores(t(px_t), t(px_r), t(keep), t(pz_t), t(pz_r))
    offline = rmia_scores(t(px_t), t(px_r), t(keep), t(pz_t), t(pz_r), online=False, a=0.4, gamma=1.5)
    for i in range(5):
        lr_x, lr_z = px_t[i] / px_r[:, i].mean(), pz_t / pz_r.mean(0)
        assert math.isclose(float(online[i]), float(np.mean(lr_x / lr_z >= 1)))
        px = 0.5 * (1.4 * px_r[~keep[:, i], i].mean() + 0.6)
        assert math.isclose(float(offline[i]), float(np.mean((px_t[i] / px) / (pz_t / (0.5 * (1.4 * pz_r.mean(0) + 0.6))) >= 1.5)))


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match='reference models must be a whole number ≥ 2'):
        run_reference_attacks(MLP([6, 12, 3]), TOY, pool=24, n_references=1)
    refs, target = torch.randn(3, 2), torch.randn(2)
    with pytest.raises(ValueError, match="no reference model's OUT set"): lira_scores(target, refs, torch.ones(3, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="no reference model's IN set"): lira_scores(target, refs, torch.zeros(3, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match='population records'): rmia_scores(target, refs, None, torch.tensor([]), torch.zeros(3, 0))
    with pytest.raises(ValueError, match='leave population records'): run_reference_attacks(MLP([6, 12, 3]), TOY, pool=48)
    with pytest.raises(ValueError, match='BatchNorm'):
        train_references(nn.Sequential(nn.Linear(6, 4), nn.BatchNorm1d(4), nn.Linear(4, 3)), TOY, 2, epochs=1, show=False)
    with pytest.raises(ValueError, match='as many records'):
        train_references(MLP([6, 12, 3]), TOY, 2, epochs=1, keep=torch.tensor([[True] * 30 + [False] * 18, [True] * 20 + [False] * 28]), show=False)


def test_the_ray_path_equals_the_local_path(tmp_path):
    "Chunks trained as tasks of a local Ray instance equal the local chunks, and the two share one cache."
    ray = pytest.importorskip('ray')
    arch = MLP([6, 12, 3])
    local = train_references(arch, TOY, 4, epochs=2, seed=5, show=False, device='cpu', memory=1, cache_dir=tmp_path/'local')
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    try:
        remote = train_references(arch, TOY, 4, epochs=2, seed=5, show=False, device='cpu', memory=1, cache_dir=tmp_path/'ray', backend='ray')
    finally: ray.shutdown()
    for a, b in zip(local.states, remote.states):
        for k in a: assert torch.allclose(a[k], b[k], atol=1e-6, rtol=0), k
    assert sorted(p.name for p in (tmp_path/'local').glob('*.safetensors')) == sorted(p.name for p in (tmp_path/'ray').glob('*.safetensors'))
    resumed = train_references(arch, TOY, 4, epochs=2, seed=5, show=False, device='cpu', memory=1, cache_dir=tmp_path/'ray')  # the Ray run's cache, read locally
    for a, b in zip(remote.states, resumed.states):
        for k in a: assert torch.equal(a[k], b[k])


def test_the_cli_refuses_lira_in_the_federated_setting(capsys):
    from updates_leak.cli import main
    with pytest.raises(SystemExit) as e: main(['membership', '--attack', 'lira', '--setting', 'federated', '--out', ''])
    assert e.value.code == 2 and 'runs stand-alone' in capsys.readouterr().err
    with pytest.raises(SystemExit) as e: main(['membership', '--attack', 'lira', '--references', '1'])
    assert e.value.code == 2
