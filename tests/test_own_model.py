"""A user's own models and data in every family: one `Oracle` for a scikit-learn estimator (no parameters), a float32
torch model and a predictions-only function; the caller's model is never changed; every result follows one protocol."""
import json

import numpy as np
import pytest
import torch
import torch.nn as nn
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.tree import DecisionTreeClassifier

from updates_leak.results import ROW_KEYS, Result, check_rows
from updates_leak.core import set_seed
from updates_leak.data import Data, as_data
from updates_leak.exfiltration import capacity_abuse_data, capacity_abuse_decode, levels_correct, run_exfiltration, secret_images
from updates_leak.extraction import run_extraction
from updates_leak.extraction_retraining import run_retraining
from updates_leak.extraction_trees import run_tree_extraction
from updates_leak.inversion_faces import run_face_inversion
from updates_leak.inversion_map import run_map_inversion
from updates_leak.membership_federated import FederatedSetting, run_federated
from updates_leak.membership_standalone import run_standalone
from updates_leak.models import fit
from updates_leak.oracle import Oracle, WhiteBoxRequired, model_accuracy
from updates_leak.steal_invert import steal_and_invert
from updates_leak.inversion_faces import load_face_split, train_face_model
from updates_leak.updates import Scale, loop_updates, prepare_experiment, update_seeds
from updates_leak.updates_defences import DEFENCES, evaluate_defences
from updates_leak.updates_lde import evaluate_label_distribution
from updates_leak.updates_li import evaluate_label_inference
from updates_leak.updates_msr import evaluate_multi_reconstruction
from updates_leak.updates_ssr import evaluate_reconstruction

# --- the user's models -------------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def cancer():
    b = load_breast_cancer()
    x = (b.data - b.data.min(0)) / (b.data.max(0) - b.data.min(0))
    perm = np.random.default_rng(0).permutation(len(x))
    tr, te = perm[:400], perm[400:]
    return (x[tr], b.target[tr]), (x[te], b.target[te])

class SklearnWrapper:
    "What a user writes around a fitted estimator: no parameters, no torch."
    def __init__(self, est): self.est = est
    def predict_proba(self, x): return self.est.predict_proba(x)

def torch_model(train, hidden=16, norm=nn.LayerNorm, epochs=60, seed=0):
    set_seed(seed)
    d, c = train[0].shape[1], int(train[1].max()) + 1
    m = nn.Sequential(nn.Linear(d, hidden), norm(hidden), nn.ReLU(), nn.Linear(hidden, c))
    fit(m, as_data(train), epochs=epochs, lr=0.05, device='cpu', progress=False)
    return m.eval()

@pytest.fixture(scope='module')
def models(cancer):
    "The three kinds of model, linear alike, trained on the same records: a scikit-learn wrapper, a float32 torch model and a function."
    train, _ = cancer
    set_seed(0)
    net = nn.Sequential(nn.Linear(30, 2))
    fit(net, as_data(train), epochs=200, lr=0.05, device='cpu', progress=False)
    net.eval()
    return {'sklearn': SklearnWrapper(LogisticRegression(max_iter=2000).fit(*train)), 'torch': net,
            'function': lambda x: torch.softmax(net(x.float()), 1)}

def snapshot(model:nn.Module) -> dict:
    "Everything about a torch model that an attack must leave alone."
    return {'state': {k: v.clone() for k, v in model.state_dict().items()}, 'training': [m.training for m in model.modules()],
            'requires_grad': [p.requires_grad for p in model.parameters()], 'device': [p.device for p in model.parameters()],
            'dtype': [p.dtype for p in model.parameters()]}

def assert_unchanged(model, before):
    after = snapshot(model)
    assert all(torch.equal(before['state'][k], after['state'][k]) for k in before['state'])
    assert {k: v for k, v in before.items() if k != 'state'} == {k: v for k, v in after.items() if k != 'state'}

# --- one oracle, three kinds -----------------------------------------------------------------------------------------
@pytest.mark.parametrize('kind', ['sklearn', 'torch', 'function'])
def test_one_oracle_answers_for_every_kind(models, cancer, kind):
    _, (x, y) = cancer
    api = Oracle(models[kind], (30,), budget=len(x))
    p = api(x)
    assert p.shape == (len(x), 2) and torch.allclose(p.sum(1).double(), torch.ones(len(x), dtype=torch.float64), atol=1e-5)
    assert api.queries == len(x) and model_accuracy(models[kind], (x, y)) > 0.9

@pytest.mark.parametrize('kind', ['sklearn', 'torch', 'function'])
def test_extraction_steals_every_kind(models, cancer, kind):
    _, test = cancer
    before = snapshot(models['torch'])
    res = run_extraction('softmax', target=models[kind], data=test, budget=2.0, n_uniform=1000)
    assert res.queries == 2 * 31 * 2 and res.unknowns == 62  # queries count the stolen softmax model's unknowns, not a wrapper's parameters
    assert res.r_test >= 0.9, res.table()
    labels = run_retraining(target=models[kind], data=test, budget=50.0, strategy='adaptive', n_uniform=1000)
    assert labels.r_test >= 0.95, labels.table()  # labels only: uniform queries barely touch the data, adaptive ones find the boundary
    assert_unchanged(models['torch'], before)

@pytest.mark.parametrize('kind', ['sklearn', 'torch', 'function'])
def test_map_inversion_queries_every_kind(models, cancer, kind):
    train, test = cancer
    res = run_map_inversion(model=models[kind], members=train, nonmembers=test, sensitive=0, n_bins=3)
    methods = {r['attack'] for r in res.rows()}
    assert 'MAP inversion: black-box' in methods and 'MAP inversion: white-box' not in methods  # leaf counts need a tree
    m = res.means()
    assert 0 <= m['accuracy'].min() and m['accuracy'].max() <= 1

@pytest.mark.parametrize('kind', ['sklearn', 'torch', 'function'])
def test_black_box_membership_on_every_kind(models, cancer, kind):
    train, test = cancer
    res = run_standalone('cancer', model=models[kind], members=train, nonmembers=test, kernels=4, attack_epochs=2, progress=False)
    expected = {'black-box (Nasr network)', 'loss threshold', 'entropy threshold'} | ({'white-box (Nasr)', 'white-box unsupervised (Nasr)'} if kind == 'torch' else set())
    assert set(res.metrics) == expected
    assert all(0 <= m['auc'] <= 1 for m in res.metrics.values())

def test_shadow_models_copy_a_torch_model_or_an_estimator(models, cancer):
    train, test = cancer
    for model in (models['torch'], LogisticRegression(max_iter=2000).fit(*train)):  # fresh copies of the architecture, or clones
        res = run_standalone('cancer', model=model, members=train, nonmembers=test, shadow=test, n_shadow=1, kernels=4, attack_epochs=1,
                             variants=('black-box',), progress=False)
        assert 0 <= res.metrics['shadow models (Shokri)']['auc'] <= 1

def test_white_box_attacks_say_what_they_need(models, cancer):
    train, test = cancer
    with pytest.raises(WhiteBoxRequired, match='needs a torch nn.Module'):
        run_standalone('cancer', model=models['sklearn'], members=train, nonmembers=test, variants=('white-box',), progress=False)
    with pytest.raises(WhiteBoxRequired, match='Updates-Leak'):
        prepare_experiment('cancer', model=models['function'], data=test, progress=False)
    with pytest.raises(WhiteBoxRequired, match='MI-FACE'):
        run_face_inversion(recogniser=models['sklearn'], split=(test, test))

def test_exfiltration_reads_back_through_every_kind():
    d = load_digits()
    data = as_data((d.images[:, None] / 16., d.target))
    secret = secret_images(data, 2)
    poisoned = capacity_abuse_data(data.subset(range(600)), secret, on_pixels=6)
    flat = poisoned.x.flatten(1).numpy()
    set_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))
    fit(net, poisoned, epochs=60, lr=1e-3, optimizer='adam', device='cpu', progress=False)
    sk = MLPClassifier((256,), max_iter=400, random_state=0).fit(flat, poisoned.y.numpy())
    apis = {'torch': Oracle(net.eval(), (1, 8, 8), output='label'),
            'function': Oracle(lambda x: torch.softmax(net(x), 1), (1, 8, 8), output='label'),
            'sklearn': Oracle(SklearnWrapper(sk), (1, 8, 8), output='label')}
    for kind, api in apis.items():
        recovered = capacity_abuse_decode(api, tuple(secret.shape), n_classes=10, input_shape=(1, 8, 8), on_pixels=6)
        assert api.queries == secret.numel() and levels_correct(recovered, secret, n_classes=10) > 0.5, kind

# --- the caller's model is never changed -----------------------------------------------------------------------------
@pytest.fixture(scope='module')
def digits_split():
    d = load_digits()
    x, y = d.data / 16., d.target
    perm = np.random.default_rng(1).permutation(len(x))
    return (x[perm[:800]], y[perm[:800]]), (x[perm[800:]], y[perm[800:]])

TINY = Scale(n_train=200, target_pool=200, epochs=2, lr=0.05, n_shadow_updates=60, n_target_updates=12, probe_size=20)

def test_updates_leak_on_an_own_model_leaves_it_alone(digits_split):
    train, rest = digits_split
    net = torch_model(train, hidden=32, epochs=20).train()  # the caller left it in training mode, on purpose
    before = snapshot(net)
    one = prepare_experiment('digits', TINY, set_size=1, n_shadow_models=2, model=net, data=rest, device='cpu', progress=False)
    many = prepare_experiment('digits', TINY, set_size=5, n_shadow_models=2, model=net, data=rest, device='cpu', progress=False)
    li, lde = evaluate_label_inference(one, n_attack_models=1, device='cpu'), evaluate_label_distribution(many, n_attack_models=1, device='cpu')
    assert one.target is net and 0 < li.accuracy <= 1 and li.target_accuracy > 0.8
    assert lde.kl[0] < lde.kl_random
    assert_unchanged(net, before)

def test_batch_norm_models_update_exactly(digits_split):
    train, rest = digits_split
    net = torch_model(train, hidden=16, norm=nn.BatchNorm1d, epochs=5)
    before = snapshot(net)
    exp = prepare_experiment('digits', TINY, set_size=5, n_shadow_models=1, model=net, data=rest, device='cpu', progress=False)
    t = exp.target_updates
    loop = loop_updates(net, exp.setting.target_pool, sets=t.sets, seeds=update_seeds(len(t.sets), 40), probe=exp.setting.probe.x, device='cpu')
    assert (t.after - loop).abs().max() <= 1e-5  # the stacked generator keeps each copy's batch statistics
    assert_unchanged(net, before)

def test_mi_face_on_own_images_leaves_the_model_alone():
    d = load_digits()
    x, y = torch.tensor(d.images[:, None] / 16., dtype=torch.float32), torch.tensor(d.target)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    fit(net, Data(x[:1200], y[:1200]), epochs=50, lr=1e-2, optimizer='adam', batch_size=1200, device='cpu', progress=False)
    net.train()
    before = snapshot(net)
    res = run_face_inversion(recogniser=net, split=((x[:1200], y[:1200]), (x[1200:], y[1200:])), max_steps=300)
    assert res.images.shape == (10, 1, 8, 8) and 0 <= res.as_close_as_real <= 1 and res.real_similarity > res.similarity
    assert_unchanged(net, before)

# --- one result protocol -----------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def results(cancer, digits_split):
    "One result of every type, each from a small real run on the user's side."
    train, test = cancer
    dtrain, drest = digits_split
    net = torch_model(dtrain, hidden=32, epochs=20)
    images = torch.tensor(load_digits().images[:, None] / 16., dtype=torch.float32), torch.tensor(load_digits().target)
    one = prepare_experiment('digits', TINY, set_size=1, model=net, data=drest, device='cpu', progress=False)
    many = prepare_experiment('digits', TINY, set_size=5, model=net, data=drest, device='cpu', progress=False)
    picture = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    fit(picture, Data(*images), epochs=3, device='cpu', progress=False)
    pix = prepare_experiment('digit images', TINY, set_size=5, model=picture, data=images, device='cpu', progress=False)
    pix1 = prepare_experiment('digit images', TINY, set_size=1, model=picture, data=images, device='cpu', progress=False)
    faces = load_face_split(scale=4)
    out = [evaluate_label_inference(one, 1, device='cpu'), evaluate_label_distribution(many, 1, device='cpu'),
           evaluate_reconstruction(pix1, latent=4, ae_epochs=1, epochs=1, device='cpu'),
           evaluate_multi_reconstruction(pix, epochs=1, hidden=(16, 16, 16), n_generated=20, n_evaluated=2, device='cpu', progress=False),
           *evaluate_defences(pix1, pix, defences=[DEFENCES['round2']], device='cpu'),
           run_extraction('softmax', target=LogisticRegression(max_iter=2000).fit(*train), data=test, n_uniform=100),
           run_tree_extraction(tree=DecisionTreeClassifier(max_depth=3).fit(*train), data=test, n_uniform=100),
           run_map_inversion(model=DecisionTreeClassifier(max_depth=4).fit(*train), members=train, nonmembers=test, sensitive=2),
           run_face_inversion(recogniser=picture, split=(images, images), max_steps=5),
           steal_and_invert(faces, train_face_model('softmax', faces, epochs=5, progress=False), n_uniform=100),
           run_exfiltration('lsb', n_secrets=2, data=(Data(*images), Data(*images)), epochs=1, hidden=8),
           run_standalone('cancer', model=torch_model(train), members=train, nonmembers=test, kernels=2, attack_epochs=1, progress=False),
           run_federated(FederatedSetting(participants=2, records=30, rounds=2), observed=(2,), kernels=2, attack_epochs=1)]
    return out

def test_every_result_follows_the_protocol(results):
    assert len({type(r) for r in results}) == 13
    for r in results:
        assert isinstance(r, Result)
        rows = check_rows(r.rows())
        assert rows and all(tuple(row) == ROW_KEYS for row in rows)
        d = r.to_dict()
        again = json.loads(json.dumps(d, allow_nan=False))
        assert again == d, type(r).__name__
        assert type(r).from_dict(again).to_dict() == d, type(r).__name__  # the JSON rebuilds the result
        assert isinstance(r.table(), str) and r.table().count('\n') >= 2
