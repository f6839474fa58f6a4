"""Perturbation map: how alike the perturbations' profiles are, and which of them are known
to belong together.

The heatmap shows the cosine similarity of the perturbations' profiles (``perturbations.X``,
written by the embed step) with rows and columns in the order of an
average-linkage clustering on cosine distance (computed once per artefact version and
cached), so that complexes and pathways appear as blocks. The table lists the nearest
neighbours of the selected perturbation and marks the pairs that a relationship database
(the Study's ``relationships`` artefact, EFAAR format ``entity1, entity2``) already knows:
the recall benchmark in one glance.
"""

from __future__ import annotations

from pathlib import Path

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from workbench.dashboards.base import StudyView, md_text
from workbench.dashboards.cache import cached

#: Above this many perturbations the heatmap is drawn as an image (no per-cell glyphs).
MAX_HEATMAP_CELLS = 120
#: At most this many perturbations are named on each axis of the heatmap.
MAX_TICKS = 50


def tick_labels(labels: list[str], n: int = MAX_TICKS) -> list[str]:
    """The labels named on an axis: all of them up to ``n``, else every k-th (evenly over
    the clustered order, so each block keeps a name).

    Parameters
    ----------
    labels : list of str
        The labels, in axis order.
    n : int
        Most labels to name.

    Returns
    -------
    list of str
        The labels to name.
    """
    step = max(1, -(-len(labels) // n))
    return list(labels[::step])


def _clustered(study):
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    adata = study.read("perturbations")  # the embed step: one row per perturbation
    labels = adata.obs_names.astype(str).tolist()
    x = np.asarray(adata.X, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    cos = (x @ x.T).astype(np.float32)
    if len(labels) > 2:
        dist = np.clip(1 - (cos + cos.T) / 2, 0, 2)
        np.fill_diagonal(dist, 0)
        order = leaves_list(linkage(squareform(dist, checks=False), method="average"))
    else:
        order = np.arange(len(labels))
    return [labels[i] for i in order], cos[np.ix_(order, order)]


def similarity(study) -> tuple[list[str], np.ndarray]:
    """Perturbation labels in clustered order and their cosine-similarity matrix.

    Parameters
    ----------
    study : Study
        A Study with ``perturbations``.

    Returns
    -------
    labels : list of str
        The perturbations, in clustered order.
    cosine : numpy.ndarray
        Their cosine similarities, in the same order on both axes.
    """
    return cached(study, ["perturbations"], "similarity", _clustered)


def _relationships(study) -> pd.DataFrame:
    obj = study.read("relationships")
    if isinstance(obj, pd.DataFrame):
        df = obj
    else:
        path = Path(obj)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix in (".csv", ".tsv", ".txt"))
            path = files[0]
        df = pd.read_csv(path, sep=None, engine="python")
    cols = {c.lower(): c for c in df.columns}
    a = cols.get("entity1") or df.columns[0]
    b = cols.get("entity2") or df.columns[1]
    out = pd.DataFrame({"entity1": df[a].astype(str), "entity2": df[b].astype(str)})
    src = cols.get("source") or cols.get("database")
    out["source"] = df[src].astype(str) if src else "relationships"
    return out


def known_pairs(study) -> dict[frozenset, str]:
    """Known relationships as ``{frozenset({a, b}): source}`` (empty when none).

    Parameters
    ----------
    study : Study
        The Study.

    Returns
    -------
    dict
        Unordered pair to the source that lists it.
    """
    if not study.has("relationships"):
        return {}

    def _pairs(study):
        df = _relationships(study)
        return {frozenset((a, b)): s for a, b, s in df[["entity1", "entity2", "source"]].itertuples(
            index=False)}

    return cached(study, ["relationships"], "known-pairs", _pairs)


def neighbours(study, perturbation: str, k: int = 10) -> pd.DataFrame:
    """The ``k`` most similar perturbations, with known relationships marked.

    Parameters
    ----------
    study : Study
        A Study with ``perturbations``.
    perturbation : str
        The perturbation; an unknown one gives an empty table.
    k : int
        How many neighbours.

    Returns
    -------
    pandas.DataFrame
        ``perturbation``, ``cosine`` (rounded to four digits), ``known`` and ``source``, most
        similar first.
    """
    labels, cos = similarity(study)
    if perturbation not in labels:
        return pd.DataFrame(columns=["perturbation", "cosine", "known", "source"])
    i = labels.index(perturbation)
    order = [j for j in np.argsort(-cos[i]) if j != i][:k]
    known = known_pairs(study)
    rows = []
    for j in order:
        src = known.get(frozenset((perturbation, labels[j])), "")
        rows.append({"perturbation": labels[j], "cosine": round(float(cos[i, j]), 4),
                     "known": bool(src), "source": src})
    return pd.DataFrame(rows)


def _thin_ticks(named: set[str]):
    """A Bokeh hook that leaves only the ``named`` factors' tick labels visible."""
    def hook(plot, element):
        from bokeh.models import CustomJSTickFormatter

        js = f"return {sorted(named)!r}.includes(tick) ? tick : '';"
        for axis in (plot.state.xaxis, plot.state.yaxis):
            axis.formatter = CustomJSTickFormatter(code=js)
    return hook


class PerturbationMapView(StudyView):
    """Clustered similarity heatmap and nearest neighbours of the selected perturbation.

    Parameters
    ----------
    study : Study or None
        The open Study (it needs ``perturbations``).
    selection : Selection or None
        The session's shared selection; None makes a new one.
    **params
        Values of the view's parameters (``k``, ...).
    """

    k = param.Integer(default=10, bounds=(1, 100), doc="Number of nearest neighbours listed.")

    needs = ("perturbations",)
    key = "perturbation_map"
    label = "Perturbation map"

    def table(self) -> pd.DataFrame:
        """The neighbours of the selected perturbation, or the whole matrix when none is selected.

        Returns
        -------
        pandas.DataFrame
            See :func:`neighbours`, or the labelled cosine matrix.
        """
        if self.selection.perturbation:
            return neighbours(self.study, self.selection.perturbation, self.k)
        labels, cos = similarity(self.study)
        return pd.DataFrame(cos, index=labels, columns=labels)

    def heatmap(self):
        """The clustered cosine heatmap; a tap selects the perturbation of its row.

        Returns
        -------
        holoviews.HeatMap or holoviews.Image
            The heatmap (an image above ``MAX_HEATMAP_CELLS`` perturbations).
        """
        labels, cos = similarity(self.study)
        n = len(labels)
        opts = dict(width=self.width, height=self.height, cmap="RdBu_r", clim=(-1, 1),
                    colorbar=True, tools=["save", "reset", "tap", "hover"],
                    title="Cosine similarity (clustered)")
        named = tick_labels(labels)
        if n <= MAX_HEATMAP_CELLS:
            df = pd.DataFrame({"a": np.repeat(labels, n), "b": np.tile(labels, n),
                               "cosine": cos.ravel()})
            hm = hv.HeatMap(df, ["b", "a"], "cosine").opts(xrotation=90, invert_yaxis=True, **opts)
            if len(named) < n:  # name every k-th perturbation; hover names each cell
                hm = hm.opts(hooks=[_thin_ticks(set(named))])
        else:
            # row 0 of an Image is its top: the first perturbation at the top, as above
            pos = {name: i for i, name in enumerate(labels)}
            hm = hv.Image(cos, bounds=(0, 0, n, n), vdims="cosine").opts(
                xticks=[(pos[t] + 0.5, t) for t in named],
                yticks=[(n - pos[t] - 0.5, t) for t in named], xrotation=90, **opts)
        tap = hv.streams.Tap(source=hm)
        tap.add_subscriber(lambda x=None, y=None, **kw: self._tap(x, y, labels))
        self._tap_stream = tap
        return hm

    def figure(self):
        """The heatmap as a HoloViews object (for ``export.export_view``).

        Returns
        -------
        holoviews.Element
            See :meth:`heatmap`.
        """
        return self.heatmap()

    def figure_data(self) -> pd.DataFrame:
        """The cosine matrix behind the heatmap, in its clustered order.

        Returns
        -------
        pandas.DataFrame
            Perturbations x perturbations.
        """
        labels, cos = similarity(self.study)
        return pd.DataFrame(cos, index=pd.Index(labels, name="perturbation"), columns=labels)

    def _tap(self, x, y, labels):
        if y is None:
            return
        if isinstance(y, str):
            self.selection.choose_gene(y)
        else:
            i = len(labels) - 1 - int(y)
            if 0 <= i < len(labels):
                self.selection.choose_gene(labels[i])

    @param.depends("selection.perturbation", "k")
    def _neighbours(self):
        gene = self.selection.perturbation
        if not gene:
            return pn.pane.Markdown("Choose a perturbation to list its nearest neighbours.")
        df = neighbours(self.study, gene, self.k)
        if df.empty:
            return pn.pane.Markdown(f"**{md_text(gene)}** is not in the perturbation map.")
        n_known = int(df["known"].sum())
        return pn.Column(
            pn.pane.Markdown(f"Nearest to **{md_text(gene)}** ({n_known} known relationship(s) ★)",
                             css_classes=["wb-neighbours-title"]),
            pn.widgets.Tabulator(df.assign(known=df["known"].map({True: "★", False: ""})),
                                 show_index=False, disabled=True, height=260, width=340))

    def body(self):
        """The heatmap beside the neighbour table, and the ``k`` slider.

        Returns
        -------
        panel.Column
            The view's content.
        """
        return pn.Column(pn.Row(pn.pane.HoloViews(self.heatmap(), linked_axes=False),
                                self._neighbours),
                         pn.widgets.IntSlider.from_param(self.param.k, width=200))
