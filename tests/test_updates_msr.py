"""A_MSR: the Best-Match loss and the Hungarian matching are what they claim, GAN training is seeded and resumes from its checkpoints, bad input is refused."""
import itertools, subprocess

import pytest
import torch

from updates_leak.data import Data
from updates_leak.updates import Updates, UpdatesExperiment
from updates_leak.updates_msr import (CBMGenerator, ImageDiscriminator, bench_cbm_gan, best_match_loss, cluster_representatives,
                                      evaluate_multi_reconstruction, hungarian_match, label_oracle_representatives, matched_mse,
                                      pairwise_mse, sets_best_match_loss, train_cbm_gan)

def test_best_match_loss_matches_each_real_sample_to_its_nearest_fake():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.rand(7, 1, 3, 3, generator=g), torch.rand(11, 1, 3, 3, generator=g).requires_grad_()
    expected = torch.stack([min(((r - f) ** 2).mean() for f in fake) for r in real]).mean()
    loss = best_match_loss(real, fake)
    assert torch.allclose(loss, expected)
    loss.backward()
    nearest = {min(range(11), key=lambda j: ((r - fake[j]) ** 2).sum().item()) for r in real}
    touched = {j for j in range(11) if fake.grad[j].abs().sum() > 0}
    assert touched == nearest  # only the chosen fakes receive gradient

def test_hungarian_matching_is_optimal_against_brute_force():
    g = torch.Generator().manual_seed(1)
    truth, cand = torch.rand(7, 1, 5, 5, generator=g), torch.rand(7, 1, 5, 5, generator=g)
    cost = pairwise_mse(truth, cand)
    best = min(sum(cost[i, j].item() for i, j in enumerate(p)) for p in itertools.permutations(range(7)))
    match = hungarian_match(truth, cand)
    assert sorted(match.tolist()) == list(range(7))  # one-to-one
    assert abs(sum(cost[i, j].item() for i, j in enumerate(match.tolist())) - best) < 1e-12
    assert matched_mse(truth, cand).sum().item() == pytest.approx(best, rel=1e-6)

def test_cluster_representatives_are_members_or_centres():
    x = torch.cat([torch.zeros(4, 1, 2, 2), torch.ones(3, 1, 2, 2), 0.9 * torch.ones(1, 1, 2, 2)])
    medoids = cluster_representatives(x, 2)
    assert all(any(torch.equal(m, s) for s in x) for m in medoids)
    centres = cluster_representatives(x, 2, representative='centre')
    assert sorted(c.mean().item() for c in centres) == pytest.approx([0., 0.975])

def tiny_gan_data():
    g = torch.Generator().manual_seed(2)
    pool = Data(torch.rand(30, 1, 4, 4, generator=g), torch.arange(30) % 3, classes=['a', 'b', 'c'])
    sets = torch.stack([torch.randperm(30, generator=g)[:5] for _ in range(6)])
    return pool, sets, torch.randn(6, 12, generator=g)

def test_gan_training_is_seeded():
    pool, sets, delta = tiny_gan_data()
    def train(seed):
        torch.manual_seed(0)
        gen = CBMGenerator((1, 4, 4), 12, noise=4, code=3, hidden=(16,))
        log = train_cbm_gan(gen, ImageDiscriminator((1, 4, 4), hidden=(8, 4)), pool=pool, sets=sets, delta=delta, epochs=2, sets_per_step=2,
                            seed=seed, device='cpu', progress=False)
        return log, torch.cat([p.flatten() for p in gen.parameters()])
    (log_a, a), (log_b, b), (_, c) = train(3), train(3), train(4)
    assert log_a == log_b and torch.equal(a, b) and not torch.equal(a, c)
    assert set(log_a[0]) == {'discriminator', 'adversarial', 'best_match', 'fake_spread', 'real_spread'}

def test_a_collapsed_generator_is_reported():
    pool, sets, delta = tiny_gan_data()
    gen = CBMGenerator((1, 4, 4), 12, noise=4, code=3, hidden=(16,))
    torch.nn.init.zeros_(gen.net[-2].weight)  # every fake is tanh(bias): one image, whatever the noise and δ
    with pytest.warns(UserWarning, match='epoch 1: the generator has collapsed'):
        log = train_cbm_gan(gen, ImageDiscriminator((1, 4, 4), hidden=(8, 4)), pool=pool, sets=sets, delta=delta, epochs=1, sets_per_step=2, lr=0.,
                            device='cpu', progress=False)
    assert log[0]['fake_spread'] == 0 and log[0]['real_spread'] > 0.3

def test_checkpoints_belong_to_their_run(tmp_path):
    pool, sets, delta = tiny_gan_data()
    def train(delta, epochs, seed=0):
        torch.manual_seed(0)
        gen = CBMGenerator((1, 4, 4), 12, noise=4, code=3, hidden=(16,))
        return train_cbm_gan(gen, ImageDiscriminator((1, 4, 4), hidden=(8, 4)), pool=pool, sets=sets, delta=delta, epochs=epochs, sets_per_step=2,
                             seed=seed, device='cpu', progress=False, checkpoint_dir=tmp_path)
    train(delta, 2)
    (run,) = tmp_path.iterdir()
    files = lambda: {f: f.stat().st_mtime_ns for f in run.iterdir() if not f.name.startswith('.')}  # leave out the run's lock
    assert sorted(f.name for f in files()) == ['epoch-001.safetensors', 'epoch-002.safetensors', 'state.safetensors']
    train(delta + 1, 1); train(delta, 1, seed=1)  # other δ, another seed: runs of their own, not resumed from the first
    assert len(list(tmp_path.iterdir())) == 3
    before = files()
    assert len(train(delta, 1)) == 1  # a shorter rerun loads epoch 1 and writes nothing
    assert files() == before

def test_best_match_gradient_is_reproducible():
    # A fake chosen by several real samples gets their gradients summed; the sum must not depend on thread
    # scheduling (indexing's backward made full-size GAN training irreproducible across runs).
    g = torch.Generator().manual_seed(0)
    real, base = torch.rand(100, 1, 28, 28, generator=g) * 2 - 1, torch.rand(100, 1, 28, 28, generator=g) * 2 - 1
    grads, threads = set(), torch.get_num_threads()
    torch.set_num_threads(2)  # the suite's workers run one thread each; the race needs two
    try:
        for _ in range(10):
            fake = base.clone().requires_grad_()
            best_match_loss(real, fake).backward()
            grads.add(fake.grad.numpy().tobytes())
    finally: torch.set_num_threads(threads)
    assert len(grads) == 1

def test_bad_input_is_refused():
    pool, sets, delta = tiny_gan_data()
    gen, disc = CBMGenerator((1, 4, 4), 12, hidden=(8,)), ImageDiscriminator((1, 4, 4), hidden=(8, 4))
    with pytest.raises(ValueError, match='5 δ for 6 updating sets'): train_cbm_gan(gen, disc, pool=pool, sets=sets, delta=delta[:5], progress=False)
    with pytest.raises(ValueError, match='reads δ of 12 values'): train_cbm_gan(gen, disc, pool=pool, sets=sets, delta=delta[:, :10], progress=False)
    with pytest.raises(ValueError, match='NaN'): train_cbm_gan(gen, disc, pool=pool, sets=sets, delta=delta.clone().fill_(float('nan')), progress=False)
    with pytest.raises(ValueError, match='at least k=3'): cluster_representatives(pool.x[:2], 3)
    with pytest.raises(ValueError, match="'medoid' or 'centre'"): cluster_representatives(pool.x, 3, representative='mean')
    single = Updates(torch.zeros(5, 4), torch.zeros(2, 5, 4), sets=torch.tensor([[3], [7]]), labels=torch.tensor([[0], [1]]))
    exp = UpdatesExperiment(None, None, shadows=[], shadow_updates=[single], target_updates=single, target_accuracy=0.9, set_size=1)
    with pytest.raises(ValueError, match='use A_SSR'): evaluate_multi_reconstruction(exp)
    multi = Updates(torch.zeros(5, 4), torch.zeros(2, 5, 4), sets=torch.tensor([[3, 4], [7, 8]]), labels=torch.tensor([[0, 1], [1, 2]]))
    with pytest.raises(ValueError, match=r'n_evaluated must lie in \[2, 2\]'):
        evaluate_multi_reconstruction(UpdatesExperiment(None, None, shadows=[], shadow_updates=[multi], target_updates=multi, target_accuracy=0.9, set_size=2), n_evaluated=10)

def test_cli_offers_msr(tmp_path):
    res = subprocess.run(['updates-leak', 'updates', '--attack', 'xyz'], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 2 and "'msr'" in res.stderr

def test_label_oracle_draws_each_class_as_often_as_the_set_holds_it():
    pool, _, _ = tiny_gan_data()
    labels = torch.tensor([0, 0, 2, 2, 2])
    reps = label_oracle_representatives(pool, labels, n_generated=15)
    assert len(reps) == 5
    classes = [int(pool.y[[torch.equal(r, x) for x in pool.x].index(True)]) for r in reps]
    assert sorted(classes) == [0, 0, 2, 2, 2]


def test_batched_best_match_equals_one_set_at_a_time_in_value_and_gradient():
    g = torch.Generator().manual_seed(1)
    real, fake = torch.rand(6, 5, 1, 3, 3, generator=g), torch.rand(6, 7, 1, 3, 3, generator=g).requires_grad_()
    batched = sets_best_match_loss(real, fake)
    (grad_batched,) = torch.autograd.grad(batched, fake)
    one_by_one = torch.stack([best_match_loss(r, f) for r, f in zip(real, fake)]).mean()
    (grad_one,) = torch.autograd.grad(one_by_one, fake)
    assert torch.allclose(batched, one_by_one, atol=1e-7) and torch.allclose(grad_batched, grad_one, atol=1e-8)
    with pytest.raises(ValueError, match='differ in shape'): sets_best_match_loss(real, fake[:5])


def test_the_cbm_gan_benchmark_reports_an_epoch_and_its_projection():
    (row,) = bench_cbm_gan(n_sets=4, set_size=5, hidden=(8,), sets_per_step=2, paper_sets=100, device='cpu')
    assert row['seconds per epoch'] > 0 and row['projected seconds per paper epoch'] == pytest.approx(25 * row['seconds per epoch'])
    assert row['ratio'] > 0 and row['device'] == 'cpu' and row['per set threads'] >= 1
    with pytest.raises(ValueError, match='n_sets'): bench_cbm_gan(n_sets=0)
