"""A newcomer's first hour: messages that say what to do and where to get data, files written as the user's other
files are, and help that states each default once."""
import os

import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings, strategies as st

from updates_leak.cli import COMMANDS, build_parser, main
from updates_leak.data import MissingDataError, TABLES, load_att_faces, load_table
from updates_leak.results import write_results

@pytest.mark.parametrize('load', [lambda root: load_table('adult', root), lambda root: load_table('steak', root),
                                  load_att_faces], ids=['adult', 'steak', 'att-faces'])
def test_missing_data_names_a_public_source(tmp_path, load):
    with pytest.raises(MissingDataError) as e: load(tmp_path)
    message = str(e.value)
    assert 'https://' in message and 'shared' not in message and 'PROVENANCE' not in message

def test_each_table_names_its_own_source():
    assert 'aws_adult.csv' in TABLES['adult'][2] and 'steak-risk-survey.csv' in TABLES['steak'][2]

def test_results_are_written_with_the_user_s_permissions(tmp_path):
    old = os.umask(0o022)
    try: path = write_results(tmp_path, 'r', results={'a': 1})
    finally: os.umask(old)
    assert oct(path.stat().st_mode & 0o777) == '0o644'

def test_help_states_each_default_once():
    text = build_parser(COMMANDS['audit']).format_help()
    assert '(default: None)' not in text
    device = text[text.index('\n  --device DEVICE') + 1:].split('\n  -')[0]
    assert device.count('default') == 1

@pytest.mark.parametrize('argv, message', [
    (['audit', 'nosuch.npz', 'nosuch.npz', '--model', 'nosuch.safetensors'], 'does not exist'),
    (['bench', 'audit', '--workers', '0'], 'not an option of the audit benchmark'),
], ids=['missing records file', 'a flag of another benchmark'])
def test_mistakes_get_one_line_before_any_work(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as e: main([*argv, '--out', str(tmp_path/'out')])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err and 'Traceback' not in err


@given(nonmembers=st.integers(1, 12_000), seed=st.integers(0, 2**16))
@settings(max_examples=40, deadline=None)
def test_a_rate_is_reported_only_where_the_non_members_resolve_it(nonmembers, seed):
    "TPR at an FPR below 1/non-members is not measured (None), and the warning names the count it would take."
    from updates_leak.attacks import FPR_BOUNDS, membership_result, nonmembers_needed
    rng = np.random.default_rng(seed)
    scores, truth = torch.tensor(rng.random(nonmembers + 50)), torch.arange(nonmembers + 50) < 50
    r = membership_result('toy', 'toy', scores=scores, is_member=truth, queries=0, seconds={})
    for k, bound in FPR_BOUNDS.items():
        assert (r.metrics[k] is None) == (nonmembers * bound < 1 - 1e-9), (k, nonmembers)
    missing = [k for k in FPR_BOUNDS if r.metrics[k] is None]
    assert not missing or f"{nonmembers_needed(FPR_BOUNDS[missing[-1]]):,}" in r.warnings[-1]
    assert {row['metric'] for row in r.rows()}.isdisjoint(missing)  # tables leave them out; the warning says why
    assert r.headline.metric == ('auc' if nonmembers < 100 else 'tpr@1%fpr')


def test_own_cnn_over_images_is_extracted_as_it_is():
    "Equation solving and retraining query a CNN that takes 1×8×8 images with no reshaping wrapper in user code."
    from sklearn.datasets import load_digits
    from updates_leak.extraction import run_extraction
    from updates_leak.extraction_retraining import run_retraining
    from updates_leak.models import fit
    digits = load_digits()
    x, y = torch.tensor(digits.images / 16., dtype=torch.float32)[:, None], torch.tensor(digits.target)
    g = torch.Generator().manual_seed(0)
    cnn = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 64, 10))
    with torch.no_grad():
        for p in cnn.parameters(): p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    fit(cnn, (x[:1000], y[:1000]), epochs=3, lr=1e-2, optimizer='adam', progress=False)
    before = {k: v.clone() for k, v in cnn.state_dict().items()}
    test = (x[1000:1400], y[1000:1400])
    copy = run_extraction('softmax', target=cnn, data=test, budget=1.0, n_uniform=500)
    retrained = run_retraining(target=cnn, data=test, strategy='uniform', budget=1.0, n_uniform=500)
    assert copy.r_test > 0.8 and copy.r_test > copy.r_majority and not copy.warnings
    assert 0 < retrained.r_test <= 1 and retrained.queries > 0
    assert all(torch.equal(before[k], v) for k, v in cnn.state_dict().items())


def test_a_copy_worse_than_the_majority_label_says_so():
    "Softmax equation solving against a random forest: a copy below always answering the majority label is flagged."
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from updates_leak.extraction import run_extraction
    b = load_breast_cancer()
    x, y = torch.tensor((b.data - b.data.min(0)) / np.ptp(b.data, 0)), torch.tensor(b.target)
    forest = RandomForestClassifier(50, random_state=0).fit(x[:400].numpy(), y[:400].numpy())
    r = run_extraction('softmax', target=forest, data=(x[400:], y[400:]), budget=1.0, n_uniform=500)
    assert r.r_test < r.r_majority and 'less than always answering its most common label' in r.warnings[0]


def test_without_a_data_root_the_tests_that_need_data_skip_and_say_why(tmp_path):
    "A fresh clone with no datasets: the README's test command reports the real-data tests as skipped, with the reason."
    import subprocess, sys
    from pathlib import Path
    empty = tmp_path/'no-data'; empty.mkdir()
    r = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '-n', '0', '-rs', 'tests/test_data.py'],
                       cwd=Path(__file__).resolve().parents[1], env={**os.environ, 'UPDATES_LEAK_DATA': str(empty)},
                       capture_output=True, text=True)
    assert r.returncode == 0 and ' failed' not in r.stdout, r.stdout[-3000:]
    assert 'skipped' in r.stdout and 'there is no data root: set UPDATES_LEAK_DATA' in r.stdout
