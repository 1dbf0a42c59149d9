"""Updates-Leak machinery: exact batched updates, the resumable cache, the CLI and its errors."""
import json, subprocess

import pytest
import torch

from updates_leak.core import set_seed, torch_threads
from updates_leak.data import Data
from updates_leak.models import CifarCNN, MnistCNN, MLP
from updates_leak.updates import (UpdateConfig, Updates, check_compatible, generate_updates, loop_updates, make_setting,
                                  sample_updating_sets, stacked_updates, update_seeds)

@pytest.fixture(scope='module')
def setting(): return make_setting('mnist-embedded', 'quick')

@pytest.mark.parametrize('config', [UpdateConfig(), UpdateConfig(epochs=2, batch_size=16, lr=0.01)])
@pytest.mark.parametrize('n', [1, 37])
def test_stacked_equals_loop_mnist_cnn(setting, config, n):
    set_seed(0); model = MnistCNN()
    sets, seeds = sample_updating_sets(len(setting.shadow_pool), 6, set_size=n, seed=n), update_seeds(6, seed=n)
    a = stacked_updates(model, setting.shadow_pool, sets=sets, seeds=seeds, probe=setting.probe.x, config=config, device='cpu')
    b = loop_updates(model, setting.shadow_pool, sets=sets, seeds=seeds, probe=setting.probe.x, config=config, device='cpu')
    assert (a - b).abs().max() <= 1e-5

def test_stacked_equals_loop_cifar_cnn_and_vmap_fallback():
    set_seed(0)
    pool = Data(torch.rand(50, 3, 32, 32), torch.randint(0, 10, (50,)), classes=[str(i) for i in range(10)])
    probe = torch.rand(7, 3, 32, 32)
    sets, seeds = sample_updating_sets(50, 4, set_size=20, seed=1), update_seeds(4, seed=1)
    for model in (CifarCNN(), MLP([3 * 32 * 32, 16, 10])):  # the MLP has no stacked_forward: vmap fallback
        a = stacked_updates(model, pool, sets=sets, seeds=seeds, probe=probe, device='cpu')
        b = loop_updates(model, pool, sets=sets, seeds=seeds, probe=probe, device='cpu')
        assert (a - b).abs().max() <= 1e-5

def test_implicit_dropout_is_refused():
    pool = Data(torch.rand(10, 4), torch.randint(0, 2, (10,)), classes=['a', 'b'])
    with pytest.raises(ValueError, match=r'`dropout_masks\(keys, step, n\)` method'):
        stacked_updates(MLP([4, 8, 2], dropout=0.5), pool, sets=sample_updating_sets(10, 2, set_size=3), seeds=update_seeds(2), probe=torch.rand(3, 4), device='cpu')

def test_parallel_generator_equals_in_process_and_cache_resumes(setting, tmp_path):
    set_seed(0); model = MnistCNN()
    sets = sample_updating_sets(len(setting.shadow_pool), 60, set_size=5, seed=2)
    kw = dict(probe=setting.probe.x, seed=3, chunk=20, device='cpu', progress=False)
    ref = generate_updates(model, setting.shadow_pool, sets=sets, workers=0, **kw)
    par = generate_updates(model, setting.shadow_pool, sets=sets, workers=2, cache_dir=tmp_path, **kw)
    assert torch.equal(ref.after, par.after)
    chunks = sorted(tmp_path.glob('updates-*/chunk_*.safetensors'))
    assert len(chunks) == 3
    chunks[1].unlink()  # an interrupted run: one chunk missing
    mtimes = {c: c.stat().st_mtime_ns for c in (chunks[0], chunks[2])}
    resumed = generate_updates(model, setting.shadow_pool, sets=sets, workers=2, cache_dir=tmp_path, **kw)
    assert torch.equal(resumed.after, ref.after) and chunks[1].exists()
    assert all(c.stat().st_mtime_ns == t for c, t in mtimes.items()), 'finished chunks must not be recomputed'
    other = generate_updates(model, setting.shadow_pool, sets=sets, workers=0, cache_dir=tmp_path, **{**kw, 'seed': 4})
    assert not torch.equal(other.after, ref.after) and len(list(tmp_path.glob('updates-*'))) == 2

def updates_at_threads(model, pool, sets, threads, **kw) -> torch.Tensor:
    with torch_threads(threads): return generate_updates(model, pool, sets=sets, workers=0, **kw).after

def test_updates_do_not_depend_on_how_the_chunks_were_laid_out(setting, tmp_path):
    "Some updates sum gradients in another order at two threads than at one: a lone chunk of a run over workers runs at one thread."
    set_seed(0); model = MnistCNN()
    sets = sample_updating_sets(len(setting.shadow_pool), 3, set_size=100, seed=2)
    base = dict(probe=setting.probe.x, seed=3, group=1, device='cpu', progress=False)
    # which updates two threads change depends on the CPU: the first of these that they change here
    candidates = [dict(base, config=c) for c in (UpdateConfig(), UpdateConfig(epochs=2, batch_size=16, lr=0.01))]
    kw = next((k for k in candidates if not torch.equal(*(updates_at_threads(model, setting.shadow_pool, sets, t, **k) for t in (1, 2)))), None)
    assert kw is not None, 'the test needs a case that two threads change, and none of its candidates is one on this CPU'
    with torch_threads(2):
        lone = generate_updates(model, setting.shadow_pool, sets=sets, workers=2, cache_dir=tmp_path, **kw)  # one chunk, computed here
        spread = generate_updates(model, setting.shadow_pool, sets=sets, workers=2, chunk=1, **kw)  # three chunks, in worker processes
        two_threads = generate_updates(model, setting.shadow_pool, sets=sets, workers=0, cache_dir=tmp_path, **kw)
        assert torch.get_num_threads() == 2
    assert torch.equal(lone.after, spread.after)
    assert not torch.equal(two_threads.after, lone.after)
    assert len(list(tmp_path.glob('updates-*'))) == 2, 'an in-process run at two threads must not be served the one-thread cache'
    with torch_threads(1): one_thread = generate_updates(model, setting.shadow_pool, sets=sets, workers=0, cache_dir=tmp_path, **kw)
    assert torch.equal(one_thread.after, lone.after) and len(list(tmp_path.glob('updates-*'))) == 2

def test_bad_updating_sets_and_probes(setting):
    with pytest.raises(ValueError, match='at least one sample'): sample_updating_sets(100, 3, set_size=0)
    with pytest.raises(ValueError, match='exceeds the pool'): sample_updating_sets(10, 3, set_size=11)
    with pytest.raises(ValueError, match='n ≥ 1'):
        generate_updates(MnistCNN(), setting.shadow_pool, sets=torch.empty(2, 0, dtype=torch.long), probe=setting.probe.x, progress=False)
    u = Updates(torch.rand(100, 10), torch.rand(4, 100, 10), sets=torch.zeros(4, 1, dtype=torch.long), labels=torch.zeros(4, 1, dtype=torch.long))
    v = Updates(torch.rand(50, 10), torch.rand(4, 50, 10), sets=u.sets, labels=u.labels)
    with pytest.raises(ValueError, match='different probing sets'): check_compatible(u, v)
    with pytest.raises(ValueError, match='sign must be'): u.delta('up')


@pytest.fixture(scope='module')
def tiny_experiments():
    "Single-sample and ten-sample experiments at a size that trains in seconds."
    from updates_leak.updates import Scale, prepare_experiment
    scale = Scale(n_train=300, target_pool=300, epochs=1, lr=1e-2, n_shadow_updates=20, n_target_updates=10)
    return {n: prepare_experiment('mnist-embedded', scale, set_size=n, device='cpu', progress=False) for n in (1, 10)}

def test_label_attacks_refuse_updates_they_cannot_read(tiny_experiments):
    from updates_leak.updates import prepare_experiment
    from updates_leak.updates_lde import LabelDistributionAttack, residual_ceiling
    from updates_leak.updates_li import LabelInferenceAttack
    single, many = tiny_experiments[1], tiny_experiments[10]
    t = single.target_updates
    attack = LabelInferenceAttack(1000, 10).fit(single.shadow_updates, epochs=1)
    with pytest.raises(ValueError, match='reads δ of 1000 values'): attack.predict(t.delta()[:, :990])
    with pytest.raises(ValueError, match='single-sample'):
        LabelInferenceAttack(1000, 10).fit([Updates(t.before, t.after, sets=t.sets.repeat(1, 2), labels=t.labels.repeat(1, 2))])
    with pytest.raises(ValueError, match='at least 1'): prepare_experiment(set_size=0)
    distribution = LabelDistributionAttack(1000, 10).fit(many.shadow_updates[:1], epochs=1)
    with pytest.raises(ValueError, match='reads δ of 1000 values'): distribution.predict(torch.zeros(2, 500))
    with pytest.raises(ValueError, match='NaN'): distribution.predict(torch.full((1, 1000), float('nan')))
    with pytest.raises(ValueError, match='n_test < n_sets'): residual_ceiling(many.shadows[0], many.setting.shadow_pool, set_size=10, n_sets=10, n_test=10)

def test_experiments_are_reproducible():
    from updates_leak.updates import Scale, prepare_experiment
    from updates_leak.updates_lde import evaluate_label_distribution
    tiny = Scale(n_train=300, target_pool=300, epochs=1, lr=0.01, n_shadow_updates=40, n_target_updates=10)
    runs = [prepare_experiment('mnist-embedded', tiny, set_size=5, n_shadow_models=2, seed=7, device='cpu', progress=False) for _ in range(2)]
    assert torch.equal(runs[0].target_updates.after, runs[1].target_updates.after)
    assert all(torch.equal(a.after, b.after) for a, b in zip(runs[0].shadow_updates, runs[1].shadow_updates))
    res = [evaluate_label_distribution(e, n_attack_models=1, device='cpu').to_dict() for e in runs]
    assert res[0] == res[1]

def test_cli_lde_quick_and_bench(tmp_path):
    r = subprocess.run(['updates-leak', 'updates', '--attack', 'lde', '--dataset', 'mnist-embedded', '--quick', '--n_attack_models', '1',
                        '--out', str(tmp_path), '--cache', str(tmp_path/'cache')], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path/'updates_lde_mnist-embedded_n_attack_models-1_quick.json').read_text())
    assert res['kl'][0] < res['kl_random'] and res['command'].startswith('updates-leak updates')
    assert (tmp_path/'updates_lde_mnist-embedded_n_attack_models-1_quick.png').exists() and 'KL, authors' in r.stdout
    assert res['rows'][0] == {'attack': 'A_LDE', 'target': 'mnist-embedded', 'setting': '|D|=100', 'metric': 'KL, summed',
                              'method': 'this library', 'value': res['kl'][0]}
    d = subprocess.run(['updates-leak', 'updates', '--attack', 'lde', '--dataset', 'mnist-embedded', '--quick', '--n_attack_models', '1',
                        '--defence', 'top1', '--out', str(tmp_path), '--cache', str(tmp_path/'cache')], capture_output=True, text=True)
    assert d.returncode == 0, d.stderr[-3000:]  # the cached updates are reused; only the attack is retrained behind the defence
    defended = json.loads((tmp_path/'updates_lde_mnist-embedded_defence-top1_n_attack_models-1_quick.json').read_text())
    assert defended['run']['options']['defence'] == 'top1' and defended['kl'] != res['kl']
    lr = subprocess.run(['updates-leak', 'updates', '--attack', 'lde', '--dataset', 'mnist-embedded', '--quick', '--n_attack_models', '1',
                         '--inputs', 'log-ratio', '--out', str(tmp_path), '--cache', str(tmp_path/'cache')], capture_output=True, text=True)
    assert lr.returncode == 0, lr.stderr[-3000:]
    ratio = json.loads((tmp_path/'updates_lde_mnist-embedded_inputs-log-ratio_n_attack_models-1_quick.json').read_text())
    assert ratio['inputs'] == 'log-ratio' and 'A_LDE (log-ratio)' in lr.stdout and ratio['kl'][0] < ratio['kl_prior']
    b = subprocess.run(['updates-leak', 'bench', 'shadow-updates', '--n_updates', '20', '--set_size', '1', '--out', str(tmp_path)], capture_output=True, text=True)
    assert b.returncode == 0, b.stderr[-3000:]
    assert 'ratio' in b.stdout and 'max |δ difference|' in b.stdout
    bench = json.loads((tmp_path/'bench_shadow_updates.json').read_text())['rows']
    assert bench[1]['max |δ difference|'] <= 1e-5 and bench[1]['ratio'] > 0
    bad = subprocess.run(['updates-leak', 'updates', '--attack', 'xyz', '--quick', '--dataset', 'mnist-embedded'], capture_output=True, text=True)
    assert bad.returncode == 2 and "invalid choice: 'xyz'" in bad.stderr
    bad = subprocess.run(['updates-leak', 'updates', '--defence', 'encryption', '--quick', '--dataset', 'mnist-embedded'], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown defence 'encryption'" in bad.stderr and 'round2' in bad.stderr
    bad = subprocess.run(['updates-leak', 'updates', '--attack', 'lde', '--inputs', 'logits', '--quick', '--dataset', 'mnist-embedded'], capture_output=True, text=True)
    assert bad.returncode == 2 and "inputs must be 'delta' or 'log-ratio', got 'logits'" in bad.stderr
    bad = subprocess.run(['updates-leak', 'updates', '--attack', 'li', '--inputs', 'log-ratio', '--quick', '--dataset', 'mnist-embedded',
                          '--out', str(tmp_path)], capture_output=True, text=True)
    assert bad.returncode == 2 and '--inputs: not an option of --attack li' in bad.stderr and 'Traceback' not in bad.stderr


def test_the_ray_generator_equals_the_local_one_and_shares_its_cache(setting, tmp_path):
    "Chunks computed as tasks of a local Ray instance equal the local chunks; a local run resumes from the Ray run's cache."
    ray = pytest.importorskip('ray')
    set_seed(0); model = MnistCNN()
    sets = sample_updating_sets(len(setting.shadow_pool), 40, set_size=5, seed=2)
    kw = dict(probe=setting.probe.x, seed=3, chunk=20, device='cpu', progress=False)
    local = generate_updates(model, setting.shadow_pool, sets=sets, workers=2, cache_dir=tmp_path/'local', **kw)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    try: remote = generate_updates(model, setting.shadow_pool, sets=sets, cache_dir=tmp_path/'ray', backend='ray', **kw)
    finally: ray.shutdown()
    assert torch.equal(local.after, remote.after) and torch.equal(local.before, remote.before)
    names = lambda d: sorted(str(p.relative_to(d)) for p in d.glob('updates-*/chunk_*.safetensors'))
    assert names(tmp_path/'local') == names(tmp_path/'ray') and len(names(tmp_path/'ray')) == 2
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path/'ray').glob('updates-*/chunk_*.safetensors')}
    resumed = generate_updates(model, setting.shadow_pool, sets=sets, workers=2, cache_dir=tmp_path/'ray', **kw)
    assert torch.equal(resumed.after, remote.after) and all(p.stat().st_mtime_ns == t for p, t in mtimes.items())
    with pytest.raises(ValueError, match="unknown backend 'spark'"): generate_updates(model, setting.shadow_pool, sets=sets, backend='spark', **kw)

def test_a_model_cached_at_one_thread_count_is_not_served_at_another(tmp_path):
    "Two intra-op threads sum in another order than one, so the thread count is part of a CPU-trained model's cache key: a cache hit is always what a fresh run would train."
    from updates_leak.core import torch_threads
    from updates_leak.updates import Scale, train_model
    tiny = make_setting('mnist-embedded', Scale(n_train=300, target_pool=300, epochs=2, lr=0.01, n_shadow_updates=20, n_target_updates=10))
    def weights(threads, cache_dir=None):
        with torch_threads(threads): return list(train_model(tiny, 'target', seed=0, device='cpu', progress=False, cache_dir=cache_dir).state_dict().values())
    first = {n: weights(n, tmp_path) for n in (1, 2)}
    assert len(list(tmp_path.glob('model-*.safetensors'))) == 2  # one file per thread count
    for n in (1, 2):
        fresh = weights(n)
        assert all(torch.equal(a, b) for a, b in zip(first[n], fresh)) and all(torch.equal(a, b) for a, b in zip(weights(n, tmp_path), fresh))
