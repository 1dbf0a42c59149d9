"""Membership inference: vectorised gradients equal the loop, the white-box attack works on an overfitted model,
the federated simulation behaves, bad input is refused, the CLI writes its results."""
import json, subprocess

import pytest
import torch

from updates_leak.data import Data, MissingDataError
from updates_leak.membership_features import (bench_per_sample_gradients, check_layers, loop_gradients, membership_features,
                                              membership_scores, per_sample_gradients, train_nasr_attack, weight_layers)
from updates_leak.membership_federated import FederatedSetting, federated_row, run_federated
from updates_leak.membership_standalone import MembershipAttack, run_standalone
from updates_leak.models import CifarCNN, MnistCNN, location_model

@pytest.mark.parametrize('make, shape, classes', [(location_model, (446,), 30), (CifarCNN, (3, 32, 32), 10), (MnistCNN, (1, 28, 28), 10)])
def test_per_sample_gradients_equal_the_loop(make, shape, classes):
    torch.manual_seed(0)
    model, x, y = make(), torch.rand(24, *shape), torch.randint(0, classes, (24,))
    layers = weight_layers(model)
    fast, slow = per_sample_gradients(model, x, y=y, layers=layers, batch_size=10), loop_gradients(model, x, y=y, layers=layers)
    for l in layers: assert torch.allclose(fast[l], slow[l], atol=1e-6), l

class TwiceLinear(torch.nn.Module):
    "One linear layer applied twice (a shared weight), then a head: the outer-product shortcut does not apply."
    def __init__(self):
        super().__init__()
        self.shared, self.head = torch.nn.Linear(6, 6), torch.nn.Linear(6, 3)
    def forward(self, x): return self.head(torch.tanh(self.shared(torch.tanh(self.shared(x)))))

class PerPosition(torch.nn.Module):
    "A linear layer on every position of a 4 × 5 input, then a head: the gradient sums over positions."
    def __init__(self):
        super().__init__()
        self.mix, self.head = torch.nn.Linear(5, 7), torch.nn.Linear(28, 3)
    def forward(self, x): return self.head(torch.tanh(self.mix(x)).flatten(1))

@pytest.mark.parametrize('make, shape', [(TwiceLinear, (6,)), (PerPosition, (4, 5))])
def test_per_sample_gradients_of_shared_and_positional_layers(make, shape):
    torch.manual_seed(0)
    model, x, y = make(), torch.rand(12, *shape), torch.randint(0, 3, (12,))
    fast, slow = per_sample_gradients(model, x, y=y, layers=weight_layers(model), batch_size=5), loop_gradients(model, x, y=y, layers=weight_layers(model))
    for l in weight_layers(model): assert torch.allclose(fast[l], slow[l], atol=1e-6), l

def test_per_sample_gradients_leave_a_frozen_model_as_it_was():
    torch.manual_seed(0)
    model = location_model().train()
    for p in model.parameters(): p.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.rand(8, 446), torch.randint(0, 30, (8,))
    fast = per_sample_gradients(model, x, y=y, layers=weight_layers(model))
    for p in model.parameters(): p.requires_grad_(True)
    slow = loop_gradients(model, x, y=y, layers=weight_layers(model))
    for p in model.parameters(): p.requires_grad_(False)
    for l in weight_layers(model): assert torch.allclose(fast[l], slow[l], atol=1e-6), l
    assert model.training and not any(p.requires_grad or p.grad is not None for p in model.parameters())
    assert not any(m._forward_hooks for m in model.modules()) and not x.requires_grad
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())

def test_benchmark_reports_equal_gradients():
    rows = bench_per_sample_gradients(n=16, repeats=1)
    assert [r['case'] for r in rows] == ['location, last layer', 'location, all layers', 'cifar10 CNN, all layers']
    assert all(r['max abs diff'] < 1e-5 for r in rows)  # speed is measured by the benchmark, never asserted
    assert [r['method'] for r in rows] == ['outer products', 'outer products', 'vmap'] and all(r['output floor s'] > 0 for r in rows)
    assert all(r['loop threads'] in (1, r['threads']) for r in rows)  # the loop is timed at its best thread count

@pytest.fixture(scope='module')
def location_result(): return run_standalone('location', kernels=100, n_shadow=0, variants=('white-box',), seed=1, progress=False)

def test_white_box_attack_on_an_overfitted_model(location_result):
    m = location_result.metrics
    assert location_result.train_accuracy == 1. and location_result.test_accuracy < 0.6  # the target is overfitted
    wb, loss = m['white-box (Nasr)'], m['loss threshold']
    assert wb['accuracy'] > 0.85  # far above the 0.5 of guessing
    assert wb['auc'] > loss['auc'] + 0.01  # the ranking is better than the loss threshold's...
    assert wb['tpr@1%fpr'] > 3 * loss['tpr@1%fpr']  # ...and so is the low-FPR region

def test_federated_run_is_reproducible():
    tiny = FederatedSetting(participants=2, records=100, rounds=3)
    a, b = (run_federated(tiny, 'local', mode='active', observed=(2, 3), kernels=8, attack_epochs=3, seed=4) for _ in range(2))
    assert a.metrics == b.metrics and a.global_test_accuracy == b.global_test_accuracy
    assert federated_row(a)['mode'] == 'active (step 0.3)' and a.to_dict()['ascent'] == 0.3  # the table names the step it used

def test_federated_run_on_cifar10():
    tiny = FederatedSetting('cifar10', participants=2, records=60, rounds=2)
    res = run_federated(tiny, 'global', mode='active', observed=(2,), kernels=8, attack_epochs=3, ascent=0.01)
    assert res.to_dict()['setting']['dataset'] == 'cifar10' and 0 <= res.metrics['accuracy'] <= 1
    assert 0 < res.global_test_accuracy < 1 and 0 < res.global_victim_accuracy <= 1  # the CNN was trained on CIFAR-10's images

def test_attack_training_is_seeded():
    torch.manual_seed(0)
    feats = {'log_loss': torch.randn(40, 1), 'grad:fc': torch.randn(40, 3, 5)}
    member = torch.arange(40) < 20
    runs = [train_nasr_attack(feats, member, kernels=4, epochs=2, seed=3, progress=False) for _ in range(2)]
    scores = [membership_scores(a, s(feats)) for a, s in runs]
    assert torch.equal(scores[0], scores[1])

def test_bad_input_is_refused():
    model = location_model()
    records = Data(torch.rand(6, 446).round(), torch.randint(0, 30, (6,)))
    with pytest.raises(ValueError, match='no weight layer named'): check_layers(model, ['fc9'])
    with pytest.raises(ValueError, match='no weight layer named'): membership_features(model, records, layers=['conv1'])
    with pytest.raises(ValueError, match='both known members and known non-members'):
        MembershipAttack(model, records.subset([0, 1, 2]), nonmembers=records.subset([2, 3]), progress=False)
    with pytest.raises(ValueError, match='both members and non-members'):
        train_nasr_attack({'log_loss': torch.randn(4, 1)}, torch.ones(4, dtype=torch.bool), progress=False)
    with pytest.raises(ValueError, match='NaN'):
        train_nasr_attack({'log_loss': torch.tensor([[0.], [float('nan')]])}, torch.tensor([True, False]), progress=False)
    with pytest.raises(ValueError, match="unknown membership target"): run_standalone('imagenet')
    with pytest.raises(ValueError, match="unknown attack variants"): run_standalone('location', variants=('grey-box',))
    with pytest.raises(ValueError, match='only the server'): run_federated(attacker='local', mode='isolating')
    with pytest.raises(ValueError, match='attacker must be one of'): run_federated(attacker='server')
    with pytest.raises(ValueError, match='unknown federated dataset'): run_federated(FederatedSetting('imagenet'))

@pytest.mark.parametrize('dataset, files', [('purchase100', 'dataset_purchase'), ('texas100', 'feats')])
def test_missing_tabular_data_names_its_source(tmp_path, dataset, files):
    with pytest.raises(MissingDataError, match=f'privacytrustlab/datasets(.|\n)*{files}'): run_standalone(dataset, root=tmp_path)

def test_isolating_server_beats_the_passive_one():
    setting = FederatedSetting(participants=3, records=200, rounds=8)
    passive, isolating = (run_federated(setting, 'global', mode=mode, observed=(7, 8), seed=2) for mode in ('passive', 'isolating'))
    assert passive.metrics['accuracy'] > 0.55
    assert isolating.metrics['accuracy'] > passive.metrics['accuracy'] + 0.1

def run_cli(*args, cwd):
    return subprocess.run(['updates-leak', 'membership', *args], capture_output=True, text=True, cwd=cwd)

def test_cli_federated_writes_json_and_figure(tmp_path):
    res = run_cli('--attack', 'federated', '--participants', '2', '--records', '100', '--rounds', '3', '--observed', '2,3',
                  '--kernels', '10', '--attack_epochs', '5', '--out', str(tmp_path), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    name = 'membership_federated_location_attack_epochs-5_kernels-10_observed-2-3_participants-2_records-100_rounds-3'
    out = json.loads((tmp_path/f'{name}.json').read_text())
    assert out['observed'] == [2, 3] and 0 <= out['metrics']['accuracy'] <= 1 and out['command'].startswith('updates-leak membership')
    assert out['setting'] == {'dataset': 'location', 'participants': 2, 'records': 100, 'rounds': 3, 'local_epochs': 1,
                              'lr': 1e-3, 'batch_size': 64}  # the JSON says which FedAvg run it measured
    assert (tmp_path/f'{name}.png').stat().st_size > 0

def test_cli_refuses_bad_settings(tmp_path):
    res = run_cli('--attack', 'nasr', '--mode', 'active', cwd=tmp_path)
    assert res.returncode == 2 and '--mode: not an option of --attack nasr' in res.stderr
    res = run_cli('--attack', 'federated', '--attacker', 'local', '--mode', 'isolating', '--records', '100', cwd=tmp_path)
    assert res.returncode != 0 and 'only the server' in res.stderr

def test_shadow_models_say_once_how_many_attack_classifiers_did_not_converge():
    import warnings
    from sklearn.exceptions import ConvergenceWarning
    from updates_leak.membership_standalone import MembershipTarget, ShadowModelAttack
    g = torch.Generator().manual_seed(0)
    data = Data(torch.rand(120, 5, generator=g), torch.randint(0, 3, (120,), generator=g), classes=['a', 'b', 'c'])
    recipe = MembershipTarget('toy', lambda: torch.nn.Linear(5, 3), members=60, shadow=120, test=0, epochs=2)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter('always')
        attack = ShadowModelAttack(data, recipe, n_shadow=2, max_iter=1, device='cpu')
    assert not [w for w in shown if issubclass(w.category, ConvergenceWarning)], 'scikit-learn warned once per class'
    said = [str(w.message) for w in shown if 'stopped before lbfgs converged' in str(w.message)]
    assert said == ['3 of the 3 per-class attack classifiers stopped before lbfgs converged (at max_iter=1, or where its line search '
                    'could go no further); their scores are used as they stand'] and len(attack.per_class) == 3
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter('always')
        ShadowModelAttack(data, recipe, n_shadow=2, device='cpu')
    assert not [w for w in shown if 'lbfgs' in str(w.message)], [str(w.message) for w in shown]
