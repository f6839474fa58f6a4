"""The renderer: each latent property shows in the channels the ground truth names."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.data.simulate import CHANNEL_EFFECTS, CHANNELS, PROPERTIES, TextureBank, render_cells
from workbench.data.simulate.render import CAMERA_OFFSET


def _features(crops: np.ndarray) -> np.ndarray:
    """Per crop and channel: mean intensity, pixel sd (texture) and the anisotropy of the
    intensity-weighted second moments (shape)."""
    x = np.clip(crops.astype(np.float32) - CAMERA_OFFSET, 0, None)
    size = x.shape[-1]
    ax = np.arange(size) - (size - 1) / 2
    w = x / (x.sum(axis=(2, 3), keepdims=True) + 1e-6)
    cxx = (w * ax[None, None, None, :] ** 2).sum(axis=(2, 3))
    cyy = (w * ax[None, None, :, None] ** 2).sum(axis=(2, 3))
    cxy = (w * ax[None, None, :, None] * ax[None, None, None, :]).sum(axis=(2, 3))
    aniso = np.sqrt((cxx - cyy) ** 2 + 4 * cxy ** 2) / (cxx + cyy + 1e-6)
    return np.stack([x.mean(axis=(2, 3)), x.std(axis=(2, 3)), aniso], axis=-1)  # (n, C, 3)


@pytest.fixture(scope="module")
def control_features():
    bank = TextureBank(32, seed=0)
    z = np.random.default_rng(0).standard_normal((300, len(PROPERTIES)))
    return bank, _features(render_cells(z, np.random.default_rng(1), bank))


@pytest.mark.parametrize("prop", PROPERTIES)
def test_property_changes_its_channels_and_only_them(prop, control_features):
    bank, f0 = control_features
    z = np.random.default_rng(2).standard_normal((300, len(PROPERTIES)))
    z[:, PROPERTIES.index(prop)] += 2.5
    f1 = _features(render_cells(z, np.random.default_rng(3), bank))
    t = (f1.mean(0) - f0.mean(0)) / np.sqrt(f1.var(0) / len(f1) + f0.var(0) / len(f0))
    touched = [CHANNELS.index(c) for c in CHANNEL_EFFECTS[prop]]
    untouched = [c for c in range(len(CHANNELS)) if c not in touched]
    strongest = np.abs(t).max(axis=1)  # per channel, over mean and sd
    assert strongest[touched].min() > 4, dict(zip(CHANNELS, strongest.round(1)))
    if untouched:
        assert strongest[untouched].max() < 4, dict(zip(CHANNELS, strongest.round(1)))


def test_crops_are_uint16_with_noise_and_background():
    bank = TextureBank(16, seed=0)
    z = np.zeros((4, len(PROPERTIES)))
    a = render_cells(z, np.random.default_rng(0), bank)
    b = render_cells(z, np.random.default_rng(0), bank)
    c = render_cells(z, np.random.default_rng(1), bank)
    assert a.dtype == np.uint16 and a.shape == (4, 5, 16, 16)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.min() > 50  # camera offset: no clipped zeros


def test_gain_background_and_illumination_act_on_images():
    bank = TextureBank(16, seed=0)
    z = np.zeros((200, len(PROPERTIES)))
    base = render_cells(z, np.random.default_rng(0), bank).astype(float).mean()
    gain = np.full((200, 5), 1.5)
    brighter = render_cells(z, np.random.default_rng(0), bank, gain=gain).astype(float).mean()
    assert brighter - CAMERA_OFFSET > (base - CAMERA_OFFSET) * 1.3
    illum = np.tile([1.0, 0.4, 0.0], (200, 1))  # brighter to the right
    img = render_cells(z, np.random.default_rng(0), bank, illumination=illum).astype(float)
    assert img[..., -4:].mean() > img[..., :4].mean() * 1.1


def test_background_noise_is_shot_plus_read_noise():
    """Far from any cell a pixel holds background photons: its variance across crops is
    photons + read noise squared (Poisson in its Gaussian limit), and pixels of different
    crops are uncorrelated."""
    from workbench.data.simulate.render import PHOTONS_PER_UNIT, READ_NOISE

    bank = TextureBank(32, seed=0)
    z = np.zeros((800, len(PROPERTIES)))
    z[:, PROPERTIES.index("cell_count")] = -20  # no neighbours
    z[:, PROPERTIES.index("cell_area")] = -3  # a small cell, far from the corners
    bg = np.full((800, 5), 0.05)
    x = render_cells(z, np.random.default_rng(0), bank, background=bg).astype(float)
    corner = x[:, :, :3, :3].reshape(800, -1)
    photons = 0.05 * PHOTONS_PER_UNIT
    assert abs(corner.mean() - (CAMERA_OFFSET + photons)) < 1.0
    assert corner.var() == pytest.approx(photons + READ_NOISE ** 2, rel=0.1)
    r = np.corrcoef(corner[:-1, 0], corner[1:, 0])[0, 1]
    assert abs(r) < 0.15
