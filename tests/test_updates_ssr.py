"""A_SSR: the decoder is transferred (copied, then trained), the baselines are what they claim, bad input is refused."""
import subprocess

import pytest
import torch

from updates_leak.data import Data
from updates_leak.updates import Scale, Updates, prepare_experiment
from updates_leak.updates_ssr import (ReconstructorEnsemble, SampleReconstructor, class_means, evaluate_reconstruction, per_sample_mse,
                                     pretrain_autoencoder, sample_images)

@pytest.fixture(scope='module')
def digits():
    g = torch.Generator().manual_seed(0)
    return Data(torch.rand(64, 1, 28, 28, generator=g), torch.arange(64) % 4, classes=['a', 'b', 'c', 'd'])

def test_decoder_is_transferred_not_shared(digits):
    ae = pretrain_autoencoder(digits, latent=8, epochs=1)
    model = SampleReconstructor(30, ae.decoder, latent=8)
    for p, q in zip(model.decoder.parameters(), ae.decoder.parameters()):
        assert torch.equal(p, q) and p.data_ptr() != q.data_ptr()
    assert model(torch.randn(5, 30)).shape == (5, 1, 28, 28)

def test_class_mean_baseline(digits):
    means = class_means(digits)
    assert means.shape == (4, 1, 28, 28)
    assert torch.allclose(means[1], digits.x[digits.y == 1].mean(0))
    assert torch.allclose(per_sample_mse(digits.x[:3], digits.x[:3]), torch.zeros(3))

def test_only_single_sample_updates(digits):
    multi = Updates(torch.zeros(5, 4), torch.zeros(2, 5, 4), sets=torch.zeros(2, 3, dtype=torch.long), labels=torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match='single-sample'): sample_images(multi, digits)
    single = Updates(torch.zeros(5, 4), torch.zeros(2, 5, 4), sets=torch.tensor([[3], [7]]), labels=torch.tensor([[3], [3]]))
    assert torch.equal(sample_images(single, digits), digits.x[[3, 7]])

def test_cli_names_the_attacks(tmp_path):
    res = subprocess.run(['updates-leak', 'updates', '--attack', 'xyz'], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 2 and "'ssr'" in res.stderr

def test_ensemble_answers_the_mean_of_its_members():
    exp = prepare_experiment('mnist-embedded', Scale(n_train=200, target_pool=200, epochs=1, lr=1e-2, n_shadow_updates=40, n_target_updates=10),
                             set_size=1, seed=0, device='cpu', progress=False)
    res = evaluate_reconstruction(exp, latent=8, ae_epochs=1, epochs=1, seed=3, device='cpu', ensemble=2)
    model, recon = res.reconstructor, res.reconstructions
    assert isinstance(model, ReconstructorEnsemble) and len(model.members) == 2 and res.ensemble == 2
    with torch.no_grad(): members = [m(exp.target_updates.delta()) for m in model.members]
    assert torch.allclose(recon, (members[0] + members[1]) / 2)
    truth = sample_images(exp.target_updates, exp.setting.target_pool)
    assert res.single_model_mse == pytest.approx(sum(per_sample_mse(m, truth).mean().item() for m in members) / 2, rel=1e-5)
    assert res.mse <= res.single_model_mse  # the mean of two reconstructions is never worse than their average error (convexity)
    one = evaluate_reconstruction(exp, latent=8, ae_epochs=1, epochs=1, seed=3, device='cpu')
    first = one.reconstructions
    assert torch.equal(first, members[0]) and one.single_model_mse is None  # member i is the model `seed + i` trains alone
    with pytest.raises(ValueError, match='at least one attack model'): evaluate_reconstruction(exp, ensemble=0)
