"""Bad input stopped at the door: every case below is refused before any work, with the library's own message
(a `ValueError`, `TypeError` or the library's own error types), never a silent wrong result, an internal assert or a
bare third-party error. The CLI's cases exit with status 2 and one line."""

import numpy as np
import pytest
import torch
import torch.nn as nn
from sklearn.linear_model import LogisticRegression
from sklearn.ensemble import RandomForestClassifier
from sklearn.tree import DecisionTreeClassifier

from updates_leak.cli import main
from updates_leak.results import check_rows
from updates_leak.core import chunks
from updates_leak.attacks import MembershipData, membership_metrics, tpr_at_fpr
from updates_leak.data import Data, as_data, check_range, disjoint_split
from updates_leak.exfiltration import LsbConfig, lsb_encode, run_exfiltration, secret_images, synthetic_inputs
from updates_leak.extraction import extract, load_task, make_model, run_extraction, solve_logits, uniform_queries
from updates_leak.extraction_retraining import retrain
from updates_leak.extraction_trees import Feature, run_tree_extraction, tree_api
from updates_leak.inversion_faces import image_split, load_face_split, mi_face, run_face_inversion
from updates_leak.inversion_map import binned_survey, check_prior, run_map_inversion
from updates_leak.membership_features import check_layers, membership_features, per_sample_gradients, train_nasr_attack
from updates_leak.membership_lira import run_loss_attack, run_reference_attacks
from updates_leak.membership_federated import FederatedSetting, run_federated
from updates_leak.membership_standalone import MembershipAttack, run_standalone
from updates_leak.models import MLP, fit, online_update
from updates_leak.oracle import Disclosure, Oracle, OracleInputError, QueryBudgetExceeded, WhiteBoxRequired
from updates_leak.updates import Scale, UpdateConfig, generate_updates, own_scale, prepare_experiment, sample_updating_sets
from updates_leak.updates_lde import evaluate_label_distribution, kl_divergence, transfer_gap
from updates_leak.updates_li import LabelInferenceAttack, evaluate_label_inference

X = np.random.default_rng(0).random((40, 4)).astype(np.float32)
Y = np.arange(40) % 2
DATA = as_data((X, Y))
NAN = X.copy(); NAN[3, 1] = np.nan
LIN = nn.Sequential(nn.Linear(4, 2))
SK = LogisticRegression().fit(X, Y)
API = lambda **kw: Oracle(LIN, (4,), **kw)
IMG = Data(torch.rand(20, 1, 4, 4), torch.arange(20) % 2)
TINY = Scale(n_train=10, target_pool=10, epochs=1, lr=0.1, n_shadow_updates=4, n_target_updates=2, probe_size=5)
UPDATES = None  # filled lazily by `updates_experiment`

def updates_experiment():
    global UPDATES
    if UPDATES is None: UPDATES = prepare_experiment('toy', TINY, set_size=2, model=LIN, data=DATA, device='cpu', progress=False)
    return UPDATES

CASES = [
    # --- the data boundary ---
    ('data: NaN input', lambda: as_data((NAN, Y)), ValueError, 'NaN'),
    ('data: infinite input', lambda: as_data((np.full((2, 3), np.inf), [0, 1])), ValueError, 'NaN or infinite'),
    ('data: negative label', lambda: as_data((X[:2], [0, -1])), ValueError, '≥ 0'),
    ('data: label without a class name', lambda: Data(torch.zeros(2, 2), torch.tensor([0, 42]), classes=['a', 'b']), ValueError, 'no class name'),
    ('data: fractional labels', lambda: as_data((X[:2], [0.5, 1])), ValueError, 'whole numbers'),
    ('data: string inputs', lambda: as_data((np.array([['a']]), [0])), TypeError, 'numeric'),
    ('data: one value per record', lambda: as_data((np.zeros(3), [0, 1, 0])), ValueError, 'N × features'),
    ('data: a label matrix', lambda: as_data((X[:2], np.zeros((2, 2), int))), ValueError, 'one label per input'),
    ('data: lengths differ', lambda: as_data((X[:3], [0, 1])), ValueError, '3 inputs but 2 labels'),
    ('data: not a pair', lambda: as_data(X), TypeError, r'an \(x, y\) pair'),
    ('data: boolean labels', lambda: as_data((X[:2], np.array([True, False]))), TypeError, 'class indices'),
    ('data: complex inputs', lambda: as_data((np.zeros((2, 2), complex), [0, 1])), TypeError, 'numeric|real-valued'),
    ('range: pixels outside [0, 1]', lambda: check_range(torch.tensor([[2.]]), 0, high=1, needs='A_SSR'), ValueError, 'A_SSR needs inputs'),
    ('split: negative size', lambda: disjoint_split(10, {'a': -1}), ValueError, 'must be a whole number ≥ 0'),
    ('split: too large', lambda: disjoint_split(10, {'a': 11}), ValueError, 'only 10 are available'),
    ('split: two rests', lambda: disjoint_split(10, {'a': None, 'b': None}), ValueError, 'only one split'),
    ('split: fractional size', lambda: disjoint_split(10, {'a': 2.5}), ValueError, 'whole number'),
    ('chunks: zero size', lambda: chunks(10, 0), ValueError, 'chunk size must be a whole number ≥ 1'),
    # --- the oracle ---
    ('oracle: unknown output', lambda: API(output='probs'), ValueError, 'output must be one of'),
    ('oracle: top-k without k', lambda: API(output='top-k'), ValueError, 'positive top_k'),
    ('oracle: negative decimals', lambda: API(decimals=-1), ValueError, 'non-negative'),
    ('oracle: NaN noise', lambda: API(noise_std=float('nan')), ValueError, 'noise_std'),
    ('oracle: negative noise', lambda: API(noise_std=-0.1), ValueError, 'noise_std'),
    ('oracle: negative budget', lambda: API(budget=-5), ValueError, 'budget must be a whole number ≥ 0'),
    ('oracle: reversed range', lambda: API(value_range=(1, 0)), ValueError, 'low < high'),
    ('oracle: NaN range', lambda: API(value_range=(0, float('nan'))), ValueError, 'low < high'),
    ('oracle: no input shape', lambda: Oracle(LIN), ValueError, 'input_shape is needed'),
    ('oracle: not a model', lambda: Oracle(42, (4,)), TypeError, 'cannot attack a int'),
    ('oracle: NaN query', lambda: API()(torch.full((1, 4), float('nan'))), OracleInputError, 'NaN'),
    ('oracle: wrong query shape', lambda: API()(torch.rand(2, 5)), OracleInputError, r'shape \(N, 4\)'),
    ('oracle: query out of range', lambda: API()(torch.full((1, 4), 2.)), OracleInputError, r'must lie in \[0.0, 1.0\]'),
    ('oracle: a single query unbatched', lambda: API()(torch.rand(4)), OracleInputError, 'batch of one'),
    ('oracle: version that does not exist', lambda: API()(torch.rand(1, 4), version=3), IndexError, 'does not exist'),
    ('oracle: over the budget', lambda: API(budget=2)(torch.rand(3, 4)), QueryBudgetExceeded, 'needs 3 queries'),
    ('oracle: updating an estimator', lambda: Oracle(SK).update(DATA), WhiteBoxRequired, 'scikit-learn estimator'),
    ('oracle: update with NaN lr', lambda: API().update(DATA, lr=float('nan')), ValueError, 'lr must be a positive number'),
    ('oracle: a function answering logits', lambda: Oracle(lambda x: torch.randn(len(x), 2), (4,))(torch.rand(2, 4)), ValueError, 'must return posteriors'),
    ('oracle: a function answering the wrong number', lambda: Oracle(lambda x: torch.ones(1, 2) / 2, (4,))(torch.rand(3, 4)), ValueError, 'N × classes'),
    ('disclosure: top-k of zero', lambda: Disclosure('top-k', top_k=0), ValueError, 'positive top_k'),
    # --- training and online updates ---
    ('fit: negative epochs', lambda: fit(nn.Linear(4, 2), DATA, epochs=-1, progress=False), ValueError, 'epochs'),
    ('fit: zero batch size', lambda: fit(nn.Linear(4, 2), DATA, batch_size=0, progress=False), ValueError, 'batch_size'),
    ('fit: NaN learning rate', lambda: fit(nn.Linear(4, 2), DATA, lr=float('nan'), progress=False), ValueError, 'lr must be a positive number'),
    ('fit: negative learning rate', lambda: fit(nn.Linear(4, 2), DATA, lr=-1., progress=False), ValueError, 'lr must be a positive number'),
    ('fit: unknown optimiser', lambda: fit(nn.Linear(4, 2), DATA, optimizer='lbfgs', progress=False), ValueError, "'sgd' or 'adam'"),
    ('fit: empty data', lambda: fit(nn.Linear(4, 2), DATA.subset([]), progress=False), ValueError, 'empty'),
    ('update: empty set', lambda: online_update(LIN, DATA.subset([])), ValueError, 'empty'),
    ('update: negative momentum', lambda: online_update(LIN, DATA, momentum=-0.5), ValueError, 'momentum'),
    ('update: noise without clipping', lambda: UpdateConfig(noise_multiplier=1.), ValueError, 'clip_norm'),
    ('update: zero clipping norm', lambda: UpdateConfig(clip_norm=0.), ValueError, 'clip_norm must be positive'),
    ('update config: zero epochs', lambda: UpdateConfig(epochs=0), ValueError, 'epochs'),
    ('update config: NaN lr', lambda: UpdateConfig(lr=float('nan')), ValueError, 'lr must be a positive number'),
    # --- Updates-Leak ---
    ('updates: empty sets', lambda: generate_updates(LIN, DATA, sets=torch.empty(2, 0, dtype=torch.long), probe=DATA.x[:3], progress=False), ValueError, 'n ≥ 1'),
    ('updates: negative index', lambda: generate_updates(LIN, DATA, sets=torch.tensor([[-1]]), probe=DATA.x[:3], progress=False), ValueError, 'index'),
    ('updates: index past the pool', lambda: generate_updates(LIN, DATA, sets=torch.tensor([[40]]), probe=DATA.x[:3], progress=False), ValueError, 'index'),
    ('updates: fractional indices', lambda: generate_updates(LIN, DATA, sets=torch.tensor([[0.5]]), probe=DATA.x[:3], progress=False), TypeError, 'integer'),
    ('updates: NaN probe', lambda: generate_updates(LIN, DATA, sets=torch.tensor([[0]]), probe=torch.full((2, 4), float('nan')), progress=False), ValueError, 'NaN'),
    ('updates: probe of another shape', lambda: generate_updates(LIN, DATA, sets=torch.tensor([[0]]), probe=torch.rand(2, 5), progress=False), ValueError, 'probe'),
    ('updates: no probes', lambda: generate_updates(LIN, DATA, sets=torch.tensor([[0]]), probe=torch.rand(0, 4), progress=False), ValueError, 'probe'),
    ('updates: negative workers', lambda: generate_updates(LIN, DATA, sets=torch.tensor([[0]]), probe=DATA.x[:3], workers=-1, progress=False), ValueError, 'workers'),
    ('updates: zero chunk', lambda: generate_updates(LIN, DATA, sets=torch.tensor([[0]]), probe=DATA.x[:3], chunk=0, progress=False), ValueError, 'chunk'),
    ('updates: zero group', lambda: generate_updates(LIN, DATA, sets=torch.tensor([[0]]), probe=DATA.x[:3], group=0, progress=False), ValueError, 'group'),
    ('updating sets: empty sets', lambda: sample_updating_sets(10, 3, set_size=0), ValueError, 'at least one sample'),
    ('updating sets: larger than the pool', lambda: sample_updating_sets(10, 3, set_size=11), ValueError, 'exceeds the pool'),
    ('updating sets: negative count', lambda: sample_updating_sets(10, -1, set_size=2), ValueError, 'n_sets'),
    ('scale: negative probe', lambda: Scale(10, 10, epochs=1, lr=0.1, n_shadow_updates=10, n_target_updates=10, probe_size=-1), ValueError, 'probe_size'),
    ('scale: zero epochs', lambda: Scale(10, 10, epochs=0, lr=0.1, n_shadow_updates=10, n_target_updates=10), ValueError, 'epochs'),
    ('scale: NaN lr', lambda: Scale(10, 10, epochs=1, lr=float('nan'), n_shadow_updates=10, n_target_updates=10), ValueError, 'lr'),
    ('scale: no target updates', lambda: Scale(10, 10, epochs=1, lr=0.1, n_shadow_updates=10, n_target_updates=0), ValueError, 'n_target_updates'),
    ('experiment: zero set size', lambda: prepare_experiment(set_size=0), ValueError, 'at least 1'),
    ('experiment: no shadow model', lambda: prepare_experiment(n_shadow_models=0), ValueError, 'at least one shadow model'),
    ('experiment: unknown dataset', lambda: prepare_experiment('imagenet'), ValueError, 'unknown dataset'),
    ('experiment: probe larger than the test set', lambda: prepare_experiment('mnist-embedded', Scale(100, 100, epochs=1, lr=0.1, n_shadow_updates=10, n_target_updates=10, probe_size=10 ** 9)), ValueError, 'a probing set of 1000000000'),
    ('experiment: own model without data', lambda: prepare_experiment(model=LIN), ValueError, 'records from its domain'),
    ('experiment: data without a model', lambda: prepare_experiment(data=DATA), ValueError, 'go with `model`'),
    ('experiment: too little own data', lambda: prepare_experiment(model=LIN, data=DATA.subset(range(20))), ValueError, 'at least 50 records'),
    ('experiment: a function as target', lambda: prepare_experiment(model=lambda x: x, data=DATA), WhiteBoxRequired, 'Updates-Leak'),
    ('experiment: set larger than the pool', lambda: prepare_experiment(model=LIN, data=DATA, scale=TINY, set_size=50, progress=False), ValueError, 'exceeds the updating pools'),
    ('A_LI: no attack model', lambda: evaluate_label_inference(updates_experiment(), n_attack_models=0), ValueError, 'at least one attack model'),
    ('A_LI: updates of another probe set', lambda: LabelInferenceAttack(3, 2).infer(updates_experiment().target_updates), ValueError, 'reads δ of 3 values'),
    ('A_LDE: no attack model', lambda: evaluate_label_distribution(updates_experiment(), n_attack_models=0), ValueError, 'at least one attack model'),
    ('A_LDE: unknown inputs', lambda: evaluate_label_distribution(updates_experiment(), inputs='logits'), ValueError, 'inputs must be one of'),
    ('A_LDE: unknown sign', lambda: evaluate_label_distribution(updates_experiment(), sign='up'), ValueError, 'sign must be'),
    ('A_LDE: held-out share outside (0, 1)', lambda: transfer_gap(updates_experiment(), held_out=1.5), ValueError, 'strictly between 0 and 1'),
    ('own scale: too few records', lambda: own_scale(10), ValueError, 'at least 50 records'),
    # --- extraction ---
    ('extract: unknown method', lambda: extract(API(), 'softmax', n_features=4, n_classes=2, n_queries=10, method='svd'), ValueError, 'method must be one of'),
    ('extract: exact solving of an MLP', lambda: extract(API(), 'mlp', n_features=4, n_classes=2, n_queries=10, method='logits'), ValueError, 'solves linear models'),
    ('extract: a label-only API', lambda: extract(API(output='label'), 'softmax', n_features=4, n_classes=2, n_queries=10), ValueError, 'labels only'),
    ('extract: too few queries', lambda: extract(API(), 'softmax', n_features=4, n_classes=2, n_queries=2), ValueError, 'budget must be at least'),
    ('extract: unknown model family', lambda: make_model('svm', 4, n_classes=2), ValueError, 'unknown model kind'),
    ('extract: binary model for three classes', lambda: make_model('lr', 4, n_classes=3), ValueError, "'lr' is binary"),
    ('extract: NaN confidences', lambda: solve_logits(torch.rand(6, 4, dtype=torch.float64), torch.full((6, 2), float('nan'), dtype=torch.float64)), ValueError, 'NaN'),
    ('extract: zero confidences', lambda: solve_logits(torch.rand(6, 4, dtype=torch.float64), torch.tensor([[1., 0.]] * 6, dtype=torch.float64)), ValueError, 'confidences are 0'),
    ('extract: an impossible budget', lambda: run_extraction('softmax', target=LIN, data=DATA, budget=10 ** 9), ValueError, 'memory'),
    ('extract: own data without target', lambda: run_extraction('softmax', data=DATA), ValueError, 'give the model as `target`'),
    ('extract: zero uniform inputs', lambda: run_extraction('softmax', target=LIN, data=DATA, n_uniform=0), ValueError, 'n_uniform'),
    ('extract: negative queries', lambda: uniform_queries(-1, 4), ValueError, 'queries'),
    ('task: unknown name', lambda: load_task('german-credit'), ValueError, 'unknown task'),
    ('task: training share above 1', lambda: load_task('iris', train_fraction=1.5), ValueError, 'strictly between 0 and 1'),
    ('task: training share of 0', lambda: load_task('iris', train_fraction=0.), ValueError, 'strictly between 0 and 1'),
    ('retrain: unknown strategy', lambda: retrain(API(output='label'), 4, n_classes=2, n_queries=10, strategy='random'), ValueError, 'strategy must be'),
    ('trees: unknown variant', lambda: run_tree_extraction(variant='sideways'), ValueError, "'path-finding' or 'top-down'"),
    ('trees: own tree without data', lambda: run_tree_extraction(tree=DecisionTreeClassifier().fit(X, Y)), ValueError, 'test records'),
    ('trees: data of another width', lambda: run_tree_extraction(tree=DecisionTreeClassifier().fit(X, Y), data=(X[:, :3], Y)), ValueError, 'reads 4 features'),
    ('trees: a random forest', lambda: run_tree_extraction(tree=RandomForestClassifier(n_estimators=2).fit(X, Y), data=(X, Y)), ValueError, 'an ensemble'),
    ('trees: incomplete query refused', lambda: tree_api(DecisionTreeClassifier().fit(X, Y), [Feature(f'x{j}') for j in range(4)], incomplete=False)(np.full((1, 4), np.nan)), ValueError, 'NaN'),
    # --- inversion ---
    ('MAP: prior not summing to 1', lambda: check_prior([0.5, 0.6], 2), ValueError, 'sum to 1'),
    ('MAP: prior of the wrong length', lambda: check_prior([1.], 2), ValueError, 'one probability per candidate'),
    ('MAP: one bin', lambda: binned_survey((X, Y), (X, Y), sensitive=0, n_bins=1), ValueError, 'n_bins'),
    ('MAP: sensitive column past the end', lambda: binned_survey((X, Y), (X, Y), sensitive=9), ValueError, 'does not exist'),
    ('MAP: unknown sensitive name', lambda: binned_survey((X, Y), (X, Y), sensitive='age', names=['a', 'b', 'c', 'd']), ValueError, 'not in list|unknown'),
    ('MAP: model without members', lambda: run_map_inversion(model=SK), ValueError, 'members, non-members'),
    ('MI-FACE: negative class', lambda: mi_face(nn.Sequential(nn.Flatten(), nn.Linear(16, 2)), [-1], image_shape=(1, 4, 4)), ValueError, 'class'),
    ('MI-FACE: fractional class', lambda: mi_face(nn.Sequential(nn.Flatten(), nn.Linear(16, 2)), [0.7], image_shape=(1, 4, 4)), TypeError, 'class'),
    ('MI-FACE: class past the last', lambda: mi_face(nn.Sequential(nn.Flatten(), nn.Linear(16, 2)), [2], image_shape=(1, 4, 4)), ValueError, 'class'),
    ('MI-FACE: no class', lambda: mi_face(nn.Sequential(nn.Flatten(), nn.Linear(16, 2)), [], image_shape=(1, 4, 4)), ValueError, 'at least one label'),
    ('MI-FACE: zero step', lambda: mi_face(nn.Sequential(nn.Flatten(), nn.Linear(16, 2)), [0], image_shape=(1, 4, 4), lr=0.), ValueError, 'lr'),
    ('MI-FACE: negative steps', lambda: mi_face(nn.Sequential(nn.Flatten(), nn.Linear(16, 2)), [0], image_shape=(1, 4, 4), max_steps=-1), ValueError, 'max_steps'),
    ('MI-FACE: an estimator', lambda: run_face_inversion(recogniser=SK, split=(IMG, IMG)), WhiteBoxRequired, 'MI-FACE'),
    ('MI-FACE: splits of other shapes', lambda: image_split(IMG, (torch.rand(4, 1, 5, 5), [0, 1, 0, 1])), ValueError, 'differ in shape'),
    ('faces: ten training images of ten', lambda: load_face_split(n_train=10), ValueError, 'n_train'),
    ('faces: zero downsampling', lambda: load_face_split(scale=0), ValueError, 'scale'),
    # --- exfiltration ---
    ('exfiltration: unknown attack', lambda: run_exfiltration('steg'), ValueError, 'attack must be one of'),
    ('exfiltration: zero epochs', lambda: run_exfiltration('lsb', epochs=0, data=(IMG, IMG)), ValueError, 'epochs'),
    ('exfiltration: negative weight', lambda: run_exfiltration('cor', lam=-5., data=(IMG, IMG)), ValueError, 'lam'),
    ('exfiltration: no secret', lambda: secret_images(IMG, 0), ValueError, 'between 1 and'),
    ('exfiltration: bits per parameter 0', lambda: lsb_encode(MLP([16, 4, 2]), torch.zeros(8, dtype=torch.uint8), b=0), ValueError, 'between 1 and 23'),
    ('exfiltration: bits per parameter 24', lambda: lsb_encode(MLP([16, 4, 2]), torch.zeros(8, dtype=torch.uint8), b=24), ValueError, 'between 1 and 23'),
    ('exfiltration: no pixel on', lambda: synthetic_inputs(3, (1, 4, 4), on_pixels=0), ValueError, 'between 1 and 16'),
    ('exfiltration: data outside [0, 1]', lambda: run_exfiltration('lsb', data=((X * 5, Y), (X, Y))), ValueError, 'needs inputs in'),
    ('exfiltration: too many secrets', lambda: run_exfiltration('sgn', n_secrets=20, data=(IMG, IMG), hidden=2), ValueError, 'exceed what'),
    # --- membership ---
    ('membership: unknown variant', lambda: run_standalone(variants=('grey-box',)), ValueError, 'unknown attack variants'),
    ('membership: unknown target', lambda: run_standalone('imagenet'), ValueError, 'unknown membership target'),
    ('membership: members without non-members', lambda: run_standalone(model=LIN, members=DATA), ValueError, 'members and non-members'),
    ('membership: too few records', lambda: run_standalone(model=LIN, members=DATA.subset([0, 1]), nonmembers=DATA.subset([2, 3])), ValueError, 'at least 4'),
    ('membership: unknown layer', lambda: check_layers(MLP([4, 8, 2]), ['fc9']), ValueError, 'choose from'),
    ('membership: a record in both sets', lambda: MembershipAttack(LIN, DATA.subset([0, 1, 2]), nonmembers=DATA.subset([2, 3, 4]), black_box=True), ValueError, 'both known members and known non-members'),
    ('membership: only members', lambda: train_nasr_attack({'log_loss': torch.randn(4, 1)}, torch.ones(4, dtype=torch.bool), progress=False), ValueError, 'both members and non-members'),
    ('membership: NaN features', lambda: train_nasr_attack({'log_loss': torch.tensor([[0.], [float('nan')]])}, torch.tensor([True, False]), progress=False), ValueError, 'NaN'),
    ('membership: blocks of different lengths', lambda: train_nasr_attack({'log_loss': torch.randn(4, 1), 'output': torch.randn(3, 2)}, torch.arange(4) < 2, progress=False), ValueError, 'records'),
    ('membership: zero kernels', lambda: train_nasr_attack({'log_loss': torch.randn(4, 1)}, torch.arange(4) < 2, kernels=0, progress=False), ValueError, 'kernels'),
    ('membership: zero epochs', lambda: train_nasr_attack({'log_loss': torch.randn(4, 1)}, torch.arange(4) < 2, epochs=0, progress=False), ValueError, 'epochs'),
    ('federated: one participant', lambda: run_federated(FederatedSetting(participants=1)), ValueError, 'participants must be a whole number ≥ 2'),
    ('federated: rounds not run', lambda: run_federated(observed=(0, 40)), ValueError, 'subset of 1..30'),
    ('federated: unknown attacker', lambda: run_federated(attacker='server'), ValueError, 'attacker must be one of'),
    ('federated: a participant isolating', lambda: run_federated(attacker='local', mode='isolating'), ValueError, 'only the server'),
    ('federated: zero records', lambda: run_federated(FederatedSetting(records=0)), ValueError, 'records'),
    # --- records that do not fit the model, and values that mean nothing ---
    ('data: text labels', lambda: as_data((X[:2], ['cat', 'dog'])), TypeError, 'class indices, got text'),
    ('extract: records narrower than the model', lambda: run_extraction('softmax', target=LIN, data=(X[:, :3], Y)), ValueError, 'does not take the test records'),
    ('extract: labels beyond the model', lambda: run_extraction('softmax', target=LIN, data=(X, np.arange(40) % 5)), ValueError, 'answers with 2 classes'),
    ('MI-FACE: images the model does not take', lambda: mi_face(nn.Sequential(nn.Flatten(), nn.Linear(16, 2)), [0], image_shape=(1, 5, 5)), ValueError, 'does not take images'),
    ('MI-FACE: pixels of 300', lambda: image_split((IMG.x * 300, IMG.y), IMG), ValueError, r'needs inputs in \[0, 1\]'),
    ('gradients: labels beyond the model', lambda: per_sample_gradients(LIN, torch.rand(5, 4), y=torch.full((5,), 9), layers=['0']), ValueError, 'answers with 2 classes'),
    ('gradients: lengths differ', lambda: per_sample_gradients(LIN, torch.rand(5, 4), y=torch.zeros(4, dtype=torch.long), layers=['0']), ValueError, '5 inputs but 4 labels'),
    ('membership features: records of another width', lambda: membership_features(LIN, (X[:, :3], Y)), ValueError, 'does not take the records'),
    ('loss attack: labels beyond the model', lambda: run_loss_attack(LIN, MembershipData(members=(X[:10], np.arange(10) % 5), nonmembers=(X[10:20], Y[10:20]), population=(X[20:], Y[20:]))), ValueError, 'answers with 2 classes'),
    ('updates: labels beyond the model', lambda: prepare_experiment('toy', TINY, set_size=2, model=LIN, data=as_data((X, np.arange(40) % 5)), device='cpu', progress=False), ValueError, 'answers with 2 classes'),
    ('reference attacks: an estimator', lambda: run_reference_attacks(SK, DATA, pool=20), TypeError, 'torch copies'),
    ('metrics: negative FPR bound', lambda: tpr_at_fpr(np.random.rand(10), np.arange(10) < 5, fpr_max=-0.1), ValueError, 'fpr_max'),
    ('metrics: lengths differ', lambda: membership_metrics(np.random.rand(10), np.arange(9) < 5), ValueError, 'one score and one truth value per record'),
    ('KL: negative probabilities', lambda: kl_divergence(torch.tensor([[1.5, -0.5]]), torch.tensor([[0.5, 0.5]])), ValueError, 'probability distribution'),
    ('KL: distributions of other lengths', lambda: kl_divergence(torch.tensor([[1., 0.]]), torch.tensor([[0.5, 0.25, 0.25]])), ValueError, 'differ in shape'),
    ('exfiltration: 40 bits per parameter in the config', lambda: LsbConfig(b=40), ValueError, 'between 1 and 23'),
    ('models: a zero-width layer', lambda: MLP([4, 0, 2]), ValueError, 'layer width 1 must be a whole number'),
    ('models: dropout of 1.5', lambda: MLP([4, 3, 2], dropout=1.5), ValueError, r'dropout must lie in \[0, 1\)'),
    ('MI-FACE: a reversed pixel range', lambda: mi_face(nn.Sequential(nn.Flatten(), nn.Linear(16, 2)), [0], image_shape=(1, 4, 4), value_range=(1, 0)), ValueError, 'low < high'),
    # --- the result protocol ---
    ('rows: a missing key', lambda: check_rows([{'attack': 'x'}]), ValueError, 'expected'),
    ('rows: a NaN value', lambda: check_rows([dict(attack='a', target='t', setting='', metric='m', method='this library', value=float('nan'))]), ValueError, 'finite'),
]

@pytest.mark.parametrize('name, call, error, message', CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused(name, call, error, message):
    with pytest.raises(error, match=message) as e: call()
    assert not isinstance(e.value, AssertionError)

CLI_CASES = [
    ('demo', '--n_attack_models', '-1'), ('demo', '--seed', 'x'), ('demo', '--bogus'), ('demo', '--set_size', '5'),
    ('updates', '--attack', 'bogus'), ('updates', '--n_shadow_models', '0'), ('updates', '--probe_size', '-1'), ('updates', '--attack', 'lde', '--set_size', '0'),
    ('updates', '--dataset', 'imagenet'), ('updates', '--defence', 'encryption'), ('updates', '--attack', 'msr', '--evaluated', '1'),
    ('updates', '--attack', 'lde', '--inputs', 'logits'), ('updates', '--inputs', 'log-ratio'),
    ('extract', '--model', 'svm'), ('extract', '--budget', '-1'), ('extract', '--budget', 'nan'), ('extract', '--queries', '-1'), ('extract', '--rounding', '-1'),
    ('extract', '--attack', 'paths', '--rounding', '2'), ('extract', '--attack', 'steal-invert', '--model', 'cnn'),
    ('invert', 'tree'), ('invert', '--attack', 'mi-face', '--scale', '0'), ('invert', '--attack', 'mi-face', '--lr', '0'), ('invert', '--dataset', 'census'),
    ('exfiltrate', '--attack', 'cor', '--lam', '-5'), ('exfiltrate', '--epochs', '0'), ('exfiltrate', '--attack', 'steg'), ('exfiltrate', '--secrets', '0'),
    ('membership', '--epochs', 'many'), ('membership', '--attack', 'federated', '--participants', '1'), ('membership', '--setting', 'distributed'),
    ('membership', '--attack', 'federated', '--mode', 'eavesdropping'), ('membership', '--attack', 'federated', '--observed', '0,40'),
    ('membership', '--variants', 'grey-box'), ('extract', '--max_iter', '0'),
    ('bench', 'everything'), ('bench', 'shadow-updates', '--workers', '-1'), ('bench', 'shadow-updates', '--n_updates', '0'),
    ('bench', 'audit', '--n_updates', '5'),
    ('membership', '--attack', 'nasr', '--layers', 'bogus'), ('exfiltrate', '--attack', 'lsb', '--b', '40'),
    ('membership', '--attack', 'loss', '--epochs', '3'), ('exfiltrate', '--attack', 'cor', '--b', '4'),
]

@pytest.mark.parametrize('argv', CLI_CASES, ids=[' '.join(a) for a in CLI_CASES])
def test_bad_command_lines_exit_2_before_any_work(argv, tmp_path, capsys):
    with pytest.raises(SystemExit) as e: main([*argv, '--out', str(tmp_path/'o')])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert 'Traceback' not in err and err.strip().splitlines()[-1].startswith(f'updates-leak {argv[0]}')
    assert not (tmp_path/'o').exists() or not any((tmp_path/'o').iterdir())
