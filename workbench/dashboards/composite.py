"""Colour composites of multi-channel crops (numpy only; no Panel).

A Cell Painting crop has five or so channels, each a grey image. A composite gives every
channel a display colour, stretches it between two percentiles of its own intensities (the
"contrast"), adds the coloured channels and clips to [0, 1]: the usual additive overlay of
fluorescence viewers. Tiles are encoded to PNG so that a websocket message carries a few
kilobytes per crop rather than the raw array.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

COLORS = {
    "blue": (0.0, 0.35, 1.0), "green": (0.0, 1.0, 0.0), "cyan": (0.0, 1.0, 1.0),
    "red": (1.0, 0.0, 0.0), "magenta": (1.0, 0.0, 1.0), "yellow": (1.0, 1.0, 0.0),
    "gray": (1.0, 1.0, 1.0), "grey": (1.0, 1.0, 1.0), "white": (1.0, 1.0, 1.0),
    "orange": (1.0, 0.55, 0.0),
}


def color_rgb(name: str) -> tuple[float, float, float]:
    """An RGB triple in [0, 1] for a colour name or ``#rrggbb``.

    Parameters
    ----------
    name : str
        A colour name known to the module (``"blue"``, ``"magenta"``, ...) or ``#rrggbb``.

    Returns
    -------
    tuple of float
        The red, green and blue components; white for an unknown name.
    """
    if isinstance(name, str) and name.startswith("#") and len(name) == 7:
        return tuple(int(name[i:i + 2], 16) / 255 for i in (1, 3, 5))  # type: ignore[return-value]
    return COLORS.get(str(name).lower(), (1.0, 1.0, 1.0))


def composite(crop: np.ndarray, colors: Sequence[str], channels: Sequence[int] | None = None,
              contrast: tuple[float, float] = (1.0, 99.5)) -> np.ndarray:
    """One ``(C, H, W)`` crop -> ``(H, W, 3)`` uint8 RGB.

    ``channels`` lists the channel positions to show (all by default); ``contrast`` is the
    pair of percentiles mapped to black and full colour, per channel.

    Parameters
    ----------
    crop : numpy.ndarray
        One crop, ``(C, H, W)``.
    colors : sequence of str
        Display colour of each channel (see :func:`color_rgb`).
    channels : sequence of int or None
        Positions of the channels to show; None shows all.
    contrast : tuple of float
        Lower and upper percentile of each channel mapped to black and to full colour.

    Returns
    -------
    numpy.ndarray
        The RGB image, ``(H, W, 3)`` uint8; the channels' colours are added and clipped.
    """
    crop = np.asarray(crop, dtype=np.float32)
    if crop.ndim != 3:
        raise ValueError(f"expected one crop (C, H, W), got shape {crop.shape}")
    channels = range(crop.shape[0]) if channels is None else channels
    rgb = np.zeros((*crop.shape[1:], 3), dtype=np.float32)
    lo_p, hi_p = contrast
    for c in channels:
        img = crop[c]
        lo, hi = np.percentile(img, [lo_p, hi_p])
        scaled = np.clip((img - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(img)
        rgb += scaled[..., None] * np.asarray(color_rgb(colors[c]), dtype=np.float32)
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def to_png(rgb: np.ndarray, scale: int = 1) -> bytes:
    """Encode an ``(H, W, 3)`` uint8 image as PNG (nearest-neighbour upscaled).

    Parameters
    ----------
    rgb : numpy.ndarray
        The image, ``(H, W, 3)`` uint8.
    scale : int
        Integer upscaling factor (1 keeps the size).

    Returns
    -------
    bytes
        The PNG file.
    """
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(rgb))
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
