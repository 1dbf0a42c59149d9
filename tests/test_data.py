"""Dataset loaders on the real data, their errors, and split hygiene."""
import numpy as np
import pytest
import torch

from updates_leak.data import (MissingDataError, assert_disjoint, disjoint_split, load_dataset, load_embedded_mnist,
                               load_mnist, load_table, read_idx, EMBEDDED_SIZES)

# Real data beyond the embedded subset: these read UPDATES_LEAK_DATA (see conftest.py) and fail, naming the
# missing files, when it is absent.
@pytest.mark.parametrize('name, split, n, shape, classes', [
    ('mnist', 'train', 60000, (1, 28, 28), 10), ('mnist', 'test', 10000, (1, 28, 28), 10),
    ('fashion-mnist', 'test', 10000, (1, 28, 28), 10), ('cifar10', 'test', 10000, (3, 32, 32), 10),
    ('att-faces', 'all', 400, (1, 112, 92), 40), ('location', 'all', 5010, (446,), 30),
    ('digits', 'all', 1797, (64,), 10), ('breast-cancer', 'all', 569, (30,), 2),
])
def test_real_datasets_load_in_common_form(name, split, n, shape, classes):
    d = load_dataset(name, split)
    assert len(d) == n and tuple(d.sample_shape) == shape and d.n_classes == classes
    assert d.x.dtype == torch.float32 and d.y.dtype == torch.int64
    assert 0 <= float(d.x.min()) and float(d.x.max()) <= 1
    assert set(d.y.unique().tolist()) == set(range(classes))

@pytest.mark.parametrize('name, rows, column', [('steak', 550, 'Have you ever cheated on your significant other?'),
                                                ('gss', 51020, 'watched x-rated movies in the last year'),
                                                ('adult', 32561, None)])
def test_tables(name, rows, column):
    t = load_table(name)
    assert len(t) == rows
    if column: assert column in t.columns

def test_embedded_subset_is_the_start_of_real_mnist():
    for split, n in EMBEDDED_SIZES.items():
        emb, full = load_embedded_mnist(split), load_mnist(split)
        assert torch.equal(emb.x, full.x[:n]) and torch.equal(emb.y, full.y[:n])

def test_missing_data_names_paths_and_source(tmp_path):
    with pytest.raises(MissingDataError) as e: load_dataset('cifar10', 'train', root=tmp_path)
    msg = str(e.value)
    assert str(tmp_path/'cifar-10-batches-bin'/'data_batch_1.bin') in msg and 'cs.toronto.edu' in msg
    with pytest.raises(MissingDataError, match='Looked for'): load_table('steak', root=tmp_path)

def test_unknown_names_and_splits():
    with pytest.raises(ValueError, match='unknown dataset'): load_dataset('imagenet')
    with pytest.raises(ValueError, match="'train' or 'test'"): load_dataset('mnist-embedded', 'validation')

def test_idx_round_trip_and_corruption(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    raw = bytes([0, 0, 8, 3]) + b''.join(int(s).to_bytes(4, 'big') for s in arr.shape) + arr.tobytes()
    (tmp_path/'a-idx3-ubyte').write_bytes(raw)
    assert np.array_equal(read_idx(tmp_path/'a-idx3-ubyte'), arr)
    (tmp_path/'b-idx3-ubyte').write_bytes(raw[:-1])
    with pytest.raises(ValueError, match='header says'): read_idx(tmp_path/'b-idx3-ubyte')

def test_splits_are_disjoint_seeded_and_cover():
    a = disjoint_split(1000, {'target': 300, 'shadow': 300, 'probe': 100, 'pool': None}, seed=7)
    assert_disjoint(**a)
    assert sorted(torch.cat(list(a.values())).tolist()) == list(range(1000))
    b = disjoint_split(1000, {'target': 300, 'shadow': 300, 'probe': 100, 'pool': None}, seed=7)
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = disjoint_split(1000, {'target': 300, 'shadow': 300, 'probe': 100, 'pool': None}, seed=8)
    assert not torch.equal(a['target'], c['target'])

def test_purchase_and_texas_read_the_privacytrustlab_files(tmp_path):
    (tmp_path/'purchase100').mkdir(); (tmp_path/'texas100').mkdir()
    (tmp_path/'purchase100'/'dataset_purchase').write_text('1,0,1,1\n100,1,0,0\n')  # label (1..100), then binary features
    (tmp_path/'texas100'/'feats').write_text('0,1\n1,1\n1,0\n')
    (tmp_path/'texas100'/'labels').write_text('3\n1\n100\n')
    purchase, texas = load_dataset('purchase100', 'all', root=tmp_path), load_dataset('texas100', 'all', root=tmp_path)
    assert purchase.x.tolist() == [[0, 1, 1], [1, 0, 0]] and purchase.y.tolist() == [0, 99] and purchase.n_classes == 100
    assert texas.x.shape == (3, 2) and texas.y.tolist() == [2, 0, 99]
    (tmp_path/'texas100'/'labels').write_text('3\n1\n')
    with pytest.raises(ValueError, match='3 feature rows but 2 labels'): load_dataset('texas100', 'all', root=tmp_path)
