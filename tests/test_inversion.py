"""Model inversion: MAP estimators on the surveys, MI-FACE on the faces, their errors and the CLI."""
import json, subprocess

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn

from updates_leak.results import seed_spread
from updates_leak.data import Feature
from updates_leak.inversion_map import (blackbox_map, error_model, leaf_cells, leaf_class_counts, load_survey, marginal_priors, run_map_inversion,
                                        train_survey_tree, whitebox_map)
from updates_leak.inversion_faces import FaceIdentifier, identification, load_face_split, mi_face, train_face_model

TOY = [Feature('secret', categories=['a', 'b']), Feature('known', categories=['n', 'y', 'm'])]
toy_model = lambda x: (x[:, 0] + x[:, 1]) % 2

@pytest.fixture(scope='module')
def steak(): return load_survey('steak')

def test_blackbox_bad_input_is_refused():
    x, y, pi = np.array([[0, 1]]), np.array([1]), np.full((2, 2), 0.5)
    with pytest.raises(ValueError, match='unknown feature'): blackbox_map(toy_model, TOY, x=x, y=y, sensitive='secrett', prior=[0.5, 0.5], pi=pi)
    with pytest.raises(ValueError, match='sum to 1'): blackbox_map(toy_model, TOY, x=x, y=y, sensitive='secret', prior=[0.5, 0.6], pi=pi)
    with pytest.raises(ValueError, match='not answers'): blackbox_map(toy_model, TOY, x=x, y=y, sensitive='secret', prior=[1.], pi=pi, candidates=[1])
    with pytest.raises(ValueError, match='one probability per candidate'): blackbox_map(toy_model, TOY, x=x, y=y, sensitive='secret', prior=[1.], pi=pi)
    with pytest.raises(ValueError, match='non-negative'): blackbox_map(toy_model, TOY, x=x, y=y, sensitive='secret', prior=[1.5, -0.5], pi=pi)
    with pytest.raises(ValueError, match='labels'): blackbox_map(toy_model, TOY, x=x, y=np.array([0, 1]), sensitive='secret', prior=[0.5, 0.5], pi=pi)

def test_blackbox_is_bayes_optimal_on_a_toy_model():
    "Every target's guess maximises π(y, f(x_K, v))·p(v), checked by enumeration."
    rng = np.random.default_rng(0)
    x, y = np.stack([rng.integers(0, 2, 50), rng.integers(0, 3, 50)], 1), rng.integers(0, 2, 50)
    prior, pi = np.array([0.7, 0.3]), np.array([[0.8, 0.3], [0.2, 0.7]])
    est = blackbox_map(toy_model, TOY, x=x, y=y, sensitive='secret', prior=prior, pi=pi)
    for row, label, guess in zip(x, y, est.values):
        scores = [pi[label, toy_model(np.array([[v, row[1]]]))[0]] * prior[v] for v in range(2)]
        assert guess == int(np.argmax(scores))

def test_unknown_survey_and_answer(steak):
    with pytest.raises(ValueError, match='unknown survey'): load_survey('steaks')
    with pytest.raises(ValueError, match='unknown feature'): load_survey('steak', sensitive='Do you like cats?')
    with pytest.raises(ValueError, match='is not an answer'): load_survey('steak', positive='Maybe')

@pytest.mark.parametrize('seed', range(3))
def test_whitebox_never_falsely_accuses_members_of_a_fully_grown_tree(seed):
    "The paper's 100% precision on members, where its argument applies: 'yes'-only leaves hold ≤ p(no)/p(yes) rows of a label."
    task = load_survey('steak', seed=seed)
    tree = train_survey_tree(task, seed=seed)
    priors = marginal_priors(task.features, task.x_train)
    counts = leaf_class_counts(tree)
    yes_only = [l for l, m in leaf_cells(tree, task.features).items() if not m[task.sensitive][1 - task.positive]]
    p = priors[task.sensitive]
    assert counts[yes_only].max() <= p[1 - task.positive] / p[task.positive] + 1e-9
    guess = whitebox_map(tree, task.features, x=task.x_train, y=task.y_train, sensitive=task.features[0].name, priors=priors).values
    said_yes = guess == task.positive
    assert said_yes.sum() > 10 and (task.x_train[said_yes, 0] == task.positive).all()

def test_leaf_cells_contain_the_rows_routed_to_them(steak):
    tree = train_survey_tree(steak, min_samples_leaf=5)
    cells = leaf_cells(tree, steak.features)
    from updates_leak.inversion_map import encode_survey
    leaves = tree.apply(encode_survey(steak.features, steak.x_test))
    for row, leaf in zip(steak.x_test, leaves):
        assert all(mask[code] for mask, code in zip(cells[leaf], row))

def test_map_inversion_beats_the_prior_on_members_and_is_reproducible():
    a, b = run_map_inversion(['steak'], seeds=[0, 1]), run_map_inversion(['steak'], seeds=[0, 1])
    assert pd.DataFrame(a.rows_per_split).equals(pd.DataFrame(b.rows_per_split))  # NaN precisions compare equal here
    s = a.means()
    members = s.xs('members', level=2).loc['steak']
    assert members.loc['white-box', 'accuracy'] > members.loc['prior mode', 'accuracy'] + 0.03
    assert members.loc['white-box', 'precision'] == 1.
    spreads = a.spreads().xs('members', level=2).loc['steak']
    per_split = pd.DataFrame(a.rows_per_split).query("method == 'white-box' and group == 'members'")
    assert spreads.loc['white-box', 'accuracy'] == seed_spread(per_split.accuracy.tolist())
    assert spreads.loc['prior mode', 'precision'] == 'undefined'  # the prior's mode never says "yes"

def test_error_model_columns_are_distributions():
    pi = error_model(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), n_classes=3)
    np.testing.assert_allclose(pi.sum(0), 1)

@pytest.fixture(scope='module')
def small_faces(): return load_face_split(scale=4)

def test_mi_face_softmax_is_identified_and_reproducible(small_faces):
    model = train_face_model('softmax', small_faces, progress=False)
    people = np.arange(small_faces.n_people)
    a = mi_face(model, people, image_shape=small_faces.image_shape)
    b = mi_face(model, people, image_shape=small_faces.image_shape)
    assert torch.equal(a.images, b.images)
    assert a.images.min() >= 0 and a.images.max() <= 1
    ident = identification(FaceIdentifier(small_faces), a, labels=people)
    assert ident['classifier'] > 10 * 0.025 and ident['nearest photo'] > 10 * 0.025  # chance is 2.5%

def test_mi_face_refuses_a_broken_model(small_faces):
    class Broken(nn.Module):
        def forward(self, x): return torch.full((len(x), 40), float('nan')) + 0 * x.flatten(1)[:, :1]
    with pytest.raises(ValueError, match='MI-FACE cost'):
        mi_face(Broken(), [0, 1], image_shape=small_faces.image_shape, max_steps=3)

def test_unknown_face_model(small_faces):
    with pytest.raises(ValueError, match='model must be one of'): train_face_model('cnn', small_faces)
    with pytest.raises(ValueError, match='n_train'): load_face_split(n_train=10)

def test_cli_invert_map_writes_json(tmp_path):
    r = subprocess.run(['updates-leak', 'invert', '--attack', 'map', '--dataset', 'steak', '--seed', '2', '--out', str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'MAP inversion: white-box' in r.stdout and 'paper' in r.stdout
    res = json.loads((tmp_path/'invert_map_steak_seed2.json').read_text())
    assert {'rows', 'rows_per_split', 'command'} <= set(res) and len(res['rows_per_split']) == 2 * 5 and res['rows_per_split'][0]['seed'] == 2
    assert (tmp_path/'invert_map_steak_seed2.png').stat().st_size > 1000

def test_cli_invert_face_writes_json_and_faces(tmp_path):
    r = subprocess.run(['updates-leak', 'invert', '--attack', 'mi-face', '--model', 'softmax', '--scale', '4', '--out', str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path/'invert_mi-face_att-faces_model-softmax_scale-4.json').read_text())
    assert res['model'] == 'softmax' and res['image_size'] == '28×23' and res['identified_classifier'] > 0.25
    assert (tmp_path/'invert_mi-face_att-faces_model-softmax_scale-4.png').stat().st_size > 1000

def test_cli_invert_unknown_kind():
    r = subprocess.run(['updates-leak', 'invert', '--attack', 'tree'], capture_output=True, text=True)
    assert r.returncode == 2 and "invalid choice: 'tree'" in r.stderr
