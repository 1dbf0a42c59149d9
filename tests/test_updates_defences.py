"""Updates-Leak defences: each policy changes what the attacker sees as it claims, and nothing else."""
import pytest
import torch

from updates_leak.data import Data
from updates_leak.models import MnistCNN
from updates_leak.oracle import Disclosure, Oracle
from updates_leak.updates import Scale, UpdateConfig, Updates, UpdatesExperiment, prepare_experiment, rerun_updates
from updates_leak.updates_defences import DEFENCES, Defence, defend_experiment, defended_accuracy, evaluate_defences, update_utility

def updates(seed=0, k=4, probes=3, classes=5):
    g = torch.Generator().manual_seed(seed)
    before, after = torch.softmax(torch.randn(probes, classes, generator=g), 1), torch.softmax(torch.randn(k, probes, classes, generator=g), 1)
    return Updates(before, after, sets=torch.arange(k)[:, None], labels=torch.arange(k)[:, None] % classes)

def test_defences_agree_with_the_oracle():
    torch.manual_seed(0)
    model, x = MnistCNN(), torch.rand(6, 1, 28, 28)
    for d in (DEFENCES['round2'], DEFENCES['noise0.1'], Defence('top-2', Disclosure('top-k', top_k=2))):
        api = Oracle(model, (1, 28, 28), policy=d.policy, seed=5)
        assert torch.equal(api.query(x), d.apply(torch.softmax(model.eval()(x), 1).detach(), seed=5))
    labels = Oracle(model, (1, 28, 28), output='label').query(x)
    assert torch.equal(DEFENCES['top1'].apply(torch.softmax(model(x), 1).detach()).argmax(1), labels)

def test_defended_experiment_keeps_the_sets_and_hides_the_posteriors():
    exp = UpdatesExperiment(None, None, shadows=[], shadow_updates=[updates(0), updates(1)], target_updates=updates(2), target_accuracy=0.9, set_size=1)
    top1 = defend_experiment(exp, DEFENCES['top1'])
    assert set(top1.target_updates.delta().unique().tolist()) <= {-1., 0., 1.}
    assert torch.equal(top1.target_updates.sets, exp.target_updates.sets) and torch.equal(top1.shadow_updates[1].labels, exp.shadow_updates[1].labels)
    rounded = defend_experiment(exp, DEFENCES['round1'])
    assert torch.equal(rounded.shadow_updates[0].after, exp.shadow_updates[0].after.round(decimals=1))
    noisy_a, noisy_b = (defend_experiment(exp, DEFENCES['noise0.01'], seed=s).target_updates.after for s in (0, 0))
    assert torch.equal(noisy_a, noisy_b) and not torch.equal(noisy_a, exp.target_updates.after)

def test_api_accuracy_only_changes_when_the_top_class_can():
    torch.manual_seed(1)
    model = MnistCNN().eval()
    data = Data(torch.rand(50, 1, 28, 28), torch.randint(0, 10, (50,)), classes=[str(i) for i in range(10)])
    plain = defended_accuracy(model, data, defence=DEFENCES['none'])
    assert defended_accuracy(model, data, defence=DEFENCES['top1']) == plain and defended_accuracy(model, data, defence=DEFENCES['round3']) == plain

def test_bad_input_is_refused():
    with pytest.raises(ValueError, match='output must be one of'): Defence('x', Disclosure('logits'))
    exp = UpdatesExperiment(None, None, shadows=[], shadow_updates=[updates()], target_updates=updates(), target_accuracy=0.9, set_size=1)
    with pytest.raises(ValueError, match='single-sample and multi-sample'): evaluate_defences(exp, exp)

TINY = Scale(n_train=200, target_pool=200, epochs=1, lr=1e-2, n_shadow_updates=20, n_target_updates=10)

def test_dp_sgd_defence_redoes_the_updates_on_the_same_sets():
    exp = prepare_experiment('mnist-embedded', TINY, set_size=5, seed=0, device='cpu', progress=False)
    again = rerun_updates(exp, UpdateConfig(), seed=0, device='cpu', progress=False)
    assert torch.equal(again.target_updates.after, exp.target_updates.after)  # same seed, same procedure: the same updates
    private = defend_experiment(exp, DEFENCES['dp1'], seed=0, device='cpu')
    assert private.update == DEFENCES['dp1'].update and exp.update == UpdateConfig()
    assert torch.equal(private.target_updates.sets, exp.target_updates.sets) and torch.equal(private.shadow_updates[0].labels, exp.shadow_updates[0].labels)
    assert torch.equal(private.target_updates.before, exp.target_updates.before)
    assert (private.target_updates.after - exp.target_updates.after).abs().max() > 1e-4
    assert torch.equal(defend_experiment(private, DEFENCES['dp1'], seed=0).target_updates.after, private.target_updates.after)  # not redone twice
    accuracy, private_drop = update_utility(private, n=3, device='cpu')
    plain_drop = update_utility(exp, n=3, device='cpu')[1]
    assert 0 < accuracy <= 1 and plain_drop > 0 and plain_drop != private_drop
