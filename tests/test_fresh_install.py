"""What a user gets from the README's first command: a virtual environment made by `pip install .` alone (no extras).

The environment is built once per set of requirements (a real `pip install .` that resolves every dependency afresh) and
kept in the temporary folder; later runs reinstall only the package itself, so each run tests the current code."""
import hashlib, os, shutil, subprocess, sys, tempfile
from pathlib import Path

import pytest
from filelock import FileLock

REPO = Path(__file__).resolve().parents[1]
SUBCOMMANDS = ('demo', 'updates', 'extract', 'invert', 'exfiltrate', 'membership', 'audit', 'bench')

def requirements_key() -> str:
    "A digest of what decides the resolved dependencies."
    return hashlib.sha256(b''.join((REPO/f).read_bytes() for f in ('settings.ini', 'setup.py'))).hexdigest()[:16]

@pytest.fixture(scope='module')
def fresh_cli(tmp_path_factory):
    "The `updates-leak` script of a virtual environment made by `pip install .` from a copy of the working tree."
    venv = Path(tempfile.gettempdir())/f'updates-leak-fresh-venv-{requirements_key()}'
    src = tmp_path_factory.mktemp('src')/'repo'
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns('.git', '*.egg-info', '__pycache__', '.cache', 'docs', 'nbs', 'build'))
    pip = [str(venv/'bin'/'python'), '-m', 'pip', 'install', '-q', '--disable-pip-version-check']
    with FileLock(str(venv) + '.lock'):
        if not (venv/'ready').exists():
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, '-m', 'venv', str(venv)], check=True)
            subprocess.run(pip + [str(src)], check=True)  # the README's first command: every dependency resolved afresh
            (venv/'ready').touch()
        else: subprocess.run(pip + ['--no-deps', '--force-reinstall', str(src)], check=True)  # the current code, on the same dependencies
    return str(venv/'bin'/'updates-leak')

def run(cli, *args, **kw):
    return subprocess.run([cli, *args], capture_output=True, text=True, **kw)

def test_fresh_install_has_no_dev_pins(fresh_cli):
    pip = Path(fresh_cli).parent/'pip'
    listed = subprocess.run([str(pip), 'list', '--format=freeze'], capture_output=True, text=True).stdout
    assert 'nbdev' not in listed and 'pytest' not in listed  # no dev extra
    # no web framework: fastprogress 1.1 brings python-fasthtml, uvicorn and starlette, so the runtime stays below it
    assert not [w for w in ('fasthtml', 'uvicorn', 'starlette', 'httpx') if w in listed.lower()], listed
    fastcore = next(l for l in listed.splitlines() if l.lower().startswith('fastcore=='))
    assert fastcore.split('==')[1].startswith('1.')  # the runtime requirement keeps fastcore 2 out

@pytest.mark.parametrize('command', SUBCOMMANDS)
def test_help_and_a_bad_flag_for_every_subcommand(fresh_cli, command, tmp_path):
    h = run(fresh_cli, command, '--help', cwd=tmp_path)
    assert h.returncode == 0 and h.stdout.startswith(f'usage: updates-leak {command}') and h.stderr == ''
    assert not any(tmp_path.iterdir()), '--help must not compute or write anything'
    bad = run(fresh_cli, command, '--bogus-flag', cwd=tmp_path)
    assert bad.returncode == 2 and 'usage: updates-leak' in bad.stderr and 'Traceback' not in bad.stderr
    assert not any(tmp_path.iterdir())

def test_help_does_not_import_torch(fresh_cli):
    "--help comes from the stored index: about 0.1 s of CPU where importing the library takes 4 s (2 cores; a benchmark figure, not asserted)."
    probe = "import sys; from updates_leak.console import main; main(['--help']); main(['membership', '--help']); print('torch' in sys.modules)"
    r = subprocess.run([str(Path(fresh_cli).parent/'python'), '-c', probe], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.rstrip().endswith('False') and 'usage: updates-leak membership' in r.stdout, r.stderr

def test_bad_values_stop_before_any_work(fresh_cli, tmp_path):
    for args, message in [(('updates', '--attack', 'bogus'), "invalid choice: 'bogus'"), (('demo', '--n_attack_models', '-1'), 'must be a whole number ≥ 0'),
                          (('updates', '--n_shadow_models', '0'), 'need at least one shadow model'), (('updates', '--probe_size', '-1'), 'must be a whole number ≥ 1'),
                          (('bench', 'shadow-updates', '--workers', '-1'), 'must be a whole number ≥ 0'), (('invert', '--attack', 'mi-face', '--scale', '0'), 'must be a whole number ≥ 1'),
                          (('exfiltrate', '--attack', 'cor', '--lam', '-5'), 'must be a non-negative number'), (('membership', '--epochs', 'many'), "invalid int value: 'many'"),
                          (('extract', '--attack', 'paths', '--rounding', '2'), 'not an option of --attack paths')]:
        r = run(fresh_cli, *args, cwd=tmp_path)
        assert r.returncode == 2 and message in r.stderr and 'Traceback' not in r.stderr, (args, r.stderr)

def test_user_errors_are_one_line(fresh_cli, tmp_path):
    missing = run(fresh_cli, 'extract', '--attack', 'paths', '--dataset', 'steak', '--root', str(tmp_path/'nowhere'), '--out', str(tmp_path/'o'),
                  cwd=tmp_path, env={**os.environ, 'UPDATES_LEAK_DATA': ''})
    assert missing.returncode == 1 and missing.stderr.count('\n') == 1 and 'steak: no data found' in missing.stderr
    blocked = tmp_path/'file'; blocked.write_text('')
    unwritable = run(fresh_cli, 'demo', '--out', str(blocked/'sub'), cwd=tmp_path)
    assert unwritable.returncode == 2 and 'cannot write results' in unwritable.stderr and unwritable.stderr.count('\n') == 1

def test_membership_with_its_defaults_runs(fresh_cli, tmp_path):
    "`updates-leak membership` with its default attack (Nasr et al.'s, on the Location preset), at a quick size."
    r = run(fresh_cli, 'membership', '--kernels', '8', '--attack_epochs', '2', '--shadow', '1', '--out', str(tmp_path), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    name = 'membership_nasr_location_attack_epochs-2_kernels-8_shadow-1'
    assert 'membership: white-box (Nasr)' in r.stdout and (tmp_path/f'{name}.json').exists()
    assert (tmp_path/f'{name}.png').stat().st_size > 1000
    assert r.stderr.count('\n') <= 60  # progress, if any, as a few plain lines, not a redrawn bar

def test_audit_runs_without_extras_and_names_the_extra_it_needs(fresh_cli, tmp_path):
    "`updates-leak audit` on a predictions-only function at --quick; a skops model asks for the `audit` extra in one line."
    (tmp_path/'api.py').write_text("import numpy as np\n"
                                   "W = np.random.default_rng(0).normal(size=(64, 10))\n"
                                   "def predict(x):\n"
                                   "    z = np.asarray(x, dtype=float).reshape(len(x), -1) @ W\n"
                                   "    e = np.exp(z - z.max(1, keepdims=True)); return e / e.sum(1, keepdims=True)\n")
    import numpy as np
    rng = np.random.default_rng(1)
    for name in ('train', 'test'): np.savez(tmp_path/f'{name}.npz', x=rng.random((120, 64)).astype(np.float32), y=rng.integers(0, 10, 120))
    r = run(fresh_cli, 'audit', 'train.npz', 'test.npz', '--predict', 'api:predict', '--quick', '--families', 'membership,extraction',
            '--out', str(tmp_path/'out'), '--cache', '', cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path/'out'/'audit.html').stat().st_size > 10_000 and 'membership' in r.stdout
    (tmp_path/'m.skops').write_bytes(b'PK')
    r = run(fresh_cli, 'audit', 'train.npz', 'test.npz', '--model', 'm.skops', '--out', str(tmp_path/'out2'), cwd=tmp_path)
    assert r.returncode == 2 and "pip install 'updates-leak[audit]'" in r.stderr and r.stderr.count('\n') == 1
