"""Model extraction (Tramèr et al.): exactness, agreement, budgets and bad input, on bundled data."""
import json, subprocess

import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier

from updates_leak.extraction import (agreement, extract, load_task, n_unknowns, run_extraction, train_target,
                                     uniform_queries)
from updates_leak.extraction_retraining import retrain
from updates_leak.extraction_trees import DeployedTree, Feature, encode, path_finding, random_input, top_down, tree_api
from updates_leak.oracle import Oracle, QueryBudgetExceeded

@pytest.fixture(scope='module')
def cancer(): return load_task('breast-cancer')

def api(model, task, **kw): return Oracle(model, (task.n_features,), value_range=(-1, 1), **kw)

def test_binary_lr_is_recovered_exactly_with_d_plus_1_queries(cancer):
    target = train_target('lr', cancer)
    oracle = api(target, cancer)
    stolen = extract(oracle, 'lr', n_features=cancer.n_features, n_classes=2, n_queries=cancer.n_features + 1, method='logits')
    assert oracle.queries == cancer.n_features + 1
    err = max((a - b).abs().max().item() for a, b in zip(target.parameters(), stolen.model.parameters()))
    assert err < 1e-6

def test_softmax_agreement_at_one_times_the_unknowns():
    digits = load_task('digits')
    res = run_extraction('softmax', task=digits, budget=1.0, n_uniform=2000)
    assert res.queries == n_unknowns(train_target('softmax', digits)) == 650 == res.unknowns
    assert res.r_test >= 0.999 and res.r_unif >= 0.999

def test_rounded_confidences_still_leak_the_softmax_model():
    res = run_extraction('softmax', task=load_task('wine'), budget=1.0, decimals=2, n_uniform=2000)
    assert res.r_test >= 0.95

def test_mlp_extraction_beats_a_fresh_model():
    moons = load_task('moons')
    target = train_target('mlp', moons, epochs=10)
    stolen = extract(api(target, moons), 'mlp', n_features=2, n_classes=2, n_queries=200, restarts=2)
    fresh = train_target('mlp', moons, epochs=0, seed=5)
    x = uniform_queries(2000, 2, seed=9)
    assert agreement(target, stolen.model, x=x).label >= 0.98 > agreement(target, fresh, x=x).label

def test_equation_solving_refuses_label_only_apis_and_small_budgets(cancer):
    target = train_target('lr', cancer)
    with pytest.raises(ValueError, match='labels only'):
        extract(api(target, cancer, output='label'), 'lr', n_features=cancer.n_features, n_classes=2, n_queries=100)
    with pytest.raises(ValueError, match='budget must be at least'):
        extract(api(target, cancer), 'lr', n_features=cancer.n_features, n_classes=2, n_queries=5)
    with pytest.raises(ValueError, match='rounded'):
        extract(api(target, cancer, decimals=0), 'lr', n_features=cancer.n_features, n_classes=2, n_queries=200, method='logits')

def test_query_budget_is_honoured(cancer):
    target = train_target('lr', cancer)
    oracle = api(target, cancer, budget=40)
    with pytest.raises(QueryBudgetExceeded):
        extract(oracle, 'lr', n_features=cancer.n_features, n_classes=2, n_queries=41, method='logits')
    assert oracle.queries == 0  # refused before spending anything
    with pytest.raises(QueryBudgetExceeded):
        retrain(Oracle(train_target('softmax', cancer), (cancer.n_features,), output='label', value_range=(-1, 1), budget=10), cancer.n_features, n_classes=2, n_queries=11)

def test_label_only_retraining_learns_the_boundary(cancer):
    target = train_target('softmax', cancer)
    oracle = Oracle(target, (cancer.n_features,), output='label', value_range=(-1, 1))
    stolen, _ = retrain(oracle, cancer.n_features, n_classes=2, n_queries=2000, strategy='adaptive')
    assert oracle.queries == 2000
    assert agreement(target, stolen, x=cancer.x_test).label >= 0.95

@pytest.fixture(scope='module')
def iris_tree():
    b = load_iris()
    features = [Feature(n, float(lo), high=float(hi)) for n, lo, hi in zip(b.feature_names, b.data.min(0), b.data.max(0))]
    tree = DecisionTreeClassifier(min_samples_leaf=3, random_state=0).fit(encode(features, b.data), b.target)
    return tree, features, b.data

@pytest.mark.parametrize('variant', ['path-finding', 'top-down'])
def test_tree_leaves_are_recovered_exactly(iris_tree, variant):
    tree, features, x = iris_tree
    oracle = tree_api(tree, features)
    stolen = path_finding(oracle, features, epsilon=1e-7) if variant == "path-finding" else top_down(oracle, features, epsilon=1e-7)
    assert {l.id for l in stolen.leaves} == DeployedTree(tree, features).leaf_ids
    u = random_input(features, np.random.default_rng(3), n=5000)
    ids, labels = oracle(u)
    assert oracle.queries > 5000  # the attack's queries and the check's, all counted by the Oracle
    assert (stolen.predict_ids(u) == ids.numpy()).all() and (stolen.predict(x) == tree.predict(x)).all()

def test_tree_api_checks_its_input(iris_tree):
    tree, features, _ = iris_tree
    with pytest.raises(ValueError, match='NaN'):
        tree_api(tree, features, incomplete=False)(np.full((1, 4), np.nan))
    with pytest.raises(ValueError, match='incomplete queries'):
        top_down(tree_api(tree, features, incomplete=False), features)
    with pytest.raises(ValueError, match='leaf identifiers'):
        path_finding(Oracle(tree, (4,), value_range=None), features)  # an API of posteriors names no leaf
    with pytest.raises(QueryBudgetExceeded):
        path_finding(tree_api(tree, features, budget=5), features)

def test_float64_oracle_answers_in_full_precision(cancer):
    target = train_target('lr', cancer)
    assert api(target, cancer)(cancer.x_test[:3]).dtype == torch.float64

def test_cli_extract_writes_the_table_and_json(tmp_path):
    r = subprocess.run(['updates-leak', 'extract', '--attack', 'equations', '--model', 'lr', '--dataset', 'breast-cancer', '--method', 'logits',
                        '--queries', '31', '--out', str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'R_test' in r.stdout
    res = json.loads((tmp_path/'extract_equations_breast-cancer_method-logits_model-lr_queries-31.json').read_text())
    assert res['queries'] == 31 and res['r_test'] == 1.0 and res['run'] == {'family': 'extraction', 'attack': 'equations', 'dataset': 'breast-cancer',
                                                                           'seed': 0, 'options': {'model': 'lr', 'method': 'logits', 'queries': 31}}
    a = subprocess.run(['updates-leak', 'extract', '--model', 'softmax', '--dataset', 'adult', '--budget', '0.5', '--out', str(tmp_path)],
                       capture_output=True, text=True)
    assert a.returncode == 0, a.stderr[-2000:]
    rows = json.loads((tmp_path/'extract_equations_adult_budget-0.5_model-softmax.json').read_text())['rows']
    assert {'method': 'paper', 'value': 0.9996} in [{k: r[k] for k in ('method', 'value')} for r in rows if r['metric'] == 'R_test']  # the paper's anchor

def test_cli_extract_tree(tmp_path):
    r = subprocess.run(['updates-leak', 'extract', '--attack', 'paths', '--dataset', 'steak', '--variant', 'top-down',
                        '--out', str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((tmp_path/'extract_paths_steak_variant-top-down.json').read_text())
    assert res['leaves_found'] == res['leaves'] and res['r_unif'] == 1.0
