"""The attack registry: every registered attack has the entry point's shape, a checked config, a command-line entry and a
result that round-trips through JSON with a headline."""
import json, subprocess, sys

import pytest
import torch
import torch.nn as nn

from updates_leak.attacks import ATTACKS, FAMILIES, THREATS, MembershipData, entry_point_problems, load_attacks
from updates_leak.cli import COMMANDS, build_parser

load_attacks()
SPECS = list(ATTACKS.values())

def test_the_registry_finds_attack_modules_without_a_list():
    code = "from updates_leak.attacks import load_attacks; print(sorted(load_attacks()))"
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout
    assert 'qmia' in out

@pytest.mark.parametrize('spec', SPECS, ids=[s.name for s in SPECS])
def test_every_attack_declares_what_it_is_and_takes_keywords_past_target_and_data(spec):
    assert spec.family in FAMILIES and spec.threat and set(spec.threat) <= set(THREATS)
    assert entry_point_problems(spec.run) == [] and spec.summary
    spec.config()  # the defaults are a valid config
    assert all(o.help for o in spec.options), f"{spec.name}: every option says what it means"

@pytest.mark.parametrize('spec', SPECS, ids=[s.name for s in SPECS])
def test_every_attack_is_on_the_command_line_with_its_options(spec):
    commands = [c for c in COMMANDS.values() if c.family == spec.family]
    assert commands, f"no subcommand runs the {spec.family} family"
    parser = build_parser(commands[0])
    attack = next(a for a in parser._actions if a.dest == 'attack')
    assert spec.name in attack.choices
    flags = {s for a in parser._actions for s in a.option_strings}
    assert {f'--{spec.name}_{o.name}' for o in spec.options} <= flags

def _toy_membership_data():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(240, 6, generator=g), torch.arange(240) % 3
    x[:, 0] += y  # learnable
    part = lambda a, b: (x[a:b], y[a:b])
    return MembershipData(members=part(0, 60), nonmembers=part(60, 120), population=part(120, 240), name='toy')

@pytest.mark.parametrize('spec', [s for s in SPECS if s.family == 'membership'], ids=lambda s: s.name)
def test_every_membership_attack_returns_a_result_that_round_trips_with_its_headline(spec):
    data = _toy_membership_data()
    target = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    r = spec(target, data, seed=0, device='cpu', progress=False)
    assert type(r).from_dict(json.loads(json.dumps(r.to_dict()))) == r
    h = r.headline
    assert h.metric in r.metrics and h.value == r.metrics[h.metric] and h.baseline is not None

@pytest.mark.parametrize('spec', [s for s in SPECS if s.family == 'membership'], ids=lambda s: s.name)
def test_every_membership_attack_runs_from_the_command_line_on_a_preset(spec, tmp_path, monkeypatch):
    from updates_leak import cli
    from updates_leak.membership_standalone import MembershipTarget
    from updates_leak.models import MLP
    monkeypatch.setitem(cli.TARGETS, 'location', MembershipTarget('location', lambda: MLP([446, 16, 30]), members=60, shadow=0, test=0, epochs=2))
    cli.main(['membership', '--attack', spec.name, '--population', '100', '--device', 'cpu', '--out', str(tmp_path)])
    d = json.loads((tmp_path/f'membership_{spec.name}_location.json').read_text())
    assert d['members'] == d['nonmembers'] == 60 and d['queries'] > 0
