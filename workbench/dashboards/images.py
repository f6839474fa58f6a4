"""Image view: the crops behind the current selection, as colour composites.

Which crops: the samples selected by box or lasso; otherwise those of the selected
perturbation; otherwise the first few of the Study. Each crop is a composite of its
channels (display colours from the image store, per-channel toggles, a contrast window in
percentiles, see :mod:`workbench.dashboards.composite`), sent to the browser as a small PNG.
The same tiles serve the concept page (exemplars) and the pair page (control, A, B, A+B).
"""

from __future__ import annotations

import base64

import numpy as np
import pandas as pd
import panel as pn
import param

from workbench.dashboards.base import StudyView, html_text, md_text
from workbench.dashboards.composite import composite, to_png
from workbench.dashboards.embeddings import highlight_mask

MAX_TILES = 24


def crop_table(study) -> pd.DataFrame:
    """The image store's table (one row per crop; index = crop id).

    Parameters
    ----------
    study : Study
        A Study with ``images``.

    Returns
    -------
    pandas.DataFrame
        The table (shared per artefact version; do not mutate it).
    """
    from workbench.dashboards.cache import cached

    return cached(study, ["images"], "crop-table", lambda s: s.read("images").obs.copy())


def tile_html(study, ids, captions=None, *, channels=None, contrast=(1.0, 99.5),
              scale: int = 3, css: str = "wb-tile") -> str:
    """HTML of a row of composite crops (PNG data URIs), with captions.

    Each caption is a string (escaped here) or a tuple of strings shown on separate lines.

    Parameters
    ----------
    study : Study
        A Study with ``images``.
    ids : iterable of str
        Crop ids; unknown ids are skipped and at most ``MAX_TILES`` are drawn.
    captions : sequence or None
        One caption per id; None captions each crop with its id.
    channels : sequence of int or None
        Channel positions to draw; None draws all.
    contrast : tuple of float
        Percentiles of each channel mapped to black and full colour.
    scale : int
        Integer upscaling of each crop.
    css : str
        CSS class of each tile.

    Returns
    -------
    str
        The HTML (``"<i>no crops</i>"`` when no id is known).
    """
    store = study.read("images")
    ids = [str(i) for i in ids][:MAX_TILES]
    known = set(store.obs.index.astype(str))
    ids = [i for i in ids if i in known]
    if not ids:
        return "<i>no crops</i>"
    crops = store.get(np.asarray(ids))
    captions = captions or ids
    parts = []
    for crop, cap in zip(crops, captions, strict=False):
        png = to_png(composite(crop, store.channel_colors, channels, contrast), scale=scale)
        uri = "data:image/png;base64," + base64.b64encode(png).decode()
        parts.append(f'<figure class="{css}" style="display:inline-block;margin:2px;text-align:center">'
                     f'<img src="{uri}" style="image-rendering:pixelated"/>'
                     f'<figcaption style="font-size:10px">{_caption(cap)}</figcaption></figure>')
    return "".join(parts)


def _caption(cap) -> str:
    lines = cap if isinstance(cap, tuple | list) else (cap,)
    return "<br>".join(html_text(line) for line in lines)


def ids_of(study, perturbation: str, n: int = 8, exact: bool = False) -> list[str]:
    """Crop ids of a perturbation (exact name, or any double containing the gene).

    Parameters
    ----------
    study : Study
        A Study with ``images``.
    perturbation : str
        The perturbation, or a gene.
    n : int
        At most this many ids, in table order.
    exact : bool
        Only crops whose perturbation is exactly ``perturbation``.

    Returns
    -------
    list of str
        The crop ids.
    """
    obs = crop_table(study)
    df = obs.assign(perturbation=obs["perturbation"].astype(str))
    mask = (df["perturbation"] == perturbation).to_numpy() if exact else highlight_mask(df, perturbation)
    return df.index[mask].astype(str)[:n].tolist()


class ImagesView(StudyView):
    """Composite crops of the selection, with channel toggles and contrast.

    Parameters
    ----------
    study : Study or None
        The open Study (it needs ``images``).
    selection : Selection or None
        The session's shared selection; None makes a new one.
    **params
        Values of the view's parameters (``channels``, ``contrast``, ``n``, ...).
    """

    channels = param.ListSelector(default=[], objects=[], doc="Channels drawn in the composite.")
    contrast = param.Range(default=(1.0, 99.5), bounds=(0.0, 100.0),
                           doc="Percentiles of each channel mapped to black and full colour.")
    n = param.Integer(default=12, bounds=(1, MAX_TILES), doc="How many crops to show.")

    needs = ("images",)
    key = "images"
    label = "Images"

    def __init__(self, study=None, selection=None, **params):
        super().__init__(study, selection, **params)
        if not self.missing:
            names = self.study.read("images").channel_names
            self.param.channels.objects = names
            self.channels = list(names)

    def shown_ids(self) -> list[str]:
        """The crops shown: the selected samples, else the selected perturbation's, else the first.

        Returns
        -------
        list of str
            At most ``n`` crop ids.
        """
        if self.selection.samples:
            return list(self.selection.samples)[: self.n]
        if self.selection.perturbation:
            return ids_of(self.study, self.selection.perturbation, self.n)
        return crop_table(self.study).index.astype(str)[: self.n].tolist()

    def table(self) -> pd.DataFrame:
        """The table rows of the crops shown.

        Returns
        -------
        pandas.DataFrame
            Rows of the crop table.
        """
        obs = crop_table(self.study)
        return obs.loc[[i for i in self.shown_ids() if i in obs.index]]

    @param.depends("selection.samples", "selection.perturbation", "channels", "contrast", "n")
    def _tiles(self):
        store = self.study.read("images")
        chans = [store.channel_names.index(c) for c in self.channels]
        obs = crop_table(self.study)
        ids = self.shown_ids()
        caps = [(i, str(obs.loc[i, "perturbation"])) if i in obs.index else i for i in ids]
        what = ("selected samples" if self.selection.samples else
                f"samples of {self.selection.perturbation}" if self.selection.perturbation
                else "first crops")
        return pn.Column(pn.pane.Markdown(f"{len(ids)} crops: {md_text(what)}",
                                          css_classes=["wb-images-status"]),
                         pn.pane.HTML(tile_html(self.study, ids, caps, channels=chans,
                                                contrast=self.contrast),
                                      width=self.width + 200))

    def body(self):
        """Channel, contrast and count controls above the tiles.

        Returns
        -------
        panel.Column
            The view's content.
        """
        return pn.Column(
            pn.Row(pn.widgets.CheckButtonGroup.from_param(self.param.channels),
                   pn.widgets.RangeSlider.from_param(self.param.contrast, width=200, step=0.5),
                   pn.widgets.IntSlider.from_param(self.param.n, width=140)),
            self._tiles)
