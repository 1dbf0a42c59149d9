"""Caches that cannot lie (every kind of damage detected, reported with its path, recomputed or refused), two
processes on one cache folder, and stacked updates equal to the one-at-a-time loop for every layer type."""
import multiprocessing as mp, shutil, warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from safetensors.torch import load_file, save_file

from updates_leak.cache import CacheDamaged, load_verified, save_verified
from updates_leak.core import keyed_uniform, set_seed
from updates_leak.data import Data, read_npz
from updates_leak.updates import UpdateConfig, generate_updates, loop_updates, sample_updating_sets, stacked_updates, update_seeds
from updates_leak.updates_msr import CBMGenerator, ImageDiscriminator, train_cbm_gan

# --- the kinds of damage ----------------------------------------------------------------------------------------------
def flip_bytes(path):
    raw = bytearray(path.read_bytes())
    for i in range(len(raw) - 200, len(raw) - 100): raw[i] ^= 0xA5
    path.write_bytes(bytes(raw))

def rewrite(path, change):
    "Rewrite a safetensors file with its metadata kept (what a careless tool, or a bad disk, might leave)."
    from safetensors import safe_open
    with safe_open(str(path), 'pt') as f: meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    save_file(change(tensors), str(path), metadata=meta)

def _spoil(v):
    "One value changed: NaN in a float tensor, the next integer in an integer one (a serialised state)."
    v = v.clone().reshape(-1)
    v[0] = float('nan') if v.is_floating_point() else v[0] + 1
    return v
def set_nan(path): rewrite(path, lambda t: {k: (_spoil(v).reshape(t[k].shape) if i == 0 else v) for i, (k, v) in enumerate(t.items())})
def wrong_shape(path): rewrite(path, lambda t: {k: (v[:1] if v.dim() and len(v) > 1 else v) for k, v in t.items()})
def wrong_key(path): rewrite(path, lambda t: {f'other.{k}': v for k, v in t.items()})
def truncate(path): path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
def empty(path): path.write_bytes(b'')
def header_only(path): path.write_bytes(path.read_bytes()[:8])

DAMAGE = {'flipped bytes': flip_bytes, 'NaN': set_nan, 'wrong shape': wrong_shape, 'wrong key': wrong_key,
          'truncated': truncate, 'empty': empty, 'header only': header_only}

# --- update chunks: detected, reported with the path, recomputed ---------------------------------------------------------
@pytest.fixture(scope='module')
def toy():
    set_seed(0)
    pool = Data(torch.rand(80, 6), torch.randint(0, 3, (80,)))
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    return model, pool, sample_updating_sets(80, 30, set_size=4, seed=1), torch.rand(5, 6)

def run(toy, cache, **kw):
    model, pool, sets, probe = toy
    return generate_updates(model, pool, sets=sets, probe=probe, seed=2, chunk=10, workers=0, cache_dir=cache, device='cpu', progress=False, **kw)

@pytest.mark.parametrize('damage', [*DAMAGE, 'another chunk copied over it'])
def test_a_damaged_update_chunk_is_reported_and_recomputed(toy, tmp_path, damage):
    clean = run(toy, tmp_path).after
    chunks = sorted(tmp_path.glob('updates-*/chunk_*.safetensors'))
    assert len(chunks) == 3
    if damage == 'another chunk copied over it': shutil.copy(chunks[0], chunks[1])
    else: DAMAGE[damage](chunks[1])
    with pytest.warns(UserWarning, match=str(chunks[1]).replace('.', r'\.')) as record:
        again = run(toy, tmp_path).after
    assert torch.equal(again, clean), 'the damaged chunk must be recomputed, never used'
    assert 'recomputing' in str(record[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert torch.equal(run(toy, tmp_path).after, clean)  # repaired on disk: read back silently

def test_chunks_from_an_older_version_are_recomputed(toy, tmp_path):
    clean = run(toy, tmp_path).after
    chunk = sorted(tmp_path.glob('updates-*/chunk_*.safetensors'))[0]
    save_file({'after': load_file(str(chunk))['after']}, str(chunk))  # no digest, no identity
    with pytest.warns(UserWarning, match='carries no digest'): assert torch.equal(run(toy, tmp_path).after, clean)

def _generate_into(args):
    cache, seed = args
    torch.set_num_threads(1)
    set_seed(0)
    pool = Data(torch.rand(80, 6), torch.randint(0, 3, (80,)))
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    out = generate_updates(model, pool, sets=sample_updating_sets(80, 60, set_size=4, seed=1), probe=torch.rand(5, 6), seed=seed, chunk=5, workers=0,
                           cache_dir=cache, device='cpu', progress=False)
    return out.after

def test_two_processes_share_one_cache_folder(tmp_path):
    with mp.get_context('spawn').Pool(2) as pool:
        a, b = pool.map(_generate_into, [(str(tmp_path), 2), (str(tmp_path), 2)])
    alone = _generate_into((str(tmp_path/'alone'), 2))
    assert torch.equal(a, b) and torch.equal(a, alone)
    assert len(list(tmp_path.glob('updates-*/chunk_*.safetensors'))) == 12 and not list(tmp_path.glob('updates-*/*.tmp'))

# --- GAN checkpoints: detected, reported with the path, refused ----------------------------------------------------------
def tiny_gan(tmp_path, epochs=2):
    torch.manual_seed(0)
    pool = Data(torch.rand(30, 1, 4, 4), torch.randint(0, 3, (30,)))
    sets, delta = torch.randint(0, 30, (6, 3)), torch.randn(6, 12)
    gen, disc = CBMGenerator((1, 4, 4), 12, hidden=(8,)), ImageDiscriminator((1, 4, 4), hidden=(8, 4))
    train_cbm_gan(gen, disc, pool=pool, sets=sets, delta=delta, epochs=epochs, sets_per_step=2, progress=False, checkpoint_dir=tmp_path)
    return gen

@pytest.mark.parametrize('damage', DAMAGE)
@pytest.mark.parametrize('part', ['epoch', 'state'])
def test_a_damaged_gan_checkpoint_is_refused_with_its_path(tmp_path, damage, part):
    tiny_gan(tmp_path)
    folder = next(tmp_path.glob('gan-*'))
    path = folder/('epoch-002.safetensors' if part == 'epoch' else 'state.safetensors')
    DAMAGE[damage](path)
    with pytest.raises(CacheDamaged, match=str(path).replace('.', r'\.')) as e: tiny_gan(tmp_path)
    assert 'delete' in str(e.value)

def test_a_swapped_gan_epoch_is_refused(tmp_path):
    tiny_gan(tmp_path)
    folder = next(tmp_path.glob('gan-*'))
    shutil.copy(folder/'epoch-001.safetensors', folder/'epoch-002.safetensors')
    with pytest.raises(CacheDamaged, match='another run or part'): tiny_gan(tmp_path)

def _train_gan_into(folder):
    torch.set_num_threads(1)
    return {k: v.clone() for k, v in tiny_gan(Path(folder), epochs=3).state_dict().items()}

def test_two_gan_runs_share_one_checkpoint_folder(tmp_path):
    with mp.get_context('spawn').Pool(2) as pool: a, b = pool.map(_train_gan_into, [str(tmp_path)] * 2)
    alone = _train_gan_into(str(tmp_path/'alone'))
    assert all(torch.equal(a[k], b[k]) and torch.equal(a[k], alone[k]) for k in a)

# --- verified files: any change is caught ----------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 7))
def test_any_single_flipped_bit_is_caught(tmp_path_factory, offset, bit):
    path = tmp_path_factory.mktemp('v')/'f.safetensors'
    save_verified(path, {'a': torch.arange(64, dtype=torch.float32), 'b': torch.ones(3, 3)}, identity={'run': 'x'})
    raw = bytearray(path.read_bytes())
    raw[offset % len(raw)] ^= 1 << bit
    path.write_bytes(bytes(raw))
    try: out = load_verified(path, {'run': 'x'})
    except CacheDamaged: return
    assert torch.equal(out['a'], torch.arange(64, dtype=torch.float32)) and torch.equal(out['b'], torch.ones(3, 3))  # a flip in padding changes nothing read

def test_npz_files_are_read_without_pickle(tmp_path):
    np.savez(tmp_path/'objects.npz', x=np.array([{'a': 1}], dtype=object))
    with pytest.raises(ValueError, match='does not load pickled data'): read_npz(tmp_path/'objects.npz', ('x',))
    (tmp_path/'garbage.npz').write_bytes(b'not a zip archive')
    with pytest.raises(ValueError, match='not a readable .npz archive') as e: read_npz(tmp_path/'garbage.npz', ('x',))
    assert 'allow_pickle' not in str(e.value)

# --- exact updates for every layer type ------------------------------------------------------------------------------------
class MaskedDropout(nn.Module):
    "Dropout with explicit masks, as `stacked_updates` needs."
    def __init__(self, d=16, h=12, c=3):
        super().__init__(); self.hidden, self.out, self.h = nn.Linear(d, h), nn.Linear(h, c), h
    def dropout_masks(self, keys, step, n): return [(keyed_uniform(keys, step, shape=(n, self.h)) >= 0.5) * 2.]
    def forward(self, x, masks=None):
        h = F.relu(self.hidden(x.flatten(1)))
        return self.out(h * masks[0] if masks is not None else F.dropout(h, 0.5, self.training))

LAYERS = {
    'BatchNorm1d': lambda: nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.BatchNorm1d(12), nn.ReLU(), nn.Linear(12, 3)),
    'BatchNorm2d': lambda: nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(64, 3)),
    'BatchNorm, no running statistics': lambda: nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.BatchNorm1d(12, track_running_stats=False), nn.Linear(12, 3)),
    'LayerNorm': lambda: nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.LayerNorm(12), nn.ReLU(), nn.Linear(12, 3)),
    'GroupNorm': lambda: nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.GroupNorm(2, 4), nn.ReLU(), nn.Flatten(), nn.Linear(64, 3)),
    'explicit dropout masks': MaskedDropout,
    'Dropout(p=0)': lambda: nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.Dropout(0.), nn.ReLU(), nn.Linear(12, 3)),
}
POOL = Data(torch.rand(60, 1, 4, 4), torch.randint(0, 3, (60,)))

@pytest.mark.parametrize('layer', LAYERS)
@pytest.mark.parametrize('config', [UpdateConfig(lr=0.1, batch_size=5, epochs=2), UpdateConfig(lr=0.05, batch_size=64, momentum=0.)], ids=['two-batches', 'one-batch'])
def test_stacked_updates_equal_the_loop(layer, config):
    torch.manual_seed(1)
    model = LAYERS[layer]()
    sets, seeds = sample_updating_sets(60, 6, set_size=10, seed=2), update_seeds(6, seed=2)
    a = stacked_updates(model, POOL, sets=sets, seeds=seeds, probe=POOL.x[:7], config=config, device='cpu')
    b = loop_updates(model, POOL, sets=sets, seeds=seeds, probe=POOL.x[:7], config=config, device='cpu')
    assert (a - b).abs().max() <= 1e-5

def test_implicit_dropout_runs_one_at_a_time_and_exactly():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Dropout(0.5), nn.Linear(12, 3))
    sets = sample_updating_sets(60, 6, set_size=10, seed=2)
    with pytest.raises(ValueError, match='dropout_masks'): stacked_updates(model, POOL, sets=sets, seeds=update_seeds(6, seed=2), probe=POOL.x[:7], device='cpu')
    with pytest.warns(UserWarning, match='one at a time'):
        fast = generate_updates(model, POOL, sets=sets, probe=POOL.x[:7], seed=3, workers=0, device='cpu', progress=False)
    assert torch.equal(fast.after, loop_updates(model, POOL, sets=sets, seeds=update_seeds(6, seed=3), probe=POOL.x[:7], device='cpu'))

def test_batch_norm_refuses_what_it_cannot_do():
    model = LAYERS['BatchNorm1d']()
    with pytest.raises(ValueError, match='batch of one'):
        stacked_updates(model, POOL, sets=sample_updating_sets(60, 2, set_size=1), seeds=update_seeds(2), probe=POOL.x[:3], device='cpu')
    with pytest.raises(ValueError, match='GroupNorm or LayerNorm'):
        stacked_updates(model, POOL, sets=sample_updating_sets(60, 2, set_size=5), seeds=update_seeds(2), probe=POOL.x[:3], config=UpdateConfig(clip_norm=1.), device='cpu')

@settings(max_examples=15, deadline=None)
@given(st.sampled_from(sorted(LAYERS)), st.integers(2, 9), st.integers(1, 5), st.integers(1, 3), st.integers(0, 10 ** 6))
def test_stacked_equals_loop_for_random_sets(layer, set_size, batch_size, k, seed):
    """The same computation, to rounding: in float64 the two agree to 1e-9 for any sets and batch sizes. (In float32, batch norm
    on batches of two or three divides by a tiny spread and amplifies rounding past 1e-5; the tests above use typical batches.)"""
    if layer.startswith('BatchNorm') and min(set_size, batch_size, set_size % batch_size or batch_size) == 1: return  # refused, as tested above
    torch.manual_seed(seed)
    model = LAYERS[layer]().double()
    sets, seeds = sample_updating_sets(60, k, set_size=set_size, seed=seed), update_seeds(k, seed=seed)
    config = UpdateConfig(lr=0.1, batch_size=batch_size)
    a = stacked_updates(model, POOL, sets=sets, seeds=seeds, probe=POOL.x[:4], config=config, device='cpu')
    b = loop_updates(model, POOL, sets=sets, seeds=seeds, probe=POOL.x[:4], config=config, device='cpu')
    assert (a - b).abs().max() <= 1e-9
