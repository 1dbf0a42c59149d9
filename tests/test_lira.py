"""Reference models and the likelihood-ratio attacks: stacked training equals training alone, LiRA and RMIA equal a
direct computation, bad input is refused."""
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings, strategies as st

from updates_leak.core import torch_threads
from updates_leak.data import Data, as_data
from updates_leak.attacks import true_label_confidence
from updates_leak.membership_lira import (augmented_lira_scores, inclusion_matrix, lira_scores, reference_log_posteriors,
                                          rmia_scores, run_reference_attacks, train_one_reference, train_references, true_label_probability)
from updates_leak.models import MLP

TOY = as_data((torch.rand(48, 6, generator=torch.Generator().manual_seed(1)), torch.arange(48) % 3), name='toy')


@pytest.mark.parametrize('arch', [MLP([6, 12, 3]), nn.Sequential(nn.Linear(6, 10), nn.LayerNorm(10), nn.Tanh(), nn.Linear(10, 3))],
                         ids=['mlp', 'layernorm'])
def test_stacked_references_equal_training_alone(arch):
    refs = train_references(arch, TOY, n_models=4, epochs=4, lr=1e-2, batch_size=10, seed=3, progress=False, device='cpu')
    stacked = refs.logits(TOY.x, device='cpu')
    for k in range(4):
        alone = train_one_reference(arch, TOY, keep=refs.keep[k], epochs=4, lr=1e-2, batch_size=10, seed=refs.seeds[k], device='cpu')
        assert torch.allclose(stacked[k], alone(TOY.x).detach(), atol=1e-5, rtol=0)


def test_chunks_and_cache_give_the_same_models(tmp_path):
    arch = MLP([6, 12, 3])
    whole = train_references(arch, TOY, n_models=5, epochs=2, seed=0, progress=False, device='cpu')
    tiny_memory = train_references(arch, TOY, n_models=5, epochs=2, seed=0, progress=False, device='cpu', memory=1, cache_dir=tmp_path)
    again = train_references(arch, TOY, n_models=5, epochs=2, seed=0, progress=False, device='cpu', memory=1, cache_dir=tmp_path)  # read back
    for a, b, c in zip(whole.states, tiny_memory.states, again.states):
        for k in a: assert torch.allclose(a[k], b[k], atol=1e-6) and torch.equal(b[k], c[k])


def test_the_architecture_is_not_changed():
    arch = MLP([6, 12, 3])
    before = {k: v.clone() for k, v in arch.state_dict().items()}
    train_references(arch, TOY, n_models=2, epochs=1, progress=False, device='cpu')
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
def test_true_label_confidence_is_log_odds_of_the_true_label(seed):
    g = torch.Generator().manual_seed(seed)
    logits, y = torch.randn(7, 5, generator=g, dtype=torch.float64) * 3, torch.randint(0, 5, (7,), generator=g)
    p = torch.softmax(logits, 1)[torch.arange(7), y]
    assert torch.allclose(true_label_confidence(logits, y), torch.log(p / (1 - p)), atol=1e-9)
    assert torch.allclose(true_label_probability(logits, y), p)


def test_lira_equals_a_direct_computation():
    rng = np.random.default_rng(0)
    refs, keep, target = rng.normal(size=(6, 4)), np.array([[1, 0, 1, 0], [0, 1, 0, 1]] * 3, dtype=bool), rng.normal(size=4)
    online = lira_scores(torch.tensor(target), torch.tensor(refs), keep=torch.tensor(keep))
    offline = lira_scores(torch.tensor(target), torch.tensor(refs), keep=torch.tensor(keep), online=False)
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
    online = rmia_scores(t(px_t), t(px_r), keep=t(keep), target_z=t(pz_t), references_z=t(pz_r))
    offline = rmia_scores(t(px_t), t(px_r), keep=t(keep), target_z=t(pz_t), references_z=t(pz_r), online=False, a=0.4, gamma=1.5)
    for i in range(5):
        lr_x, lr_z = px_t[i] / px_r[:, i].mean(), pz_t / pz_r.mean(0)
        assert math.isclose(float(online[i]), float(np.mean(lr_x / lr_z >= 1)))
        px = 0.5 * (1.4 * px_r[~keep[:, i], i].mean() + 0.6)
        assert math.isclose(float(offline[i]), float(np.mean((px_t[i] / px) / (pz_t / (0.5 * (1.4 * pz_r.mean(0) + 0.6))) >= 1.5)))


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match='reference models must be a whole number ≥ 2'):
        run_reference_attacks(MLP([6, 12, 3]), TOY, pool=24, n_references=1)
    refs, target = torch.randn(3, 2), torch.randn(2)
    with pytest.raises(ValueError, match="no reference model's OUT set"): lira_scores(target, refs, keep=torch.ones(3, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="no reference model's IN set"): lira_scores(target, refs, keep=torch.zeros(3, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match='population records'): rmia_scores(target, refs, keep=None, target_z=torch.tensor([]), references_z=torch.zeros(3, 0))
    with pytest.raises(ValueError, match='leave population records'): run_reference_attacks(MLP([6, 12, 3]), TOY, pool=48)
    with pytest.raises(ValueError, match='BatchNorm'):
        train_references(nn.Sequential(nn.Linear(6, 4), nn.BatchNorm1d(4), nn.Linear(4, 3)), TOY, n_models=2, epochs=1, progress=False)
    with pytest.raises(ValueError, match='as many records'):
        train_references(MLP([6, 12, 3]), TOY, n_models=2, epochs=1, keep=torch.tensor([[True] * 30 + [False] * 18, [True] * 20 + [False] * 28]), progress=False)


def test_the_ray_path_equals_the_local_path(tmp_path):
    "Chunks trained as tasks of a local Ray instance (one intra-op thread each) equal local chunks trained at one thread, and the two share one cache; at two threads the local path trains its own."
    ray = pytest.importorskip('ray')
    arch = MLP([6, 12, 3])
    with torch_threads(1): local = train_references(arch, TOY, n_models=4, epochs=2, seed=5, progress=False, device='cpu', memory=1, cache_dir=tmp_path/'local')
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    try:
        remote = train_references(arch, TOY, n_models=4, epochs=2, seed=5, progress=False, device='cpu', memory=1, cache_dir=tmp_path/'ray', backend='ray')
    finally: ray.shutdown()
    for a, b in zip(local.states, remote.states):
        for k in a: assert torch.allclose(a[k], b[k], atol=1e-6, rtol=0), k
    assert sorted(p.name for p in (tmp_path/'local').glob('*.safetensors')) == sorted(p.name for p in (tmp_path/'ray').glob('*.safetensors'))
    with torch_threads(1): resumed = train_references(arch, TOY, n_models=4, epochs=2, seed=5, progress=False, device='cpu', memory=1, cache_dir=tmp_path/'ray')  # the Ray run's cache, read locally
    for a, b in zip(remote.states, resumed.states):
        for k in a: assert torch.equal(a[k], b[k])
    with torch_threads(2): train_references(arch, TOY, n_models=4, epochs=2, seed=5, progress=False, device='cpu', memory=1, cache_dir=tmp_path/'ray')
    assert len(list((tmp_path/'ray').glob('*.safetensors'))) == 2 * len(list((tmp_path/'local').glob('*.safetensors')))


def test_the_cli_refuses_bad_options_of_the_papers_protocol(capsys):
    from updates_leak.cli import main
    with pytest.raises(SystemExit) as e: main(['membership', '--attack', 'references', '--participants', '3', '--out', ''])
    assert e.value.code == 2 and '--participants: not an option of --attack references' in capsys.readouterr().err
    with pytest.raises(SystemExit) as e: main(['membership', '--attack', 'references', '--references', '1'])
    assert e.value.code == 2
    for bad in (['--population', '-1'], ['--backend', 'spark']):
        with pytest.raises(SystemExit) as e: main(['membership', '--attack', 'references', *bad])
        assert e.value.code == 2


def test_the_cli_runs_lira_with_a_population_and_writes_its_results(tmp_path, monkeypatch):
    "A small LiRA run from the command line: the population flag bounds RMIA's records, the JSON and the ROC figure are written."
    import json
    from updates_leak import cli
    from updates_leak.membership_standalone import MembershipTarget
    from updates_leak.membership_standalone import TARGETS
    monkeypatch.setitem(TARGETS, 'location', MembershipTarget('location', lambda: MLP([446, 16, 30]), members=100, shadow=0, test=0, epochs=2))
    cli.main(['membership', '--attack', 'references', '--references', '2', '--population', '50', '--device', 'cpu', '--out', str(tmp_path)])
    d = json.loads((tmp_path/'membership_references_location_population-50_references-2.json').read_text())
    assert d['population'] == 50 and d['pool'] == 200 and 'RMIA offline' in d['metrics'] and list(tmp_path.glob('*.png'))


def test_one_at_a_time_equals_stacked_and_trains_batch_norm():
    arch = MLP([6, 12, 3])
    a = train_references(arch, TOY, n_models=3, epochs=3, lr=1e-2, batch_size=10, seed=2, progress=False, device='cpu')
    b = train_references(arch, TOY, n_models=3, epochs=3, lr=1e-2, batch_size=10, seed=2, progress=False, device='cpu', stacked=False)
    assert (a.logits(TOY.x, 'cpu') - b.logits(TOY.x, 'cpu')).abs().max() <= 1e-5
    bn = nn.Sequential(nn.Linear(6, 10), nn.BatchNorm1d(10), nn.ReLU(), nn.Linear(10, 3))
    logp, = reference_log_posteriors(bn, TOY, keep=inclusion_matrix(3, len(TOY)), queries=[TOY.x[:5]], n_classes=3, epochs=2, progress=False, device='cpu')
    assert logp.shape == (3, 5, 3) and torch.allclose(logp.exp().sum(-1), torch.ones(3, 5, dtype=logp.dtype))
    assert bn.training and not any(m.num_batches_tracked for m in bn.modules() if isinstance(m, nn.BatchNorm1d))  # the caller's copy untouched


def test_augmented_lira_averages_the_queries():
    g = torch.Generator().manual_seed(0)
    refs, target, keep = torch.randn(6, 2, 9, generator=g), torch.randn(2, 9, generator=g), inclusion_matrix(6, 9, seed=1)
    one = augmented_lira_scores(target[:1], refs[:, :1], keep=keep)
    assert torch.allclose(one, lira_scores(target[0], refs[:, 0], keep=keep))
    both = augmented_lira_scores(target, refs, keep=keep, online=False)
    assert torch.allclose(both, (lira_scores(target[0], refs[:, 0], keep=keep, online=False) + lira_scores(target[1], refs[:, 1], keep=keep, online=False)) / 2)
    with pytest.raises(ValueError, match='mirrors images'):
        run_reference_attacks(MLP([6, 12, 3]), as_data((torch.rand(40, 6), torch.arange(40) % 3)), pool=30, n_references=2, epochs=1, augment=True, progress=False)


def test_stacked_training_is_exact_in_float64():
    "In float64 stacked and lone training agree to rounding (≤ 1e-12): what float32 shows at long runs is rounding, not a different algorithm."
    toy64 = Data(TOY.x.double(), TOY.y, name='toy64')  # `Data` keeps the dtype it is given
    arch = nn.Sequential(nn.Linear(6, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 3)).double()
    refs = train_references(arch, toy64, n_models=3, epochs=30, lr=1e-2, batch_size=8, seed=4, progress=False, device='cpu')
    stacked = refs.logits(toy64.x, device='cpu')
    for k in range(3):
        alone = train_one_reference(arch, toy64, keep=refs.keep[k], epochs=30, lr=1e-2, batch_size=8, seed=refs.seeds[k], device='cpu')
        with torch.no_grad(): assert (stacked[k] - alone(toy64.x)).abs().max() <= 1e-12


def test_the_reference_benchmark_prints_ratios_and_the_floor():
    from updates_leak.membership_lira import bench_reference_models
    rows = bench_reference_models(n_models=2, epochs=1, pool=100, device='cpu')
    assert [r['method'] for r in rows] == ['one at a time', 'stacked (torch.func)'] * 2
    assert all(r['ratio'] > 0 for r in rows) and all(r['FLOP floor (s)'] >= 0 and r['largest possible ratio'] > 0 for r in rows[::2])
    assert all(r['max |logit difference|'] <= 1e-5 for r in rows[1::2])  # speed is printed, never asserted


@pytest.fixture(scope='module')
def location_run():
    "A quick Location run: a small MLP target and four references on 600 pool records, 400 population records."
    from updates_leak.data import load_dataset
    loc = load_dataset('location', 'all')
    data = loc.subset(torch.randperm(len(loc), generator=torch.Generator().manual_seed(0))[:1000])
    return data, run_reference_attacks(MLP([446, 64, 30]), data, pool=600, n_references=4, epochs=30, name='location', device='cpu', progress=False)


def test_attacks_through_the_api_under_every_disclosure_policy(location_run):
    "Exact answers through the Oracle give the run's own numbers; label-only answers bring LiRA down to the label-only level."
    from updates_leak.attacks import MembershipResult
    from updates_leak.membership_lira import DISCLOSURES, THROUGH_API, reference_attacks_through_api
    data, run = location_run
    results = reference_attacks_through_api(run, data, pool=600)
    by = {(r.attack, r.setting): r for r in results}
    assert len(results) == len(DISCLOSURES) * len(THROUGH_API)
    for attack in THROUGH_API:  # the Oracle adds nothing to exact answers
        for k, v in by[attack, 'exact posteriors'].metrics.items(): assert v == pytest.approx(run.metrics[attack][k], abs=1e-9), (attack, k)
    assert all(r.queries == len(data) for r in results)  # the Oracle's count: every pool and population record, once per policy
    # 300 non-members resolve 1% FPR but not 0.1% (`fpr_measurable`): the low-FPR claims are at 1%
    assert all(r.metrics['tpr@0.1%fpr'] is None for r in results)
    label_only = by['loss threshold', 'top-1 label only'].metrics['tpr@1%fpr']  # the label-only attack: right label, member
    for attack in ('LiRA online, global variance', 'LiRA offline, global variance'):
        assert by[attack, 'exact posteriors'].metrics['tpr@1%fpr'] > 0.75
        assert by[attack, 'top-1 label only'].metrics['tpr@1%fpr'] <= label_only + 0.01
        assert by[attack, 'rounded to 2 decimals'].metrics['tpr@1%fpr'] > 0.6  # rounding alone does not stop it
    r = by['RMIA online', 'rounded to 1 decimal']
    assert MembershipResult.from_dict(r.to_dict()) == r and r.headline.metric == 'tpr@1%fpr'


def test_the_reference_attacks_take_the_class_count_from_the_model():
    "A 3-class estimator attacked with records of two of its classes: the references (clones) answer over all three."
    from sklearn.linear_model import LogisticRegression
    from updates_leak.attacks import MembershipData
    from updates_leak.membership_lira import run_lira, run_rmia
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(300, 6, generator=g), torch.arange(300) % 3
    x[:, 0] += y
    two = (y < 2).nonzero()[:, 0]
    records = MembershipData(members=(x[two[:60]], y[two[:60]]), nonmembers=(x[two[60:120]], y[two[60:120]]), population=(x[two[120:]], y[two[120:]]))
    model = LogisticRegression(max_iter=500).fit(x.numpy(), y.numpy())
    for attack in (run_lira, run_rmia):
        r = attack(model, records, seed=0, device='cpu', progress=False)
        assert r.members == 60 and 0 <= r.metrics['auc'] <= 1
