"""Named random streams: `child_seed` never gives two names one seed, and an experiment's streams never share one."""
import pytest
import torch
from hypothesis import given, settings, strategies as st

import updates_leak.updates as updates
from updates_leak.core import child_seed

names = st.lists(st.one_of(st.text(max_size=12), st.integers(-2**40, 2**40)), min_size=1, max_size=4)

@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**40), a=names, b=names)
def test_distinct_names_give_distinct_seeds(seed, a, b):
    if a != b: assert child_seed(seed, *a) != child_seed(seed, *b)
    else: assert child_seed(seed, *a) == child_seed(seed, *b)

@settings(max_examples=100, deadline=None)
@given(a=st.integers(0, 2**40), b=st.integers(0, 2**40), name=names)
def test_distinct_parents_give_distinct_seeds(a, b, name):
    assert (child_seed(a, *name) == child_seed(b, *name)) == (a == b)

@pytest.mark.parametrize('bad', [1.5, True, None])
def test_names_must_be_strings_or_whole_numbers(bad):
    with pytest.raises(TypeError, match='whole number'): child_seed(0, 'stream', bad)

def test_an_experiments_streams_never_share_a_seed(monkeypatch):
    "With ten shadow models, shadow model 9's seed was the first shadow updating sets' seed (offsets 1 + i and 10 + i)."
    used = []
    def record(kind):
        def fake(*args, seed, **kw):
            used.append((kind, seed))
            return torch.nn.Linear(1, 1) if kind == 'model' else torch.zeros(1, 1, dtype=torch.long)
        return fake
    monkeypatch.setattr(updates, 'train_model', record('model'))
    monkeypatch.setattr(updates, 'sample_updating_sets', record('sets'))
    monkeypatch.setattr(updates, 'generate_updates', record('updates'))
    monkeypatch.setattr(updates, 'observe_updates', lambda *a, seed, **kw: used.append(('observed updates', seed)))
    monkeypatch.setattr(updates, 'accuracy', lambda *a, **kw: 0.)
    monkeypatch.setattr(updates, 'UpdatesExperiment', lambda *a, **kw: None)
    updates.prepare_experiment('mnist-embedded', 'quick', n_shadow_models=12, seed=3)
    seeds = [s for _, s in used]
    assert len(used) == 1 + 12 + 12 + 1 + 12 + 1
    assert len(set(seeds)) == len(seeds), sorted(k for k in used if seeds.count(k[1]) > 1)

def test_experiments_of_up_to_nine_shadow_models_keep_their_seeds():
    "The published tables' experiments (one to five shadow models) draw what they always drew."
    assert [updates.experiment_seed(4, 'shadow model', i=i) for i in range(3)] == [5, 6, 7]
    assert updates.experiment_seed(4, 'shadow sets', i=2) == 16 and updates.experiment_seed(4, 'target updates') == 44


def test_the_library_never_seeds_the_global_generators():
    "Seeding the global generators is for the caller's scripts (`set_seed`); the library seeds private streams (`private_rng`, `seeded_generator`)."
    import re
    from pathlib import Path
    import updates_leak
    pattern = re.compile(r'\b(set_seed|torch\.manual_seed|torch\.cuda\.manual_seed(_all)?|np\.random\.seed|random\.seed)\(')
    found = [f"{f.name}:{i}: {line.strip()}" for f in sorted(Path(updates_leak.__file__).parent.glob('*.py')) if f.name != 'core.py'
             for i, line in enumerate(f.read_text().splitlines(), 1) if pattern.search(line)]
    assert not found, '\n'.join(found)
