"""The attack registry: every registered attack has the entry point's shape, a checked config, a preset, a command-line entry
and a result that round-trips through JSON with a headline; the command line names no attack."""
import ast, json, random, subprocess, sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

import updates_leak
from updates_leak.attacks import (ATTACKS, BENCHES, FAMILIES, PRESETS, THREATS, Headline, MembershipData, entry_point_problems, load_attacks,
                                  preset_of)
from updates_leak.cli import COMMANDS, SUBCOMMANDS, build_parser, family_flags, run_registered
from updates_leak.membership_standalone import TARGETS, MembershipTarget
from updates_leak.models import MLP
from updates_leak.updates import SCALES, Scale

load_attacks()
SPECS = list(ATTACKS.values())

def test_the_registry_finds_attack_modules_without_a_list():
    code = "from updates_leak.attacks import load_attacks, PRESETS, BENCHES; print(sorted(load_attacks()), sorted(PRESETS), sorted(BENCHES))"
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout
    assert 'qmia' in out and 'membership pool' in out and 'shadow-updates' in out

@pytest.mark.parametrize('spec', SPECS, ids=[s.name for s in SPECS])
def test_every_attack_declares_what_it_is_and_takes_keywords_past_target_and_data(spec):
    assert spec.family in FAMILIES and spec.threat and set(spec.threat) <= set(THREATS)
    assert entry_point_problems(spec.run) == [] and spec.summary and spec.paper
    spec.config()  # the defaults are a valid config
    assert all(o.help for o in spec.options), f"{spec.name}: every option says what it means"
    assert spec.preset in PRESETS and spec.quick and spec.quick.get('dataset') in preset_of(spec).datasets
    assert all(o.help for o in preset_of(spec).options), f"preset {spec.preset}: every option says what it means"

@pytest.mark.parametrize('spec', SPECS, ids=[s.name for s in SPECS])
def test_every_attack_is_on_the_command_line_with_its_options(spec):
    parser = build_parser(COMMANDS[SUBCOMMANDS[spec.family]])
    attack = next(a for a in parser._actions if a.dest == 'attack')
    assert spec.name in attack.choices
    flags = {s for a in parser._actions for s in a.option_strings}
    assert {f'--{o.name}' for o in [*spec.options, *preset_of(spec).options]} <= flags

def test_one_demo_and_every_family_and_benchmark_on_the_command_line():
    assert [a.name for a in SPECS if a.demo] == ['li']
    assert {c.name for c in COMMANDS.values()} == {'demo', 'audit', 'bench', *SUBCOMMANDS.values()}
    for family in FAMILIES: family_flags(family)  # options of one name agree on their type
    assert set(next(a for a in build_parser(COMMANDS['bench'])._actions if a.dest == 'name').choices) == set(BENCHES)

def _names_in(module:str) -> tuple:
    "The string constants of a library module, and the library modules it imports."
    tree = ast.parse((Path(updates_leak.__file__).parent/f'{module}.py').read_text())
    keys = {id(k) for n in ast.walk(tree) for k in (n.keys if isinstance(n, ast.Dict) else [n.slice] if isinstance(n, ast.Subscript) else [])}
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in keys}  # not a record's field
    imports = {n.module.removeprefix('updates_leak.') for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module.startswith('updates_leak.')}
    imports |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 1}
    return strings, imports

def test_the_command_line_names_no_attack():
    strings, imports = _names_in('cli')
    assert not strings & set(ATTACKS), f"cli.py names the attacks {sorted(strings & set(ATTACKS))}"
    assert imports <= {'attacks', 'audit', 'cache', 'core', 'data', 'loading', 'oracle', 'results'}, f"cli.py imports attack modules: {sorted(imports)}"

def test_a_tiny_attack_registered_in_a_test_reaches_the_command_line(tmp_path, monkeypatch):
    "A new attack, filed at run time, is offered by its family's subcommand with its option, and runs."
    from dataclasses import dataclass
    from updates_leak import attacks, cli
    from updates_leak.attacks import membership_result, register_attack

    @dataclass
    class ToyConfig:
        "Options of a toy attack."
        flip: bool = False  # score members low instead of high

    monkeypatch.setattr(attacks, 'ATTACKS', dict(ATTACKS))
    @register_attack('toy', family='membership', threat=('black-box',), config=ToyConfig, preset='membership', paper='none',
                     quick={'dataset': 'location'})
    def run_toy(target, data, *, config, seed=0, device=None, progress=True):
        "A toy attack that knows the answer."
        truth = data.is_member.double()
        return membership_result('toy', data.name, scores=-truth if config.flip else truth, is_member=data.is_member, queries=0, seconds={})
    monkeypatch.setitem(cli.COMMANDS, 'membership', cli.family_command('membership'))
    monkeypatch.setitem(TARGETS, 'location', MembershipTarget('location', lambda: MLP([446, 8, 30]), members=40, shadow=0, test=0, epochs=1))
    cli.main(['membership', '--attack', 'toy', '--flip', '--population', '20', '--device', 'cpu', '--out', str(tmp_path)])
    d = json.loads((tmp_path/'membership_toy_location_flip_population-20.json').read_text())
    assert d['metrics']['auc'] == 0 and d['run']['options'] == {'flip': True, 'population': 20}

@pytest.fixture
def small_presets(monkeypatch):
    "The presets' papers' sizes made tiny: the Location target, and the quick scale of the updates experiments."
    monkeypatch.setitem(TARGETS, 'location', MembershipTarget('location', lambda: MLP([446, 16, 30]), members=60, shadow=100, test=50, epochs=2))
    monkeypatch.setitem(SCALES, 'quick', Scale(n_train=300, target_pool=300, epochs=1, lr=0.01, n_shadow_updates=40, n_target_updates=10))

@pytest.mark.parametrize('spec', SPECS, ids=[s.name for s in SPECS])
def test_every_attack_runs_on_its_preset_and_its_result_round_trips_with_its_headline(spec, small_presets):
    given = {k: v for k, v in spec.quick.items() if k != 'dataset'} | ({'cache': ''} if 'cache' in {o.name for o in preset_of(spec).options} else {})
    before = torch.random.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    result, _ = run_registered(spec, dataset=spec.quick['dataset'], given=given, device='cpu')
    assert torch.equal(torch.random.get_rng_state(), before[0]) and (np.random.get_state()[1] == before[1]).all() and random.getstate() == before[2], \
        f"{spec.name} moved the caller's global random state"
    assert type(result).from_dict(json.loads(json.dumps(result.to_dict()))).to_dict() == result.to_dict()
    h = result.headline
    assert isinstance(h, Headline) and h.metric and isinstance(h.value, float) and h.value == h.value  # a number, not NaN
    assert result.rows()

def _toy_membership_data():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(240, 6, generator=g), torch.arange(240) % 3
    x[:, 0] += y  # learnable
    part = lambda a, b: (x[a:b], y[a:b])
    return MembershipData(members=part(0, 60), nonmembers=part(60, 120), population=part(120, 240), name='toy')

@pytest.mark.parametrize('spec', [s for s in SPECS if s.family == 'membership' and s.preset == 'membership'], ids=lambda s: s.name)
def test_every_membership_attack_on_a_trained_target_runs_on_a_model_and_records_of_ones_own(spec):
    data = _toy_membership_data()
    target = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    options = {k: v for k, v in spec.quick.items() if k not in ('dataset', 'population')}
    r = spec(target, data, seed=0, device='cpu', progress=False, **options)
    assert type(r).from_dict(json.loads(json.dumps(r.to_dict()))).to_dict() == r.to_dict()
    # 60 non-members cannot resolve 1% FPR: the headline is the AUC against random guessing
    assert (r.headline.metric, r.headline.baseline) == ('auc', 0.5) and r.headline.value == r.headline.value

@pytest.mark.parametrize('spec', SPECS, ids=[s.name for s in SPECS])
def test_every_attack_has_an_audit_plan_that_its_config_takes(spec):
    "Either why the audit leaves it out, or option sets for the quick and the full audit that its config accepts, from a preset that takes one's own model."
    from updates_leak.attacks import make_config
    assert spec.audit is not None, f"{spec.name}: say how the audit runs it, or why it does not"
    if isinstance(spec.audit, str): return
    assert set(spec.audit) == {'quick', 'full'} and spec.audit['full'], f"{spec.name}: a full audit runs it at least once"
    assert preset_of(spec).own is not None, f"{spec.name}: its preset ({spec.preset}) has no builder for one's own model"
    for options in [o for plan in spec.audit.values() if plan for o in plan]: make_config(spec.config, **options)

def test_the_audit_names_no_attack():
    "The audit's sections come from the registry: audit.py names no attack and imports no attack's module but the membership sample's and the exfiltration check's."
    strings, imports = _names_in('audit')
    assert not strings & set(ATTACKS), f"audit.py names the attacks {sorted(strings & set(ATTACKS))}"
    assert imports <= {'attacks', 'cache', 'core', 'data', 'loading', 'models', 'oracle', 'report', 'results', 'membership_features', 'membership_standalone', 'exfiltration_defences'}, \
        f"audit.py imports {sorted(imports)}"
