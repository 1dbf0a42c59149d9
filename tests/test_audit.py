"""`updates-leak audit` on models in each of the four formats, bad input stopped before any work, and the
report's JSON through the result protocol."""
import hashlib, json, pickle, textwrap

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from updates_leak.attacks import OwnRecords
from updates_leak.updates_defences import own_updates_experiment
from updates_leak.audit import AuditResult, FAMILIES, audit, low_byte_statistic
from updates_leak.loading import load_model, load_records
from updates_leak.cli import main
from updates_leak.results import check_rows
from updates_leak.core import set_seed
from updates_leak.data import as_data
from updates_leak.exfiltration import lsb_encode, secret_images, to_bits
from updates_leak.models import fit

USER_CODE = '''
import numpy as np, torch, torch.nn as nn
from pathlib import Path
from safetensors.torch import load_file

class Net(nn.Module):
    "The user's own architecture, which the library has never seen."
    def __init__(self, hidden=32, classes=10):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, hidden), nn.LayerNorm(hidden), nn.ReLU(), nn.Linear(hidden, classes))
    def forward(self, x): return self.body(x)

_net = None
def predict(x):
    "A predictions-only API: posteriors for a batch."
    global _net
    if _net is None:
        _net = Net(); _net.load_state_dict(load_file(str(Path(__file__).parent / 'net.safetensors'))); _net.eval()
    with torch.no_grad(): return _net(torch.as_tensor(x, dtype=torch.float32)).softmax(1).numpy()

def logits(x):
    "Not posteriors: what a careless API returns."
    return np.asarray(x)[:, :10] * 5 - 2

class Exploit:
    def __reduce__(self):
        import os
        return (os.system, (f"touch {Path(__file__).parent / 'PWNED'}",))
'''


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    "A folder as a user has it: their module, a trained torch model in safetensors, a scikit-learn model in skops, an ONNX export, and records."
    from safetensors.torch import save_file
    root = tmp_path_factory.mktemp('user')
    (root/'usermodels.py').write_text(textwrap.dedent(USER_CODE))
    digits = load_digits()
    x, y = (digits.data / 16).astype(np.float32), digits.target
    order = np.random.default_rng(0).permutation(len(y))
    tr, te = order[:300], order[300:600]
    np.savez(root/'train.npz', x=x[tr], y=y[tr]); np.savez(root/'test.npz', x=x[te], y=y[te])
    import sys; sys.path.insert(0, str(root))
    import usermodels
    set_seed(0)
    net = usermodels.Net()
    fit(net, (x[tr], y[tr]), epochs=30, lr=1e-2, optimizer='adam', device='cpu', progress=False)
    net.eval()
    save_file(net.state_dict(), str(root/'net.safetensors'))
    import skops.io as sio
    sio.dump(LogisticRegression(max_iter=500).fit(x[tr], y[tr]), root/'logreg.skops')
    torch.onnx.export(net, torch.zeros(1, 64), str(root/'net.onnx'), input_names=['x'], output_names=['logits'],
                      dynamic_axes={'x': {0: 'n'}, 'logits': {0: 'n'}}, dynamo=False)
    return root


def run_cli(workspace, monkeypatch, *args):
    "Run `updates-leak audit` in the user's folder; the exit status (0 when it returns)."
    monkeypatch.chdir(workspace)
    try: main(['audit', *args])
    except SystemExit as e: return e.code
    return 0


@pytest.mark.parametrize('model', [
    ['--model', 'net.safetensors', '--arch', 'usermodels:Net', '--arch_kwargs', '{"hidden": 32}'],
    ['--model', 'logreg.skops'],
    ['--model', 'net.onnx'],
    ['--predict', 'usermodels:predict'],
], ids=['safetensors', 'skops', 'onnx', 'function'])
def test_the_cli_audits_each_model_format(workspace, monkeypatch, model, capsys):
    out = workspace/f'out-{model[1].replace(":", "-")}'
    families = [] if model[1] == 'net.safetensors' else ['--families', 'membership,extraction,exfiltration']
    assert run_cli(workspace, monkeypatch, 'train.npz', 'test.npz', *model, '--quick', '--out', str(out), '--cache', '', '--device', 'cpu', *families) == 0
    report = json.loads((out/'audit.json').read_text())
    page = (out/'audit.html').read_text()
    assert page.startswith('<!doctype html>') and 'http://' not in page and 'https://' not in page and '<script' not in page
    assert 'data:image/png;base64,' in page and (out/'audit.png').exists()
    sections = {s['family']: s for s in report['sections']}
    assert not sections['membership']['skipped'] and not sections['extraction']['skipped']
    assert sections['exfiltration']['skipped'] == (model[1] != 'net.safetensors')  # the parameters are needed
    if model[1] == 'net.safetensors': assert set(sections) == set(FAMILIES) and not sections['updates']['skipped']
    assert 'membership' in capsys.readouterr().out


@pytest.mark.parametrize('args,message', [
    (['--model', 'net.safetensors'], 'give the architecture with --arch'),
    (['--model', 'net.safetensors', '--arch', 'usermodels:Nope'], "has no 'Nope'"),
    (['--model', 'net.safetensors', '--arch', 'usermodels:Net', '--arch_kwargs', '{"hidden": 16}'], 'do not fit usermodels:Net'),
    (['--model', 'net.safetensors', '--arch', 'usermodels:Net', '--arch_kwargs', '[1]'], 'must be a JSON object'),
    (['--model', 'net.safetensors', '--arch', 'not a path'], 'package.module:name'),
    (['--model', 'missing.safetensors', '--arch', 'usermodels:Net'], 'does not exist'),
    (['--model', 'net.onnx', '--predict', 'usermodels:predict'], 'one of them'),
    (['--predict', 'usermodels:logits'], 'must return posteriors'),
    (['--model', 'net.safetensors', '--arch', 'usermodels:Net', '--families', 'membership,gossip'], 'unknown --families'),
], ids=['no arch', 'unknown arch', 'weights do not fit', 'kwargs not an object', 'arch not an import path', 'missing file',
        'two models', 'logits as posteriors', 'unknown family'])
def test_bad_models_are_refused_in_one_line(workspace, monkeypatch, capsys, args, message):
    assert run_cli(workspace, monkeypatch, 'train.npz', 'test.npz', *args, '--out', str(workspace/'bad'), '--cache', '') == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and 'Traceback' not in err


def test_records_that_do_not_fit_the_model_are_refused(workspace, monkeypatch, capsys):
    x = np.random.default_rng(1).random((40, 30)).astype(np.float32)
    np.savez(workspace/'narrow.npz', x=x, y=np.arange(40) % 10)
    np.savez(workspace/'many_classes.npz', x=np.random.default_rng(1).random((40, 64)).astype(np.float32), y=np.arange(40) % 12)
    model = ['--model', 'net.safetensors', '--arch', 'usermodels:Net']
    for test, message in (('narrow.npz', 'differ in shape'), ('many_classes.npz', 'answers with 10 classes')):
        assert run_cli(workspace, monkeypatch, 'train.npz', test, *model, '--out', str(workspace/'bad'), '--cache', '') == 2
        assert message in capsys.readouterr().err
    assert run_cli(workspace, monkeypatch, 'narrow.npz', 'narrow.npz', *model, '--out', str(workspace/'bad'), '--cache', '') == 2
    assert 'does not take the training records' in capsys.readouterr().err


@pytest.mark.parametrize('name', ['payload.safetensors', 'payload.pt', 'payload.pkl'])
def test_a_pickle_offered_as_weights_does_not_run(workspace, monkeypatch, capsys, name):
    import usermodels
    (workspace/name).write_bytes(pickle.dumps(usermodels.Exploit()))
    (workspace/'PWNED').unlink(missing_ok=True)
    assert run_cli(workspace, monkeypatch, 'train.npz', 'test.npz', '--model', name, '--arch', 'usermodels:Net', '--out', str(workspace/'bad')) == 2
    assert 'never unpickled' in capsys.readouterr().err
    assert not (workspace/'PWNED').exists()


def test_a_torch_save_file_is_refused(workspace, monkeypatch, capsys):
    torch.save({'w': torch.zeros(2)}, workspace/'weights.safetensors')
    assert run_cli(workspace, monkeypatch, 'train.npz', 'test.npz', '--model', 'weights.safetensors', '--arch', 'usermodels:Net', '--out', str(workspace/'bad')) == 2
    assert 'a zip archive (torch.save)' in capsys.readouterr().err


def test_an_unknown_skops_type_is_refused_with_its_name(workspace, monkeypatch, capsys):
    import skops.io as sio
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer
    import usermodels
    d = np.load(workspace/'train.npz')
    pipe = make_pipeline(FunctionTransformer(usermodels.logits), LogisticRegression(max_iter=200)).fit(d['x'], d['y'])
    sio.dump(pipe, workspace/'custom.skops')
    assert run_cli(workspace, monkeypatch, 'train.npz', 'test.npz', '--model', 'custom.skops', '--out', str(workspace/'bad')) == 2
    err = capsys.readouterr().err
    assert 'skops does not trust' in err and 'usermodels.logits' in err


def test_csv_records_need_their_label_column(workspace, monkeypatch, capsys):
    import pandas as pd
    d = np.load(workspace/'train.npz')
    pd.DataFrame(d['x'], columns=[f'f{i}' for i in range(64)]).assign(digit=d['y']).to_csv(workspace/'train.csv', index=False)
    assert run_cli(workspace, monkeypatch, 'train.csv', 'test.npz', '--model', 'logreg.skops', '--out', str(workspace/'bad')) == 2
    assert "no label column 'label'" in capsys.readouterr().err
    records = load_records(workspace/'train.csv', label='digit')
    assert records.columns[:2] == ['f0', 'f1'] and len(records.data) == 300


@pytest.fixture(scope='module')
def torch_audit(workspace):
    "A quick audit of the user's torch model through the API, with a cache."
    model = load_model(workspace/'net.safetensors', 'usermodels:Net')
    tr, te = load_records(workspace/'train.npz').data, load_records(workspace/'test.npz').data
    return model, tr, te, audit(model, tr, test=te, families=('membership', 'extraction'), quick=True, device='cpu', progress=False, cache_dir=workspace/'cache')


def test_the_audit_round_trips_through_the_result_protocol(torch_audit):
    *_, result = torch_audit
    d = json.loads(json.dumps(result.to_dict()))
    check_rows(d['rows'])
    assert AuditResult.from_dict(d).to_dict() == d
    assert [s['family'] for s in d['sections']] == ['membership', 'extraction']


def test_an_interrupted_audit_resumes_and_a_damaged_entry_is_recomputed(torch_audit, workspace):
    model, tr, te, first = torch_audit
    again = audit(model, tr, test=te, families=('membership', 'extraction'), quick=True, device='cpu', progress=False, cache_dir=workspace/'cache')
    assert [s.seconds for s in again.sections] == [s.seconds for s in first.sections]  # read back, not recomputed
    entry = next((workspace/'cache').glob('audit-*/membership.json'))
    entry.write_text(entry.read_text().replace('"auc', '"AUC', 1))
    with pytest.warns(UserWarning, match='damaged audit cache entry'):
        redone = audit(model, tr, test=te, families=('membership', 'extraction'), quick=True, device='cpu', progress=False, cache_dir=workspace/'cache')
    assert redone.sections[0].value == first.sections[0].value and redone.sections[0].seconds != first.sections[0].seconds


def test_a_forged_entry_is_not_served(torch_audit, workspace):
    "An edit with its digest recomputed, as anyone with write access could do, is refused: entries are signed."
    model, tr, te, first = torch_audit
    cache = workspace/'forged'
    audit(model, tr, test=te, families=('membership',), quick=True, device='cpu', progress=False, cache_dir=cache)
    entry = next(cache.glob('audit-*/membership.json'))
    stored = json.loads(entry.read_text())
    body = stored['section'].replace(json.dumps(first.sections[0].verdict), json.dumps('forged: no leakage at all'))
    assert body != stored['section']
    entry.write_text(json.dumps({'signature': hashlib.sha256(body.encode()).hexdigest(), 'section': body}))
    with pytest.warns(UserWarning, match='signature does not match'):
        again = audit(model, tr, test=te, families=('membership',), quick=True, device='cpu', progress=False,
                      cache_dir=cache)
    assert again.sections[0].verdict == first.sections[0].verdict


def test_the_low_byte_test_flags_an_lsb_encoded_model(torch_audit):
    model, tr, *_ = torch_audit
    images = as_data((tr.x.reshape(-1, 1, 8, 8), tr.y))
    secret = secret_images(images, 20)
    encoded = lsb_encode(load_model_copy(model), to_bits(secret), b=8)
    assert low_byte_statistic(encoded) > 20 * low_byte_statistic(model)
    assert audit(encoded, tr, test=tr, families=('exfiltration',), quick=True, device='cpu', progress=False).sections[0].verdict.startswith('flagged: the low-order bits')
    assert audit(model, tr, test=tr, families=('exfiltration',), quick=True, device='cpu', progress=False,
                 retrain_epochs=30, retrain_lr=1e-2).sections[0].verdict.startswith('no sign')


def load_model_copy(model):
    import copy
    return copy.deepcopy(model)


def test_the_callers_model_is_unchanged(torch_audit):
    model, tr, te, _ = torch_audit
    before = {k: v.clone() for k, v in model.state_dict().items()}
    audit(model, tr, test=te, families=('membership', 'updates', 'exfiltration'), quick=True, device='cpu', progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()) and not model.training
    assert all(p.requires_grad for p in model.parameters())


def test_bad_audit_arguments(torch_audit):
    model, tr, te, _ = torch_audit
    with pytest.raises(ValueError, match='unknown audit families'): audit(model, tr, test=te, families=('gossip',))
    with pytest.raises(ValueError, match='at least 8'): audit(model, tr, test=te.subset(torch.arange(4)))
    with pytest.raises(ValueError, match='not a table'): audit(model, as_data((tr.x.reshape(-1, 1, 8, 8), tr.y)), test=as_data((te.x.reshape(-1, 1, 8, 8), te.y)), sensitive=0)


def test_updates_on_the_records_given(torch_audit):
    "With `update`, the provider's updating pool is those records; the shadow side comes from the test records."
    model, tr, te, _ = torch_audit
    s = audit(model, tr, test=te.subset(torch.arange(200)), update=te.subset(torch.arange(200, 300)), families=('updates',), quick=True,
              device='cpu', progress=False).sections[0]
    assert not s.skipped and s.records == 600 and 'on 300 training, 200 test and 100 update records' in s.ran and 0 <= s.value <= 1
    _, exp = own_updates_experiment(model, OwnRecords(train=tr, test=te.subset(torch.arange(200)), update=te.subset(torch.arange(200, 300))),
                                    quick=True, device='cpu', progress=False)
    assert torch.equal(exp.setting.target_pool.x, te.x[200:300])
    with pytest.raises(ValueError, match='update records have shape'):
        audit(model, tr, test=te, update=as_data((torch.zeros(4, 3), torch.zeros(4, dtype=torch.long))), families=('updates',))


def test_membership_runs_every_registered_attack_the_model_allows(torch_audit, workspace):
    "The cheap registered attacks (Nasr, loss, QMIA) at --quick; LiRA and RMIA too otherwise; no reference attack for a predictions-only API."
    from updates_leak.attacks import OwnRecords, attack_spec
    from updates_leak.audit import run_planned
    import skops.io as sio
    model, tr, te, result = torch_audit
    attacks = {r['attack'] for r in result.sections[0].rows()}
    assert {'membership: loss', 'membership: qmia'} <= attacks and any('(Nasr)' in a for a in attacks) and 'membership: lira' not in attacks
    assert 'lira, rmia not run: left out at --quick' in result.sections[0].ran
    assert 'federated not run: it watches the rounds of a federation' in result.sections[0].ran
    logreg = sio.load(workspace/'logreg.skops', trusted=['sklearn.linear_model._logistic.LogisticRegression'])
    records, options = OwnRecords(train=tr, test=te), dict(seed=0, device='cpu', progress=False, cache_dir=None, recipe={'epochs': 2, 'lr': 1e-3})
    runs, why = run_planned(attack_spec('rmia'), lambda x: logreg.predict_proba(x.numpy()), records=records, quick=False, **options)
    assert not runs and why == 'a predictions-only model has no architecture to train models like it'
    runs, why = run_planned(attack_spec('lira'), logreg, records=records, quick=False, **options)
    assert why is None and runs[0].result.setting == 'K=8, online, global variance'
    assert runs[0].result.members == runs[0].result.nonmembers == 200  # as many members as test records, a population left over


def test_each_section_s_headline_is_the_number_its_verdict_rests_on(torch_audit):
    "The summary's headline is the verdict's own number, and the page states the rule that turned numbers into it."
    from updates_leak.report import audit_html
    *_, result = torch_audit
    for s in (s for s in result.sections if not s.skipped):
        assert s.rule and f"{s.headline.split(': ')[-1]} {s.value:.3g}" in s.verdict, (s.headline, s.value, s.verdict)
    page = audit_html(result)
    assert page.count('How the verdict is reached:') == len([s for s in result.sections if not s.skipped])
    assert '<th>option</th><th>value</th>' in page and '{&quot;families' not in page  # options as a table, not JSON


def test_the_exfiltration_headline_is_the_check_that_decided():
    from updates_leak.audit import LOW_BYTES, WEIGHT_KS, deciding_check
    check = lambda value, threshold: dict(value=value, threshold=threshold, flagged=value > threshold)
    assert deciding_check({WEIGHT_KS: check(0.3, 0.2), LOW_BYTES: check(0.05, 0.08)}) == WEIGHT_KS  # the one that fired
    assert deciding_check({WEIGHT_KS: check(0.3, 0.2), LOW_BYTES: check(4., 0.08)}) == LOW_BYTES  # the χ² first
    assert deciding_check({WEIGHT_KS: check(0.1, 0.2), LOW_BYTES: check(0.07, 0.08)}) == LOW_BYTES  # none: the nearest


def test_exposed_records_are_ranked_by_an_attack_s_own_scores(torch_audit):
    "Each exposed member with its score and the share of non-members scoring as high; the list follows the score."
    from updates_leak.audit import exposure
    test_scores = torch.tensor([0., 1., 2., 3.])
    assert exposure(torch.tensor([3.5, 2., -1.]), test_scores).tolist() == [0., 0.5, 1.]
    *_, result = torch_audit
    e = result.sections[0].exposed
    if e is None: return  # no attack beat its baseline on this sample: the list is left out rather than shown
    assert e['attack'] and (e['score'][:-1] >= e['score'][1:]).all() and (e['fpr'][:-1] <= e['fpr'][1:]).all()


def test_a_section_another_version_computed_is_not_served(torch_audit, monkeypatch):
    "The cache key holds the library's code: an upgrade recomputes sections instead of serving another format."
    from updates_leak import audit as audit_module
    model, tr, te, _ = torch_audit
    key = lambda: audit_module.audit_fingerprint(model, tr, test=te, update=None, options={'quick': True}, device='cpu')
    before = key()
    monkeypatch.setattr(audit_module, 'library_digest', lambda: 'another version of the library')
    assert key() != before


def test_a_long_default_audit_says_so_before_it_starts(torch_audit, monkeypatch, capsys):
    "One timed epoch of a fresh copy bounds the honest retrains' time; over the limit, the audit says so first."
    from updates_leak import audit as audit_module
    model, tr, te, _ = torch_audit
    assert audit_module.retraining_floor(model, tr, epochs=10) > 0
    monkeypatch.setattr(audit_module, 'LONG_AUDIT', 0.)
    monkeypatch.setattr(audit_module, '_family_section', lambda family, *a, **k: audit_module.skipped(family, 'stub'))
    for quick in (False, True):
        audit_module.audit(model, tr, test=te, families=('exfiltration',), quick=quick, device='cpu', progress=True)
        err = capsys.readouterr().err
        assert ('this audit will take over' in err) != quick and 'section 1 of 1, exfiltration' in err
        assert quick or ('--quick' in err and err.index('this audit will take') < err.index('section 1 of 1'))


def test_every_family_s_headline_is_its_verdict_s_number(workspace):
    "All five families at --quick on the user's torch model: each section that runs states its rule and its number."
    model = load_model(workspace/'net.safetensors', 'usermodels:Net')
    tr, te = load_records(workspace/'train.npz').data, load_records(workspace/'test.npz').data
    result = audit(model, tr, test=te, quick=True, device='cpu', progress=False)
    ran = [s for s in result.sections if not s.skipped]
    assert {s.family for s in ran} >= {'membership', 'updates', 'extraction', 'exfiltration'}
    for s in ran:
        assert s.rule and f"{s.headline.split(': ')[-1]} {s.value:.3g}" in s.verdict, (s.family, s.headline, s.verdict)
