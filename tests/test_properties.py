"""Claims that hold for all inputs, checked on many: disclosure policies, the data boundary, the query budget, the
result protocol's JSON round trip and the counter-based random stream."""
import json, math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from updates_leak.results import ATTACK_METHOD, ROW_KEYS, Result, artefact, check_rows, format_rows, metric_rows, to_json
from updates_leak.core import keyed_uniform
from updates_leak.data import as_data
from updates_leak.oracle import Disclosure, Oracle, QueryBudgetExceeded

FAST = settings(max_examples=60, deadline=None)

def posteriors(draw, n, c):
    logits = draw(arrays(np.float64, (n, c), elements=st.floats(-20, 20)))
    return torch.softmax(torch.from_numpy(logits), 1)

@st.composite
def batches(draw):
    n, c = draw(st.integers(1, 8)), draw(st.integers(2, 7))
    return posteriors(draw, n, c)

@FAST
@given(batches(), st.integers(0, 4))
def test_rounding_moves_each_confidence_by_at_most_half_a_unit(p, decimals):
    out = Disclosure(decimals=decimals).apply(p)
    assert (out - p).abs().max() <= 0.5 * 10 ** -decimals + 1e-12

@FAST
@given(batches(), st.integers(1, 9))
def test_top_k_keeps_the_k_largest_and_the_label(p, k):
    out = Disclosure('top-k', top_k=k).apply(p)
    assert ((out > 0).sum(1) <= min(k, p.shape[1])).all()
    assert torch.equal(out.argmax(1), p.argmax(1))

@FAST
@given(batches())
def test_a_label_is_the_argmax_and_its_vector_is_one_hot(p):
    labels, vectors = Disclosure('label').apply(p), Disclosure('label').as_vectors(p[None])[0]
    assert torch.equal(labels, p.argmax(1)) and torch.equal(vectors.argmax(1), labels) and torch.equal(vectors.sum(1), torch.ones(len(p), dtype=p.dtype))

@FAST
@given(batches(), st.floats(1e-4, 1.), st.integers(0, 2**31 - 1))
def test_noisy_answers_stay_distributions(p, noise, seed):
    out = Disclosure(noise_std=noise).apply(p, torch.Generator().manual_seed(seed))
    assert (out >= 0).all() and torch.allclose(out.sum(1), torch.ones(len(p), dtype=p.dtype))

@FAST
@given(st.integers(1, 30), st.integers(1, 6), st.integers(1, 9), st.data())
def test_as_data_keeps_values_and_counts_classes(n, d, classes, data):
    x = data.draw(arrays(np.float32, (n, d), elements=st.floats(-1e3, 1e3, width=32)))
    y = data.draw(arrays(np.int64, n, elements=st.integers(0, classes - 1)))
    for given_as in ((x, y), (torch.from_numpy(x), torch.from_numpy(y)), torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))):
        out = as_data(given_as)
        assert torch.equal(out.x, torch.from_numpy(x)) and out.y.tolist() == y.tolist() and out.n_classes == int(y.max()) + 1

@FAST
@given(st.integers(1, 20), st.integers(0, 3))
def test_non_finite_inputs_never_become_data(n, where):
    x = np.zeros((n, 3), np.float32); x[min(where, n - 1), where % 3] = np.nan
    with pytest.raises(ValueError, match='NaN'): as_data((x, np.zeros(n, int)))

@FAST
@given(st.integers(0, 40), st.lists(st.integers(1, 15), max_size=8))
def test_the_budget_is_never_exceeded_and_refusals_cost_nothing(budget, sizes):
    api = Oracle(lambda x: torch.full((len(x), 2), 0.5), (3,), budget=budget)
    spent = 0
    for n in sizes:
        try: api(torch.rand(n, 3)); spent += n
        except QueryBudgetExceeded: pass
        assert api.queries == spent <= budget

@dataclass
class _Numbers(Result):
    name: str
    values: list
    best: float
    nested: dict
    model: object = artefact()
    def rows(self): return metric_rows('test', self.name, metric='best', values={ATTACK_METHOD: self.best, 'others': sum(self.values)})

finite = st.floats(-1e9, 1e9, allow_nan=False)
label = st.text(st.characters(blacklist_categories=('Cc', 'Cs')), max_size=10)  # printable: a table keeps one line per row

@FAST
@given(label, st.lists(finite, max_size=5), st.one_of(finite, st.just(float('nan'))),
       st.dictionaries(st.text(max_size=5), st.lists(st.integers(), max_size=3), max_size=3))
def test_results_round_trip_through_json(name, values, best, nested):
    r = _Numbers(name, values, best, nested, model=torch.nn.Linear(2, 2))
    d = r.to_dict()
    assert 'model' not in d and json.loads(json.dumps(d, allow_nan=False)) == d
    assert _Numbers.from_dict(json.loads(json.dumps(d))).to_dict() == d
    rows = check_rows(r.rows())
    assert all(tuple(row) == ROW_KEYS for row in rows) and len(rows) == (1 if math.isnan(best) else 2)
    assert format_rows(rows).count('\n') == 2

@FAST
@given(st.recursive(st.none() | st.booleans() | finite | st.text(max_size=4),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3), max_leaves=10))
def test_to_json_is_idempotent_on_json_values(value):
    assert to_json(to_json(value)) == to_json(value) and json.loads(json.dumps(to_json(value))) == to_json(value)

@FAST
@given(st.binary(max_size=600))
def test_any_bytes_in_an_npz_path_are_read_or_refused_cleanly(tmp_path_factory, raw):
    from updates_leak.data import read_npz
    path = tmp_path_factory.mktemp('npz')/'data.npz'
    path.write_bytes(raw)
    with pytest.raises(ValueError) as e: read_npz(path, ('x',))
    assert 'allow_pickle' not in str(e.value) and str(path) in str(e.value)

@FAST
@given(st.lists(st.integers(0, 2**31 - 1), min_size=1, max_size=12, unique=True), st.integers(0, 2**32 - 1),
       st.tuples(st.integers(1, 5), st.integers(1, 7)), st.data())
def test_a_keyed_stream_is_the_same_alone_or_among_others(keys, counter, shape, data):
    "Copy k's numbers depend on its key, the counter and the position only: drawing it alone (as its own update does) gives the same."
    every = keyed_uniform(torch.tensor(keys), counter, shape=shape)
    k = data.draw(st.integers(0, len(keys) - 1))
    assert torch.equal(keyed_uniform(torch.tensor([keys[k]]), counter, shape=shape)[0], every[k])
    assert every.shape == (len(keys), *shape) and every.min() >= 0 and every.max() < 1

@pytest.mark.parametrize('bad', [torch.tensor([0.5]), torch.tensor([[1, 2]])])
def test_keyed_stream_refuses_keys_that_are_not_integers_in_a_row(bad):
    with pytest.raises(TypeError, match='1-d integer'): keyed_uniform(bad, 0, shape=(2,))

def test_keyed_stream_refuses_a_counter_outside_32_bits():
    for counter in (-1, 2**32):
        with pytest.raises(ValueError, match='counter'): keyed_uniform(torch.tensor([1]), counter, shape=(2,))
