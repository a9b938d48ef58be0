"""The diffusion prior alone (no LM): it learns a conditional two-point distribution, and both samplers
recover the point of each condition; one seed gives one sample."""

import pytest
import torch

from dlmpo.ddpt.diffusion import Denoiser, DiffusionPrior, NoiseSchedule, diffusion_loss


@pytest.fixture(scope="module")
def prior():
    torch.manual_seed(0)
    points = torch.tensor([[2.0, -1.0, 0.5, 1.0], [-1.5, 1.0, -0.5, 0.0]])
    features = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    schedule = NoiseSchedule(50)
    model = Denoiser(4, 2, hidden=64, blocks=2, timesteps=50)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(1500):
        rows = torch.randint(2, (128,), generator=generator)
        keep = torch.rand(128, generator=generator) > 0.2
        loss = diffusion_loss(model, schedule, points[rows], features[rows], keep, generator)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return DiffusionPrior(model.eval(), schedule, 1.0, torch.zeros(2), torch.ones(2)), points, features


@pytest.mark.parametrize("method", ["ddim", "ddpm"])
def test_conditional_samples_land_on_their_point(prior, method):
    model, points, features = prior
    for seed in range(3):
        samples = model.sample(seed, features, method=method, steps=25)
        assert torch.allclose(samples, points, atol=0.35), (method, seed, samples)


def test_unconditional_samples_come_from_the_mixture(prior):
    model, points, _ = prior
    samples = torch.cat([model.sample(seed) for seed in range(12)])
    nearest = torch.cdist(samples, points).min(1)
    assert (nearest.values < 0.5).float().mean() >= 0.75
    assert len(set(nearest.indices.tolist())) == 2


def test_same_seed_same_sample_and_the_state_round_trips(prior):
    model, _, features = prior
    again = DiffusionPrior.from_state(model.state())
    for method in ("ddim", "ddpm"):
        assert torch.equal(model.sample(5, features, method=method), again.sample(5, features, method=method))
    assert not torch.equal(model.sample(5, method="ddpm"), model.sample(6, method="ddpm"))


def test_the_schedule_runs_from_data_to_noise():
    s = NoiseSchedule(100)
    assert s.alpha_bars[0] == 1 and s.alpha_bars[-1] < 1e-3
    assert bool((s.alpha_bars[1:] < s.alpha_bars[:-1]).all())
