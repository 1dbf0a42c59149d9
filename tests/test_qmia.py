"""The quantile-regression membership attack (QMIA): registered, through the Oracle, from the command line, options checked."""
import json

import pytest
import torch
from hypothesis import given, settings, strategies as st

from updates_leak.attacks import tpr_at_fpr, MembershipData, MembershipResult, attack_spec, attacks_of
from updates_leak.membership_qmia import QmiaConfig, margin_scores, run_qmia
from updates_leak.membership_standalone import TARGETS, MembershipTarget, train_membership_model
from updates_leak.models import MLP
from updates_leak.oracle import Oracle

@pytest.fixture(scope='module')
def location_target():
    "A small Location MLP trained on 300 members: 300 non-members and 600 population records beside them."
    from updates_leak.data import load_dataset
    loc = load_dataset('location', 'all')
    data = loc.subset(torch.randperm(len(loc), generator=torch.Generator().manual_seed(1))[:1200])
    members = data.subset(torch.arange(300))
    recipe = MembershipTarget('location', lambda: MLP([446, 64, 30]), members=300, shadow=0, test=0, epochs=30)
    records = MembershipData(members=members, nonmembers=data.subset(torch.arange(300, 600)), population=data.subset(torch.arange(600, 1200)), name='location')
    return train_membership_model(recipe, members, seed=0, device='cpu'), records

def test_qmia_is_registered_as_a_black_box_membership_attack():
    spec = attack_spec('qmia')
    assert spec in attacks_of('membership') and spec.threat == ('black-box',) and spec.run is run_qmia

def test_qmia_finds_members_of_an_overfitted_target_and_leaves_it_unchanged(location_target):
    model, records = location_target
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    api = Oracle(model, (446,), value_range=None)
    r = run_qmia(api, records, config=QmiaConfig(epochs=20), seed=0, device='cpu', progress=False)
    again = run_qmia(model, records, config=QmiaConfig(epochs=20), seed=0, device='cpu', progress=False)
    assert r.metrics['auc'] > 0.75 and r.metrics['tpr@1%fpr'] > 0.05  # far above random guessing (0.5, 1%)
    assert r.metrics == again.metrics  # the seed decides everything
    assert r.queries == api.queries == len(records.population) + 600  # every query went through the Oracle
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert MembershipResult.from_dict(json.loads(json.dumps(r.to_dict()))) == r

def test_label_only_answers_stop_qmia_at_low_fpr(location_target):
    model, records = location_target
    r = run_qmia(Oracle(model, (446,), output='label', value_range=None), records, config=QmiaConfig(epochs=20), seed=0, device='cpu', progress=False)
    assert r.metrics['tpr@0.1%fpr'] is None  # 300 non-members cannot resolve 0.1% FPR (`fpr_measurable`)
    # the lowest rate they resolve: one false positive in 300
    assert tpr_at_fpr(r.scores, records.is_member, fpr_max=1 / r.nonmembers) <= 0.02

def test_the_margin_is_the_logit_margin():
    logits = torch.randn(20, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = torch.arange(20) % 5
    direct = logits.gather(1, y[:, None])[:, 0] - logits.scatter(1, y[:, None], float('-inf')).max(1).values
    assert torch.allclose(margin_scores(logits.log_softmax(1), y), direct)

@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(['hidden', 'epochs', 'batch_size', 'lr', 'held_out', 'weight_decay']),
       value=st.one_of(st.integers(-5, 0), st.floats(allow_nan=True, allow_infinity=True).filter(lambda v: v != v or v in (float('inf'), float('-inf')) or v <= 0)))
def test_bad_options_are_refused_with_their_name(name, value):
    if name == 'weight_decay' and value == 0: return  # no weight decay is a valid choice
    with pytest.raises(ValueError, match=name):
        QmiaConfig(**{name: value})

def test_the_cli_runs_qmia_on_a_preset_and_refuses_other_attacks_flags(tmp_path, monkeypatch, capsys):
    from updates_leak import cli
    monkeypatch.setitem(TARGETS, 'location', MembershipTarget('location', lambda: MLP([446, 16, 30]), members=100, shadow=0, test=0, epochs=2))
    cli.main(['membership', '--attack', 'qmia', '--epochs', '3', '--population', '200', '--device', 'cpu', '--out', str(tmp_path)])
    d = json.loads((tmp_path/'membership_qmia_location_epochs-3_population-200.json').read_text())
    assert d['result'] == 'MembershipResult' and d['queries'] == 200 + 200 and (tmp_path/'membership_qmia_location_epochs-3_population-200.png').exists()
    with pytest.raises(SystemExit) as e: cli.main(['membership', '--attack', 'qmia', '--held_out', '3'])
    assert e.value.code == 2 and 'held_out' in capsys.readouterr().err
    with pytest.raises(SystemExit) as e: cli.main(['membership', '--attack', 'loss', '--hidden', '3'])
    assert e.value.code == 2 and '--hidden: not an option of --attack loss' in capsys.readouterr().err
