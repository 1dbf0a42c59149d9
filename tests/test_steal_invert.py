"""Steal a face recogniser through its API, then invert the stolen copy (reduced resolution)."""
import json, subprocess

import pytest

from updates_leak.inversion_faces import load_face_split, train_face_model
from updates_leak.oracle import QueryBudgetExceeded
from updates_leak.steal_invert import face_api, min_queries, steal_and_invert, steal_face_recogniser

@pytest.fixture(scope='module')
def faces(): return load_face_split(scale=4)  # 28×23 pixels

@pytest.fixture(scope='module')
def target(faces): return train_face_model('softmax', faces, progress=False)

def test_stolen_copy_agrees_and_gives_up_the_faces(faces, target):
    res = steal_and_invert(faces, target)
    assert res.queries == min_queries(faces) == 28 * 23 + 1
    assert res.r_test >= 0.99 and res.r_unif >= 0.99 and res.weight_error < 1e-6
    assert res.identified_stolen > 10 * 0.025  # chance is 2.5%
    assert res.identified_stolen >= res.identified_target - 0.05

def test_too_small_a_budget_is_refused(faces, target):
    with pytest.raises(ValueError, match='budget must be at least'):
        steal_face_recogniser(face_api(target, faces), faces, budget=0.5)

def test_the_api_budget_is_enforced(faces, target):
    with pytest.raises(QueryBudgetExceeded):
        steal_face_recogniser(face_api(target, faces, budget=100), faces)

def test_the_target_is_left_untouched(faces, target):
    before = target.linear.weight.dtype
    steal_and_invert(faces, target, decimals=3)
    assert target.linear.weight.dtype == before

def test_cli_extract_face(tmp_path):
    r = subprocess.run(['updates-leak', 'extract', '--attack', 'steal-invert', '--dataset', 'att-faces', '--scale', '4', '--out', str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path/'extract_steal-invert_att-faces_scale-4.json').read_text())
    assert res['image_size'] == '28×23' and res['queries'] == 645 and res['countermeasure'] == 'none'
    assert res['r_test'] >= 0.99 and res['identified_stolen'] > 0.25
    assert (tmp_path/'extract_steal-invert_att-faces_scale-4.png').stat().st_size > 1000
