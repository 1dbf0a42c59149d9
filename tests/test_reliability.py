"""Nothing silently wrong: records that cannot measure leakage are named in the results and the audit's report,
weights and tables that would load wrongly are refused, and every entry point answers bad records with the
library's own error, for all the bad records Hypothesis draws."""
import json

import numpy as np
import pytest
import torch.nn as nn
from hypothesis import HealthCheck, given, settings, strategies as st
from safetensors.torch import save_file
from sklearn.tree import DecisionTreeClassifier

from updates_leak.attacks import MembershipData
from updates_leak.audit import AuditResult, audit
from updates_leak.data import as_data
from updates_leak.extraction import run_extraction
from updates_leak.inversion_map import binned_survey, encode_survey, run_map_inversion
from updates_leak.loading import load_model, load_records
from updates_leak.membership_features import membership_features
from updates_leak.exfiltration import run_exfiltration
from updates_leak.extraction_retraining import run_retraining
from updates_leak.extraction_trees import run_tree_extraction
from updates_leak.inversion_faces import run_face_inversion
from updates_leak.membership_standalone import run_standalone
from updates_leak.membership_lira import ReferenceConfig, run_lira, run_loss_attack, run_rmia
from updates_leak.membership_qmia import QmiaConfig, run_qmia
from updates_leak.oracle import OracleInputError, check_records
from updates_leak.report import audit_html
from updates_leak.updates import own_setting

RNG = np.random.default_rng(0)
X = RNG.random((60, 4)).astype(np.float32)
Y = np.arange(60) % 3
NET = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))

def weights_file(tmp_path, change):
    state = {k: v.clone() for k, v in nn.Linear(4, 2).state_dict().items()}
    path = tmp_path/'model.safetensors'
    save_file(change(state), str(path))
    return dict(model=str(path), arch='torch.nn:Linear', arch_kwargs={'in_features': 4, 'out_features': 2})

def with_nan(state): state['weight'][0, 0] = float('nan'); return state

@pytest.mark.parametrize('change, message', [
    (with_nan, 'weight holds 1 NaN or infinite values'),
    (lambda s: {k: v.half() for k, v in s.items()}, 'is torch.float16 but the architecture'),
    (lambda s: {k: v.long() for k, v in s.items()}, 'is torch.int64 but the architecture'),
], ids=['NaN weights', 'float16 weights', 'int64 weights'])
def test_weights_that_would_load_wrongly_are_refused(tmp_path, change, message):
    "`load_state_dict` casts dtypes and copies NaN without a word; the loader names both."
    with pytest.raises(ValueError, match=message): load_model(**weights_file(tmp_path, change))

def test_csv_without_rows_or_with_text_labels_is_refused(tmp_path):
    (tmp_path/'header.csv').write_text('a,b,label\n')
    with pytest.raises(ValueError, match='no records'): load_records(tmp_path/'header.csv')
    (tmp_path/'text.csv').write_text('a,b,label\n1,2,cat\n3,4,dog\n')
    with pytest.raises(ValueError, match="label column 'label' holds text"): load_records(tmp_path/'text.csv')

def test_map_inversion_counts_the_model_classes_not_the_members():
    "Members that hold 2 of the model's 3 classes (class-sorted records cut short) once ended in an IndexError."
    order = np.argsort(Y, kind='stable')
    members, nonmembers = (X[order][:40], Y[order][:40]), (X[order][40:], Y[order][40:])
    task = binned_survey(members, nonmembers, sensitive=0)
    codes = np.vstack([task.x_train, task.x_test])
    tree = DecisionTreeClassifier(max_depth=3, random_state=0).fit(encode_survey(task.features, codes), Y[order])
    assert len(tree.classes_) == 3 and len(task.classes) == 2
    assert run_map_inversion(model=tree, members=members, nonmembers=nonmembers, sensitive=0).rows()

def membership_data(members, nonmembers=(X[30:45], Y[30:45]), population=(X[45:], Y[45:])):
    return MembershipData(members=as_data(members), nonmembers=as_data(nonmembers), population=as_data(population))

def test_poor_membership_samples_are_named_in_the_result():
    twice = membership_data((np.r_[X[:10], X[:10]], np.r_[Y[:10], Y[:10]]))
    assert 'members: 10 of 20 records repeat another one' in ' '.join(twice.warnings(uses_population=False))
    shared = membership_data((X[:30], Y[:30]), population=(X[:20], Y[:20]))
    said = ' '.join(shared.warnings(uses_population=True))
    assert 'the population shares 20 records' in said and 'the population holds 20 records' in said
    assert 'population' not in ' '.join(shared.warnings(uses_population=False))  # the loss attack does not use it
    one_class = membership_data((X[Y == 0][:10], Y[Y == 0][:10]))
    result = run_loss_attack(NET, one_class, progress=False)
    assert any('every record is of class 0' in w for w in result.warnings)
    assert json.loads(json.dumps(result.to_dict()))['warnings'] == result.warnings

def test_the_audit_takes_paths_and_reports_a_poor_sample(tmp_path):
    "`audit` reads paths as its docs say, and a single-class sample is said in its JSON and its HTML report."
    x = np.random.default_rng(1).random((80, 4)).astype(np.float32)
    np.savez(tmp_path/'train.npz', x=x[:40], y=np.zeros(40, int))
    np.savez(tmp_path/'test.npz', x=x[40:], y=np.zeros(40, int))
    result = audit(NET, tmp_path/'train.npz', test=str(tmp_path/'test.npz'), families=('membership',), quick=True,
                   device='cpu', progress=False)
    said = "the training records: every record is of class 0 of the model's 3"
    assert any(w.startswith(said) for w in result.warnings)
    assert said in result.brief() and 'Read the numbers below with care' in audit_html(result)
    assert AuditResult.from_dict(json.loads(json.dumps(result.to_dict()))).warnings == result.warnings

# --- every entry point answers bad records with the library's own error ---

CORRUPTIONS = ('NaN input', 'infinite input', 'another width', 'label beyond the model', 'negative label',
               'fractional label', 'text labels', 'lengths differ')

def corrupt(kind:str, n:int, where:int) -> tuple:
    "Records of NET's domain (4 features, 3 classes) with one flaw."
    x, y = X[:n].copy(), list(Y[:n])
    if kind == 'NaN input': x[where % n, where % 4] = np.nan
    if kind == 'infinite input': x[where % n, 0] = -np.inf
    if kind == 'another width': x = np.hstack([x, x])[:, :4 + 1 + where % 3]
    if kind == 'label beyond the model': y[where % n] = 3 + where
    if kind == 'negative label': y[where % n] = -1
    if kind == 'fractional label': y = np.array(y, dtype=float); y[where % n] = 0.5
    if kind == 'text labels': y = [f'class {v}' for v in y]
    if kind == 'lengths differ': y = y[:-1 - where % 3]
    return x, y

TREE = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, Y)
MODEL_FREE = ('as_data', 'run_exfiltration (own data)')  # they train their models on the records

ENTRY_POINTS = {
    'as_data': lambda r: as_data(r),
    'check_records': lambda r: check_records(NET, r),
    'run_rmia': lambda r: run_rmia(NET, membership_data(r), config=ReferenceConfig(references=2, epochs=1),
                                   progress=False),
    'run_lira': lambda r: run_lira(NET, membership_data(r), config=ReferenceConfig(references=2, epochs=1),
                                   progress=False),
    'run_qmia': lambda r: run_qmia(NET, membership_data(r), config=QmiaConfig(epochs=1), progress=False),
    'run_retraining (own target)': lambda r: run_retraining(target=NET, data=r),
    'run_tree_extraction (own tree)': lambda r: run_tree_extraction(tree=TREE, data=r),
    'run_exfiltration (own data)': lambda r: run_exfiltration('lsb', data=(r, (X, Y)), epochs=1, n_secrets=2),
    'run_face_inversion (own recogniser)': lambda r: run_face_inversion(recogniser=NET, split=(r, (X, Y)), max_steps=2),
    'run_standalone (own model)': lambda r: run_standalone(model=NET, members=r, nonmembers=(X[30:], Y[30:])),
    'membership_features': lambda r: membership_features(NET, r),
    'run_loss_attack': lambda r: run_loss_attack(NET, membership_data(r), progress=False),
    'run_extraction (own target)': lambda r: run_extraction('softmax', target=NET, data=r),
    'own_setting (Updates-Leak)': lambda r: own_setting(NET, r),
    'audit': lambda r: audit(NET, r, test=(X[30:], Y[30:]), families=('membership',), quick=True, progress=False),
}

@pytest.mark.parametrize('entry', sorted(ENTRY_POINTS))
@pytest.mark.parametrize('kind', CORRUPTIONS)
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(8, 30), where=st.integers(0, 50))
def test_bad_records_get_the_library_s_error(kind, entry, n, where):
    if kind == 'label beyond the model' and entry in MODEL_FREE: return  # records alone are fine
    if kind == 'another width' and entry == 'as_data': return
    with pytest.raises((ValueError, TypeError)) as e: ENTRY_POINTS[entry](corrupt(kind, n, where))
    assert type(e.value) in (ValueError, TypeError, OracleInputError), type(e.value)
    assert e.traceback[-1].path.parts[-2] == 'updates_leak', f"raised by {e.traceback[-1].path}: {e.value}"

def numeric_fields():
    "(attack, config, field, type) of every int or float option of every registered attack's config."
    import dataclasses, typing
    from updates_leak.attacks import ATTACKS, load_attacks
    load_attacks()
    out = []
    for name, spec in sorted(ATTACKS.items()):
        hints = typing.get_type_hints(spec.config)
        for f in dataclasses.fields(spec.config):
            base = ([a for a in typing.get_args(hints[f.name]) if a is not type(None)] or [hints[f.name]])[0]
            if base in (int, float): out.append((name, spec.config, f.name, base))
    return out

@pytest.mark.parametrize('attack, config, name, kind', numeric_fields(), ids=lambda v: getattr(v, '__name__', str(v)))
def test_every_numeric_option_is_range_checked_in_its_config(attack, config, name, kind):
    "Checked when the config is built, so before any work: no option takes a NaN, an infinity or a negative number."
    for bad in ([-1, 0.5, float('nan')] if kind is int else [float('nan'), float('inf'), -1.0]):
        with pytest.raises(ValueError): config(**{name: bad})
