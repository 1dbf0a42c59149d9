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

def test_demo_runs_a_real_attack(tmp_path):
    r = run('demo', '--out', str(tmp_path))
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'A_LI' in r.stdout and 'heuristic' in r.stdout
    res = json.loads((tmp_path/'demo.json').read_text())
    accuracy = sum(res['accuracies']) / len(res['accuracies'])
    assert accuracy >= 0.8 and accuracy > res['heuristic'] > res['random_guess']
    assert (tmp_path/'demo.png').stat().st_size > 1000

def test_subcommand_help():
    r = run('updates', '--help')
    assert r.returncode == 0 and '--attack' in r.stdout and '--quick' in r.stdout
