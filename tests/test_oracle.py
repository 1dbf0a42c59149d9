"""The oracle's contract: strict input checks, an exact budget, disclosure policies, versions."""
import numpy as np
import pytest
import torch

from updates_leak.models import SoftmaxRegression
from updates_leak.oracle import Oracle, OracleInputError, QueryBudgetExceeded
from updates_leak.data import Data

@pytest.fixture
def api():
    torch.manual_seed(0)
    return Oracle(SoftmaxRegression(4, 3), (4,), budget=10, device='cpu')

def test_answers_are_distributions(api):
    p = api(torch.rand(5, 4))
    assert p.shape == (5, 3) and torch.allclose(p.sum(1), torch.ones(5))
    assert api.queries == 5 and api.remaining == 5

def test_budget_refuses_whole_batch_and_counts_nothing(api):
    api(torch.rand(8, 4))
    with pytest.raises(QueryBudgetExceeded, match='needs 3 queries but only 2'):
        api(torch.rand(3, 4))
    assert api.queries == 8
    api(torch.rand(2, 4))
    assert api.remaining == 0

@pytest.mark.parametrize('bad, msg', [
    (torch.rand(4), 'batch of one'),
    (torch.rand(2, 5), r'shape \(N, 4\)'),
    (torch.rand(2, 1, 4), r'shape \(N, 4\)'),
    (torch.tensor([[0.1, float('inf'), 0.2, 0.3]]), 'NaN or infinite'),
    (torch.tensor([[0.1, 2.0, 0.2, 0.3]]), r'must lie in \[0.0, 1.0\]'),
    (np.array([['a', 'b', 'c', 'd']]), 'numeric'),
])
def test_bad_queries_are_rejected_without_cost(api, bad, msg):
    with pytest.raises(OracleInputError, match=msg): api(bad)
    assert api.queries == 0

def test_numpy_queries_accepted(api):
    assert api(np.random.rand(2, 4)).shape == (2, 3)

def test_rounding_topk_label_noise():
    torch.manual_seed(0)
    m = SoftmaxRegression(4, 5)
    x = torch.rand(6, 4)
    exact = Oracle(m, (4,), device='cpu')(x)
    r = Oracle(m, (4,), decimals=2, device='cpu')(x)
    assert torch.equal(r, r.round(decimals=2)) and (r - exact).abs().max() <= 0.005 + 1e-7
    t = Oracle(m, (4,), output='top-k', top_k=2, device='cpu')(x)
    assert ((t > 0).sum(1) == 2).all() and torch.equal(t.argmax(1), exact.argmax(1))
    assert torch.equal(Oracle(m, (4,), output='label', device='cpu')(x), exact.argmax(1))
    n1 = Oracle(m, (4,), noise_std=0.1, seed=3, device='cpu')(x)
    n2 = Oracle(m, (4,), noise_std=0.1, seed=3, device='cpu')(x)
    assert torch.equal(n1, n2) and not torch.allclose(n1, exact) and torch.allclose(n1.sum(1), torch.ones(6))

def test_versions_and_update():
    torch.manual_seed(0)
    api = Oracle(SoftmaxRegression(4, 3), (4,), device='cpu')
    x = torch.rand(3, 4)
    before = api(x)
    d = Data(torch.rand(20, 4), torch.randint(0, 3, (20,)), classes=['a', 'b', 'c'])
    assert api.update(d, lr=0.5, seed=0) == 1 and api.n_versions == 2
    assert not torch.allclose(api(x), before)
    assert torch.allclose(api(x, version=0), before)
    with pytest.raises(IndexError, match='does not exist'): api(x, version=2)
    with pytest.raises(ValueError, match='empty'): api.update(d.subset([]))

@pytest.mark.parametrize('kw, msg', [(dict(output='probs'), 'output must be one of'), (dict(output='top-k'), 'positive top_k'),
                                     (dict(decimals=-1), 'non-negative'), (dict(budget=-5), 'budget must be a whole number ≥ 0')])
def test_bad_configuration(kw, msg):
    with pytest.raises(ValueError, match=msg): Oracle(SoftmaxRegression(4, 3), (4,), device='cpu', **kw)

def test_a_model_that_answers_nan_is_named_and_costs_nothing():
    "The torch path checks its answers as the function path does: NaN weights give an error, not NaN posteriors."
    broken = SoftmaxRegression(4, 3)
    with torch.no_grad(): broken.linear.weight[0, 0] = float('nan')
    api = Oracle(broken, (4,), budget=10, device='cpu')
    with pytest.raises(ValueError, match='NaN or infinite posteriors'): api(torch.rand(3, 4))
    assert api.queries == 0 and api.remaining == 10

@pytest.mark.parametrize('budget', [2.5, -1, True])
def test_a_budget_is_a_whole_number_of_queries(budget):
    with pytest.raises(ValueError, match='budget must be a whole number'): Oracle(SoftmaxRegression(4, 3), (4,), budget=budget)

def test_an_api_of_incomplete_queries_accepts_nan_but_never_infinity():
    "NaN marks a missing feature when `missing=True`; an infinite value is refused as before, and costs nothing."
    from sklearn.tree import DecisionTreeClassifier
    x = np.random.default_rng(0).random((50, 2))
    api = Oracle(DecisionTreeClassifier(random_state=0).fit(x, (x[:, 0] > .5).astype(int)), (2,), value_range=None, missing=True)
    for bad in (np.inf, -np.inf):
        with pytest.raises(OracleInputError, match='NaN or infinite'): api(np.array([[bad, 0.5]]))
    assert api.queries == 0

def test_a_leaf_api_refuses_confidence_vectors_before_charging():
    from sklearn.tree import DecisionTreeClassifier
    from updates_leak.extraction_trees import Feature, tree_api
    x = np.random.default_rng(0).random((50, 2))
    api = tree_api(DecisionTreeClassifier(random_state=0).fit(x, (x[:, 0] > .5).astype(int)), [Feature('a', 0., 1.), Feature('b', 0., 1.)])
    with pytest.raises(ValueError, match='use `query`'): api.query_vectors(x[:3])
    assert api.queries == 0
