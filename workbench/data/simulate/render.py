"""Procedural 5-channel Cell-Painting-like crops drawn from latent cell states.

Each crop shows one cell centred in the frame (and, when the cell is crowded, pieces of its
neighbours at the edges). The five channels follow the Cell Painting assay (Bray et al.,
Nature Protocols 2016): ``DNA`` (Hoechst: the nucleus, chromatin texture), ``ER``
(concanavalin A: a perinuclear reticular network), ``RNA`` (SYTO14: nucleoli and cytoplasmic
RNA), ``AGP`` (phalloidin / WGA: the actin cortex at the membrane and stress fibres) and
``Mito`` (MitoTracker: punctate to tubular mitochondria).

Shapes are soft ellipses in a rotated frame; textures are taken from small banks of
band-pass noise and spot fields drawn once per world, so that every crop is a handful of
vectorised array operations over a ``(n, H, W)`` stack. The latent properties of
:mod:`workbench.data.simulate.morphology` set sizes, intensities and texture contrasts (see
:func:`physical_parameters`). The acquisition then adds what real screens have: a smooth
illumination gradient per plate, per-batch and per-plate channel gains and backgrounds,
photon shot noise and camera read noise (Gaussian limit, read from a pool of pre-drawn
normals at random offsets, which is much cheaper than fresh draws), and 16-bit quantisation.
"""

from __future__ import annotations

import numpy as np

from workbench.data.simulate.morphology import CHANNELS, PROPERTIES

PHOTONS_PER_UNIT = 900.0   # expected photon count of a pixel of intensity 1.0
CAMERA_OFFSET = 100.0      # dark level added to every pixel (ADU)
READ_NOISE = 4.0           # camera read noise (ADU, sd)


def _band_noise(rng: np.random.Generator, k: int, size: int, sigma: float) -> np.ndarray:
    """``k`` smooth noise fields with Gaussian spectrum of width ``sigma`` pixels, sd 1."""
    white = rng.standard_normal((k, size, size))
    f = np.fft.fftfreq(size)
    g = np.exp(-2 * (np.pi * sigma) ** 2 * (f[:, None] ** 2 + f[None, :] ** 2))
    out = np.fft.ifft2(np.fft.fft2(white) * g).real
    out -= out.mean(axis=(1, 2), keepdims=True)
    out /= out.std(axis=(1, 2), keepdims=True) + 1e-9
    return out.astype(np.float32)


def _spots(rng: np.random.Generator, k: int, size: int, density: float, sigma: float) -> np.ndarray:
    """``k`` fields of blurred random points, normalised to mean 1."""
    pts = (rng.random((k, size, size)) < density).astype(np.float64)
    f = np.fft.fftfreq(size)
    g = np.exp(-2 * (np.pi * sigma) ** 2 * (f[:, None] ** 2 + f[None, :] ** 2))
    out = np.fft.ifft2(np.fft.fft2(pts) * g).real.clip(0)
    out /= out.mean(axis=(1, 2), keepdims=True) + 1e-9
    return out.astype(np.float32)


class TextureBank:
    """Pre-drawn texture fields at one crop size (drawn once per world and size).

    Parameters
    ----------
    size : int
        Crop side in pixels.
    seed : int
        Seed of the texture fields and the noise pool.
    k : int
        Fields drawn per texture kind.
    """

    def __init__(self, size: int, seed: int = 0, k: int = 96):
        rng = np.random.default_rng(seed)
        s = size / 64.0
        self.size = size
        self.k = k
        self.coarse = _band_noise(rng, k, size, 6.0 * s)       # membrane wobble, illumination
        self.mid = _band_noise(rng, k, size, 2.0 * s)          # ER network
        self.fine = _band_noise(rng, k, size, 0.8 * s)         # chromatin grain
        self.nucleoli = _spots(rng, k, size, 0.004 / s ** 2, 1.3 * s)
        self.mito_dense = _spots(rng, k, size, 0.06 / s ** 2, 0.7 * s)
        self.mito_sparse = _spots(rng, k, size, 0.012 / s ** 2, 1.1 * s)
        self.fibres = _fibres(rng, k, size)
        # a pool of standard normals; each crop channel reads a window at a random offset
        # (drawing fresh normals was 40% of the rendering time)
        self.noise = rng.standard_normal(max(1 << 22, 64 * size * size), dtype=np.float32)

    def noise_fields(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        """Standard-normal fields of ``shape`` (..., H, W): windows of the pool.

        Parameters
        ----------
        rng : numpy.random.Generator
            Chooses the windows.
        shape : tuple of int
            ``(..., H, W)`` with ``H = W = size``.

        Returns
        -------
        numpy.ndarray
            float32 of ``shape`` (a view of the pool).
        """
        hw = self.size * self.size
        windows = np.lib.stride_tricks.sliding_window_view(self.noise, hw)[:: 7]
        starts = rng.integers(0, len(windows), int(np.prod(shape[:-2])))
        return windows[starts].reshape(shape)


def _fibres(rng: np.random.Generator, k: int, size: int) -> np.ndarray:
    """Stress-fibre-like fields: noise stretched along one axis, randomly rotated later."""
    white = rng.standard_normal((k, size, size))
    f = np.fft.fftfreq(size)
    g = np.exp(-2 * np.pi ** 2 * ((4.0 * f[:, None]) ** 2 + (0.6 * f[None, :] * size / 64) ** 2))
    out = np.fft.ifft2(np.fft.fft2(white) * g).real
    out = np.abs(out) / (np.abs(out).mean(axis=(1, 2), keepdims=True) + 1e-9)
    return out.astype(np.float32)


def physical_parameters(z: np.ndarray) -> dict[str, np.ndarray]:
    """Map latent properties (sd units) to drawing parameters (frame units: half-width 1).

    Parameters
    ----------
    z : numpy.ndarray
        ``(n, len(PROPERTIES))`` latent states.

    Returns
    -------
    dict of numpy.ndarray
        One value per cell for each of ``cell_a``, ``cell_b`` (semi-axes), ``nuc_r``,
        ``dna``, ``er``, ``er_contrast``, ``rna``, ``mito``, ``mito_punctate``, ``actin`` and
        ``neighbours`` (expected neighbour count).
    """
    p = {name: z[:, i] for i, name in enumerate(PROPERTIES)}
    area = np.exp(0.22 * p["cell_area"])
    elong = np.exp(0.25 + 0.3 * p["cell_elongation"])
    cell_b = np.clip(0.58 * np.sqrt(area / elong), 0.2, 0.98)
    return {
        "cell_a": np.clip(0.58 * np.sqrt(area * elong), 0.25, 0.98),
        "cell_b": cell_b,
        # the nucleus stays inside the cell: at most 80% of the short semi-axis
        "nuc_r": np.minimum(np.clip(0.26 * np.exp(0.16 * p["nucleus_size"]), 0.08, 0.6),
                            0.8 * cell_b / 1.12),
        "dna": np.exp(0.28 * p["dna_intensity"]),
        "er": 0.55 * np.exp(0.28 * p["er_intensity"]),
        "er_contrast": 0.45 * np.exp(0.4 * p["er_texture"]),
        "rna": 0.5 * np.exp(0.28 * p["rna_intensity"]),
        "mito": 0.5 * np.exp(0.28 * p["mito_intensity"]),
        "mito_punctate": 1.0 / (1.0 + np.exp(-0.9 * p["mito_texture"])),
        "actin": 0.6 * np.exp(0.28 * p["actin_intensity"]),
        "neighbours": 0.9 * np.exp(0.45 * p["cell_count"]),
    }


def _soft(d: np.ndarray, edge: float) -> np.ndarray:
    """Anti-aliased inside-mask of an ellipse from its normalised radius ``d``: a linear
    ramp of width ``edge`` around ``d = 1`` (cheaper than a sigmoid, same look)."""
    out = (1.0 - d) * np.float32(0.5 / edge) + np.float32(0.5)
    return np.clip(out, 0.0, 1.0, out=out)


def _tent(d: np.ndarray, centre: float, width: float) -> np.ndarray:
    """A thin bright band where ``d`` is near ``centre`` (membranes)."""
    out = np.float32(1.0) - np.abs(d - np.float32(centre)) * np.float32(1.0 / width)
    return np.clip(out, 0.0, 1.0, out=out)


def render_cells(
    z: np.ndarray,
    rng: np.random.Generator,
    bank: TextureBank,
    *,
    gain: np.ndarray | None = None,
    background: np.ndarray | None = None,
    illumination: np.ndarray | None = None,
    batch_size: int = 128,
) -> np.ndarray:
    """Draw one ``(n, 5, H, W)`` uint16 crop per latent state.

    Parameters
    ----------
    z : numpy.ndarray
        ``(n, len(PROPERTIES))`` latent states.
    rng : numpy.random.Generator
        Randomness for placement, texture choice and noise.
    bank : TextureBank
        Texture bank of the crop size (``bank.size``).
    gain, background : numpy.ndarray, optional
        ``(n, 5)`` per-crop channel gain (multiplicative) and background (additive, in
        intensity units): batch and plate effects. Default 1 and 0.03.
    illumination : numpy.ndarray, optional
        ``(n, 3)``: illumination level at the crop centre and its x and y gradient across
        the crop (plate vignetting). Default flat.
    batch_size : int
        Crops drawn at once (bounds the memory).

    Returns
    -------
    numpy.ndarray
        ``(n, 5, bank.size, bank.size)`` uint16, channels in :data:`CHANNELS` order.
    """
    n = len(z)
    out = np.empty((n, len(CHANNELS), bank.size, bank.size), np.uint16)
    gain = np.ones((n, len(CHANNELS))) if gain is None else gain
    background = np.full((n, len(CHANNELS)), 0.03) if background is None else background
    illumination = np.tile([1.0, 0.0, 0.0], (n, 1)) if illumination is None else illumination
    for s in range(0, n, batch_size):
        sl = slice(s, s + batch_size)
        out[sl] = _render_batch(z[sl], rng, bank, gain[sl], background[sl], illumination[sl])
    return out


def _render_batch(z, rng, bank, gain, background, illumination) -> np.ndarray:
    n, size, k = len(z), bank.size, bank.k
    f32 = np.float32
    pp = {key: v.astype(f32)[:, None, None] for key, v in physical_parameters(z).items()}
    ax = np.linspace(-1, 1, size, dtype=f32)
    yy, xx = ax[:, None], ax[None, :]
    cx = rng.normal(0, 0.04, n).astype(f32)[:, None, None]
    cy = rng.normal(0, 0.04, n).astype(f32)[:, None, None]
    theta = rng.uniform(0, np.pi, n)
    cos = np.cos(theta).astype(f32)[:, None, None]
    sin = np.sin(theta).astype(f32)[:, None, None]
    dx, dy = xx - cx, yy - cy
    u = dx * cos + dy * sin
    v = -dx * sin + dy * cos
    pick = lambda: rng.integers(0, k, n)  # noqa: E731
    edge = f32(1.5 / size * 2)
    wobble = 1.0 + 0.07 * bank.coarse[pick()]
    d_cell = np.sqrt((u / pp["cell_a"]) ** 2 + (v / pp["cell_b"]) ** 2) * wobble
    cell = _soft(d_cell, edge * 2)
    nx = u + f32(0.05)  # the nucleus sits a little off the cell centre
    d2_nuc = (nx / (pp["nuc_r"] * 1.12)) ** 2 + (v / (pp["nuc_r"] * 0.9)) ** 2
    nuc = _soft(d2_nuc, edge * 3.0)  # squared radius: the ramp is twice as wide
    cyto = cell * (1.0 - nuc)
    perinuclear = 1.0 / (1.0 + 1.5 * d_cell * d_cell)

    img = np.empty((n, 5, size, size), f32)
    # DNA: nucleus with chromatin grain
    img[:, 0] = pp["dna"] * nuc * (0.85 + 0.15 * bank.fine[pick()])
    # ER: perinuclear reticular network
    er_tex = np.clip(1.0 + pp["er_contrast"] * bank.mid[pick()], 0, None)
    img[:, 1] = pp["er"] * cyto * perinuclear * er_tex * 1.6
    # RNA: nucleoli inside the nucleus plus diffuse cytoplasmic RNA
    img[:, 2] = pp["rna"] * (0.6 * nuc * bank.nucleoli[pick()] + 0.35 * cyto)
    # AGP: actin cortex at the membrane and fibres along a random axis
    ring = _tent(d_cell, 0.97, 0.12)
    fib = bank.fibres[pick()]
    flip = rng.random(n) < 0.5
    fib[flip] = fib[flip].transpose(0, 2, 1)
    img[:, 3] = pp["actin"] * (0.9 * ring + 0.25 * cell * fib)
    # Mito: mixture of dense tubular and sparse punctate fields, denser near the nucleus
    w = pp["mito_punctate"]
    mito_tex = (1 - w) * bank.mito_dense[pick()] + w * bank.mito_sparse[pick()]
    img[:, 4] = pp["mito"] * cyto * (0.4 + 0.9 * perinuclear) * mito_tex
    _add_neighbours(img, rng, bank, pp["neighbours"][:, 0, 0], xx, yy, edge)

    level, gx, gy = (illumination[:, i].astype(f32)[:, None, None] for i in range(3))
    illum = (level + gx * xx + gy * yy)[:, None]
    img = img * gain.astype(f32)[:, :, None, None] * illum
    img += background.astype(f32)[:, :, None, None]
    photons = np.clip(img, 0, None) * f32(PHOTONS_PER_UNIT)
    # shot noise (Poisson, in its Gaussian limit) and read noise in one draw
    noise_sd = np.sqrt(photons + f32(READ_NOISE ** 2))
    noisy = photons + f32(CAMERA_OFFSET + 0.5) + noise_sd * bank.noise_fields(rng, photons.shape)
    return np.clip(noisy, 0, 65535, out=noisy).astype(np.uint16)  # +0.5 then floor: rounding


def _add_neighbours(img, rng, bank, rate, xx, yy, edge, slots: int = 3) -> None:
    """Pieces of neighbouring cells entering from the edges (crowding = ``cell_count``)."""
    count = np.minimum(rng.poisson(rate), slots)
    for s in range(slots):
        active = np.flatnonzero(count > s)
        if active.size == 0:
            break
        m = active.size
        ang = rng.uniform(0, 2 * np.pi, m)
        dist = rng.uniform(1.05, 1.45, m)
        ncx = (dist * np.cos(ang)).astype(np.float32)[:, None, None]
        ncy = (dist * np.sin(ang)).astype(np.float32)[:, None, None]
        r = rng.uniform(0.45, 0.65, m).astype(np.float32)[:, None, None]
        d = np.sqrt((xx - ncx) ** 2 + (yy - ncy) ** 2) / r
        cell = _soft(d, edge * 2)
        nuc = _soft(d * 2.0, edge * 1.5)
        cyto = cell * (1 - nuc)
        tex = bank.mito_dense[rng.integers(0, bank.k, m)]
        img[active, 0] += 0.9 * nuc
        img[active, 1] += 0.45 * cyto * (1 + 0.3 * bank.mid[rng.integers(0, bank.k, m)])
        img[active, 2] += 0.2 * cyto + 0.25 * nuc
        img[active, 3] += 0.5 * _tent(d, 0.97, 0.12)
        img[active, 4] += 0.4 * cyto * tex
