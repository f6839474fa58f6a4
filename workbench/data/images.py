"""Image stores: chunked Zarr stacks of crops (and their masks) with channel metadata.

An image store is a Zarr group:

* ``crops``  - ``(n, C, H, W)`` array, chunked along ``n``, read lazily with dask;
* ``masks``  - optional ``(n, H, W)`` integer labels (0 = background);
* ``obs``    - one row per crop (AnnData's on-disk dataframe encoding), whose index is the
  crop id that ``profiles.zarr`` uses as its ``obs_names``;
* attributes (OME-Zarr style): ``channel_names``, ``channel_colors``, ``pixel_size_um``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.errors import ValidationError

#: Display colours for the usual Cell Painting channels; anything else cycles the palette.
CHANNEL_COLORS = {
    "DNA": "blue", "nuclei": "blue", "Hoechst": "blue", "DAPI": "blue",
    "ER": "green", "RNA": "cyan", "AGP": "red", "actin": "red", "membrane": "red",
    "Mito": "magenta", "mito": "magenta", "mitochondria": "magenta",
}
PALETTE = ["blue", "green", "cyan", "red", "magenta", "yellow", "gray"]


def default_colors(channel_names: Sequence[str]) -> list[str]:
    """Display colours of channels: the usual colour of a known channel name, else a palette.

    Parameters
    ----------
    channel_names : sequence of str
        The channel names, in order.

    Returns
    -------
    list of str
        One hex colour per channel.
    """
    return [CHANNEL_COLORS.get(c, PALETTE[i % len(PALETTE)]) for i, c in enumerate(channel_names)]


def write_image_store(
    path: str | Path,
    crops,
    obs: pd.DataFrame,
    channel_names: Sequence[str],
    *,
    masks=None,
    pixel_size_um: float | None = None,
    channel_colors: Sequence[str] | None = None,
    chunk_size: int = 256,
    dtype=None,
) -> dict:
    """Write crops (an array, or an iterable of ``(k, C, H, W)`` batches) and their table.

    Streaming an iterable keeps memory to one batch. Raises ValidationError when the
    channel count does not match ``channel_names`` or the table length does not match.

    Parameters
    ----------
    path : str or pathlib.Path
        The Zarr group to write (replaced if it exists).
    crops : array-like or iterable of array-like
        All crops as ``(n, C, H, W)``, or batches of that shape in order.
    obs : pandas.DataFrame
        One row per crop (its index becomes the crop ids, as strings).
    channel_names : sequence of str
        One name per channel, in the order of axis 1.
    masks : array-like, iterable of array-like or None
        Masks with one row per crop, as one array or batches matching those of ``crops``;
        None for no masks.
    pixel_size_um : float or None
        Pixel size in micrometres, stored as an attribute; None when unknown.
    channel_colors : sequence of str or None
        Display colour per channel; None uses :func:`default_colors`.
    chunk_size : int
        Crops per Zarr chunk.
    dtype : numpy dtype or None
        Storage dtype of the crops; None keeps the first batch's.

    Returns
    -------
    dict
        ``n_crops``, ``crop_shape`` (C, H, W), ``channel_names`` and ``has_masks``.
    """
    import zarr
    from anndata.io import write_elem

    channel_names = [str(c) for c in channel_names]
    n = len(obs)
    batches: Iterable = [crops] if hasattr(crops, "shape") else crops
    group = zarr.open_group(str(path), mode="w")
    arr = None
    masks_arr = None
    written = 0
    mask_batches = iter([masks] if masks is not None and hasattr(masks, "shape") else (masks or []))
    for batch in batches:
        batch = np.asarray(batch)
        if batch.ndim != 4:
            raise ValidationError(
                f"image stack has shape {batch.shape}; expected (n, channels, height, width).",
                "stack crops as n x C x H x W (use np.moveaxis for channels-last data).",
            )
        if batch.shape[1] != len(channel_names):
            raise ValidationError(
                f"image stack has {batch.shape[1]} channels but {len(channel_names)} channel "
                f"names were given ({', '.join(channel_names)}).",
                "give one name per channel, in the order of axis 1 of the stack.",
            )
        if arr is None:
            arr = group.create_array(
                "crops", shape=(n, *batch.shape[1:]), dtype=dtype or batch.dtype,
                chunks=(min(chunk_size, max(n, 1)), *batch.shape[1:]),
            )
        if written + len(batch) > n:
            raise ValidationError(f"image stack has more crops than the {n} rows of its table.",
                                  "give exactly one table row per crop.")
        arr[written: written + len(batch)] = batch
        m = next(mask_batches, None)
        if m is not None:
            m = np.asarray(m)
            if masks_arr is None:
                masks_arr = group.create_array(
                    "masks", shape=(n, *m.shape[1:]), dtype=m.dtype,
                    chunks=(min(chunk_size, max(n, 1)), *m.shape[1:]))
            masks_arr[written: written + len(m)] = m
        written += len(batch)
    if written != n:
        raise ValidationError(
            f"image stack has {written} crops but its table has {n} rows.",
            "give exactly one table row per crop.",
        )
    obs = obs.copy()
    obs.index = obs.index.astype(str)
    write_elem(group, "obs", obs)
    group.attrs.update({
        "channel_names": channel_names,
        "channel_colors": list(channel_colors or default_colors(channel_names)),
        "pixel_size_um": pixel_size_um,
        "workbench_kind": "image_store",
    })
    return {"n_crops": n, "crop_shape": list(arr.shape[1:]) if arr is not None else [],
            "channel_names": channel_names, "has_masks": masks_arr is not None}


class ImageStore:
    """Read side of an image store: lazy crops, table, channel metadata.

    Parameters
    ----------
    path : str or pathlib.Path
        The image store's Zarr group (the ``images`` or ``fields`` artefact's folder); opened
        read-only.
    """

    def __init__(self, path: str | Path):
        import zarr

        self.path = Path(path)
        self.group = zarr.open_group(str(self.path), mode="r")
        attrs = dict(self.group.attrs)
        self.channel_names: list[str] = list(attrs.get("channel_names", []))
        self.channel_colors: list[str] = list(
            attrs.get("channel_colors") or default_colors(self.channel_names))
        self.pixel_size_um = attrs.get("pixel_size_um")
        self._obs = None

    @property
    def obs(self) -> pd.DataFrame:
        if self._obs is None:
            from anndata.io import read_elem

            self._obs = read_elem(self.group["obs"])
        return self._obs

    @property
    def crops(self):
        """All crops as a lazy dask array ``(n, C, H, W)``."""
        import dask.array as da

        return da.from_zarr(self.group["crops"])

    @property
    def has_masks(self) -> bool:
        return "masks" in self.group

    def __len__(self) -> int:
        return int(self.group["crops"].shape[0])

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.group["crops"].shape)

    def get(self, index) -> np.ndarray:
        """Crops by integer position(s) or crop id(s), as a numpy array.

        Parameters
        ----------
        index : int, str or array-like of them
            Positions, or crop ids (strings), in the order wanted.

        Returns
        -------
        numpy.ndarray
            The crops, ``(k, C, H, W)``.

        Raises
        ------
        ValidationError
            When a crop id is not in the store.
        """
        idx = self._positions(index)
        return self.group["crops"].get_orthogonal_selection((idx,))

    def get_masks(self, index) -> np.ndarray:
        """Masks by integer position(s) or crop id(s), as a numpy array.

        Parameters
        ----------
        index : int, str or array-like of them
            Positions, or crop ids (strings).

        Returns
        -------
        numpy.ndarray
            The masks, one per crop.

        Raises
        ------
        ValidationError
            When the store has no masks, or a crop id is not in it.
        """
        if not self.has_masks:
            raise ValidationError(f"image store {self.path.name} has no masks.")
        return self.group["masks"].get_orthogonal_selection((self._positions(index),))

    def _positions(self, index) -> np.ndarray:
        idx = np.atleast_1d(np.asarray(index))
        if idx.dtype.kind in "US O".replace(" ", ""):
            pos = pd.Index(self.obs.index).get_indexer(idx.astype(str))
            if (pos < 0).any():
                bad = idx[pos < 0][:5].tolist()
                raise ValidationError(f"crop id(s) {bad} are not in {self.path.name}.")
            return pos
        return idx.astype(int)

    def iter_batches(self, batch_size: int = 256):
        """Yield ``(start, crops)`` batches read chunk by chunk (bounded memory).

        Parameters
        ----------
        batch_size : int
            Crops per batch.

        Yields
        ------
        tuple
            The position of the batch's first crop and the crops, ``(k, C, H, W)``.
        """
        arr = self.group["crops"]
        for start in range(0, len(self), batch_size):
            yield start, arr[start: start + batch_size]
