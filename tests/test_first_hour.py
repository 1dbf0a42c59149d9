"""A newcomer's first hour: messages that say what to do and where to get data, files written as the user's other
files are, and help that states each default once."""
import os

import pytest

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
