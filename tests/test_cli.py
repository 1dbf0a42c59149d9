"""The console script, run as a user would run it."""
import json, subprocess

def run(*args, **kw):
    return subprocess.run(['updates-leak', *args], capture_output=True, text=True, **kw)

def test_help_lists_commands():
    r = run('--help')
    assert r.returncode == 0 and 'demo' in r.stdout

def test_unknown_command_fails_clearly():
    r = run('nonsense')
    assert r.returncode == 2 and "unknown command 'nonsense'" in r.stderr

def test_demo_writes_results(tmp_path):
    r = run('demo', '--out', str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert 'target test accuracy' in r.stdout
    res = json.loads((tmp_path/'demo.json').read_text())
    rows = {row['quantity']: row['value'] for row in res['rows']}
    assert rows['target test accuracy'] > 0.8 and rows['oracle queries'] == 200 and rows['max |δ|'] > 0
    assert (tmp_path/'demo_delta.png').stat().st_size > 1000

def test_demo_is_reproducible(tmp_path):
    a = run('demo', '--out', str(tmp_path/'a'), '--n_train', '500', '--epochs', '1', '--seed', '3')
    b = run('demo', '--out', str(tmp_path/'b'), '--n_train', '500', '--epochs', '1', '--seed', '3')
    assert a.returncode == b.returncode == 0
    strip = lambda p: [r for r in json.loads(p.read_text())['rows'] if r['quantity'] != 'seconds']
    assert strip(tmp_path/'a'/'demo.json') == strip(tmp_path/'b'/'demo.json')
