"""The console script, run as a user would run it."""
import json, subprocess, sys

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

def test_the_stored_help_is_what_the_registry_renders():
    """The console script answers --help from the package's stored index; it must match the registry's options now
    (rendered in a fresh process: tests in this one register attacks of their own)."""
    probe = ("import json; from importlib.resources import files; from updates_leak.cli import help_texts; "
             "stored = json.loads((files('updates_leak')/'data_files'/'cli_help.json').read_text(encoding='utf-8')); "
             "print(sorted(k for k, v in help_texts().items() if stored.get(k) != v))")
    r = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == '[]', f"the stored help is stale for {r.stdout.strip()}: run `python tools/build_docs.py --help-index`"

def test_help_answers_without_importing_torch():
    "--help reads the stored index: about 0.1 s of CPU against 4 s for importing the library (2 cores; not asserted)."
    probe = ("import sys; from updates_leak.console import main; main(['--help']); main(['audit', '--help']); "
             "print('torch imported:', 'torch' in sys.modules)")
    r = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith('usage: updates-leak <command>'), r.stderr
    assert 'usage: updates-leak audit' in r.stdout and r.stdout.rstrip().endswith('torch imported: False')

def test_subcommand_help():
    r = run('updates', '--help')
    assert r.returncode == 0 and '--attack' in r.stdout and '--quick' in r.stdout
