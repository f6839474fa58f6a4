"""Embedding view: every sample (or perturbation) as a point of the embedding's PCA map.

Small maps are drawn as glyphs with hover. Above :attr:`EmbeddingsView.datashade_above`
points the map is rasterised on the server with datashader, so the browser receives an
image of a few hundred kilobytes whatever the number of points (STYLE item 9); box and
lasso selections are then computed on the server against every point, so the selection is
exact, not a selection of pixels. The samples of the selected perturbation are drawn on
top, and the view also shows which transformer block the linear probe chose and the
benchmark numbers of the map.

Categorical colourings get an explicit colour per category and a legend beside the map
(scrollable, so dozens of perturbations stay readable); at the perturbation level at most
:data:`MAX_LABELS` of the most extreme perturbations (farthest from the map's median point)
are named on the map. When the Study holds a phenotype search (``workbench find``), the
points can be coloured by its classifier's score (:mod:`workbench.dashboards.phenotype`):
per crop, or per perturbation its mean score or the fraction of its crops called positive;
points the search holds no score for are drawn grey.
"""

from __future__ import annotations

import html

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from workbench.dashboards import phenotype as ph
from workbench.dashboards.base import (
    LiveGlyphs,
    StudyView,
    csv_bytes,
    html_text,
    live,
    md_text,
    no_data,
)
from workbench.dashboards.cache import cached
from workbench.dashboards.map_numbers import (  # noqa: F401 (the view's numbers, re-exported)
    HEADLINE,
    _read_uns,
    benchmark_numbers,
    block_probe,
    flat_numbers,
    headline_first,
)
from workbench.errors import WorkbenchError

#: Above this many points the scatter is rasterised with datashader.
DATASHADE_ABOVE = 20_000
#: At most this many highlighted points are drawn as glyphs on top of the map.
MAX_OVERLAY = 5_000
HOVER_COLS = ("perturbation", "batch", "plate", "well")
#: At most this many perturbations are named on a perturbation-level map.
MAX_LABELS = 50
#: Colour of points without a value (a crop the phenotype search holds no score for).
NO_VALUE = "lightgray"
PHENOTYPE_COLUMN = "phenotype"


# ---------------------------------------------------------------------- data (no widgets)
def _pca2(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(0)
    _, vecs = np.linalg.eigh(x.T @ x)
    return (x @ vecs[:, ::-1][:, :2]).astype(np.float32)


#: 2-D layouts the view can draw, and the ``obsm`` key the embed/normalize step writes each
#: under (:mod:`workbench.tools.layout`). The view reads the stored layout; only profiles
#: that no step has laid out (an imported table) are projected here on their first two
#: principal axes (once per artefact version, cached).
BASES = ("pca", "umap")
LAYOUT_KEYS = {"pca": "X_pca", "umap": "X_umap"}


def layouts(study, level: str = "samples") -> list[str]:
    """The layouts this Study's ``profiles`` (or ``perturbations``) can be drawn in.

    Parameters
    ----------
    study : Study
        The Study.
    level : str
        ``"samples"`` (``profiles``) or ``"perturbations"``.

    Returns
    -------
    list of str
        ``"pca"`` first, then every other layout whose coordinates the artefact stores.
    """
    name = "profiles" if level == "samples" else "perturbations"
    if not study.has(name):
        return ["pca"]
    keys = set(cached(study, [name], "obsm-keys", _obsm_keys, name))
    return ["pca"] + [b for b in BASES if b != "pca" and LAYOUT_KEYS[b] in keys]


def _obsm_keys(study, name: str) -> list[str]:
    import zarr

    group = zarr.open_group(study.artefact_path(name), mode="r")
    return list(group["obsm"].keys()) if "obsm" in group else []


def _points(study, level: str, basis: str) -> pd.DataFrame:
    adata = study.read("profiles" if level == "samples" else "perturbations")
    key = LAYOUT_KEYS[basis]
    if key in adata.obsm and np.shape(adata.obsm[key])[1:] == (2,):
        xy = np.asarray(adata.obsm[key], dtype=np.float32)
    elif basis == "pca":
        xy = _pca2(adata.X)
    else:
        raise WorkbenchError(f"unknown embedding layout {basis!r} here: the "
                             f"{'profiles' if level == 'samples' else 'perturbations'} hold no "
                             f"obsm[{key!r}].", "run `workbench embed STUDY --layout umap`.")
    df = adata.obs.copy()
    if level == "perturbations":  # one row per perturbation, named by its index
        df.insert(0, "perturbation", df.index.astype(str))
    df.insert(0, "id", df.index.astype(str))
    df.insert(0, "y", xy[:, 1].astype(np.float32))
    df.insert(0, "x", xy[:, 0].astype(np.float32))
    for c in df.columns:
        if df[c].dtype == object:
            df[c] = df[c].astype(str).astype("category")
    return df.reset_index(drop=True)


def points(study, level: str = "samples", basis: str = "pca") -> pd.DataFrame:
    """x, y, id and the obs columns of ``profiles`` (samples) or ``perturbations``.

    Parameters
    ----------
    study : Study
        The Study.
    level : str
        ``"samples"`` (``profiles``) or ``"perturbations"``.
    basis : str
        The layout (see :func:`layouts`).

    Returns
    -------
    pandas.DataFrame
        One row per point (cached per artefact version; do not mutate it).
    """
    if basis not in BASES:
        raise WorkbenchError(f"unknown embedding layout {basis!r}.",
                             f"use one of {', '.join(BASES)}.")
    name = "profiles" if level == "samples" else "perturbations"
    return cached(study, [name], "embedding-points", _points, level, basis)


def _concepts_uns(study) -> dict:
    return _read_uns(study, "concepts")


def concept_activation(study, concept: str) -> np.ndarray | None:
    """Activation of a concept (an id of the ``concepts`` artefact) on every sample: the
    column of ``profiles.obsm[<profiles_key>]`` that the concepts step wrote for it.

    Parameters
    ----------
    study : Study
        The Study.
    concept : str
        A concept id.

    Returns
    -------
    numpy.ndarray or None
        One activation per sample, in ``profiles`` order; None when the Study has no concepts
        or no such concept.
    """
    if not concept or not study.has("concepts"):
        return None
    names = study.read_obs("concepts").index.astype(str)
    if concept not in names:
        return None

    def _read(study, key, k):
        col = study.read("profiles").obsm[key][:, k]
        return np.asarray(col.toarray() if hasattr(col, "toarray") else col).ravel()

    key = cached(study, ["concepts"], "concepts-uns", _concepts_uns)["profiles_key"]
    return cached(study, ["profiles", "concepts"], "activation", _read, str(key),
                  int(names.get_loc(concept)))


def highlight_mask(df: pd.DataFrame, gene: str) -> np.ndarray:
    """Rows whose perturbation is ``gene`` or a double perturbation containing it.

    Parameters
    ----------
    df : pandas.DataFrame
        Points with ``perturbation`` (and optionally ``genes``, ``"A+B"``).
    gene : str
        The gene; an empty string highlights nothing.

    Returns
    -------
    numpy.ndarray of bool
        One flag per row.
    """
    if not gene:
        return np.zeros(len(df), dtype=bool)
    pert = df["perturbation"].astype(str)
    mask = (pert == gene).to_numpy()
    if "genes" in df:
        parts = df["genes"].astype(str).str.split("+")
        mask |= parts.map(lambda g: gene in g).to_numpy(dtype=bool)
    mask |= pert.str.split("+").map(lambda g: gene in g).to_numpy(dtype=bool)
    return mask


def _gene_index(study, level: str, basis: str) -> dict[str, np.ndarray]:
    """Every name :func:`highlight_mask` matches, mapped to its row positions (one pass)."""
    df = points(study, level, basis).reset_index(drop=True)
    pert = df["perturbation"].astype(str)
    names = [pert, pert.str.split("+").explode()]
    if "genes" in df:
        names.append(df["genes"].astype(str).str.split("+").explode())
    flat = pd.concat(names)
    rows = pd.Series(flat.index.to_numpy(), index=flat.to_numpy())
    return {str(g): np.unique(r.to_numpy()).astype(np.intp)
            for g, r in rows.groupby(level=0, sort=False)}


def highlight_rows(study, level: str, basis: str, gene: str) -> np.ndarray:
    """Row numbers of :func:`points` that :func:`highlight_mask` marks for ``gene``, looked
    up in an index of every name built once per artefact version and layout (so a gene
    chosen for the first time costs a lookup) and shared by sessions.

    Parameters
    ----------
    study : Study
        The Study.
    level : str
        ``"samples"`` or ``"perturbations"``.
    basis : str
        The layout (see :func:`layouts`).
    gene : str
        The gene; an empty string marks nothing.

    Returns
    -------
    numpy.ndarray of int
        Row positions (shared: do not mutate).
    """
    if not gene:
        return np.zeros(0, dtype=np.intp)
    name = "profiles" if level == "samples" else "perturbations"
    index = cached(study, [name], "gene-index", _gene_index, level, basis)
    return index.get(str(gene), np.zeros(0, dtype=np.intp))


def ids_in_box(df: pd.DataFrame, bounds) -> list[str]:
    """Exact box selection over all points: ``bounds = (x0, y0, x1, y1)``.

    Parameters
    ----------
    df : pandas.DataFrame
        Points with ``x``, ``y`` and ``id``.
    bounds : tuple of float
        The box corners, in either order.

    Returns
    -------
    list of str
        The ids of the points inside the box (edges included).
    """
    x0, y0, x1, y1 = bounds
    x, y = df["x"].to_numpy(), df["y"].to_numpy()
    inside = (x >= min(x0, x1)) & (x <= max(x0, x1)) & (y >= min(y0, y1)) & (y <= max(y0, y1))
    return df["id"].to_numpy()[inside].astype(str).tolist()


def ids_in_polygon(df: pd.DataFrame, xs, ys) -> list[str]:
    """Exact lasso selection (even-odd ray casting, vectorised over the points).

    Parameters
    ----------
    df : pandas.DataFrame
        Points with ``x``, ``y`` and ``id``.
    xs, ys : array-like
        The polygon's vertices; fewer than three select nothing.

    Returns
    -------
    list of str
        The ids of the points inside the polygon.
    """
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    if len(xs) < 3:
        return []
    x, y = df["x"].to_numpy(float), df["y"].to_numpy(float)
    inside = np.zeros(len(df), dtype=bool)
    # candidates: inside the polygon's bounding box only
    cand = np.flatnonzero((x >= xs.min()) & (x <= xs.max()) & (y >= ys.min()) & (y <= ys.max()))
    px, py = x[cand], y[cand]
    hit = np.zeros(len(cand), dtype=bool)
    j = len(xs) - 1
    for i in range(len(xs)):
        xi, yi, xj, yj = xs[i], ys[i], xs[j], ys[j]
        crosses = ((yi > py) != (yj > py)) & (px < (xj - xi) * (py - yi) / ((yj - yi) or 1e-300) + xi)
        hit ^= crosses
        j = i
    inside[cand] = hit
    return df["id"].to_numpy()[inside].astype(str).tolist()


def scatter(df: pd.DataFrame, color: str | None, *, threshold: int = DATASHADE_ABOVE,
            width: int = 520, height: int = 380, tools=()) -> hv.Element:
    """The base map: glyphs with hover when small, a datashader raster when large.

    Parameters
    ----------
    df : pandas.DataFrame
        Points from :func:`points`.
    color : str or None
        Column to colour by (numeric: a colour bar; text: fixed category colours); None for
        one colour.
    threshold : int
        Above this many points the map is rasterised with datashader.
    width, height : int
        Plot size in pixels.
    tools : sequence of str
        Bokeh tools added to the selection and hover tools.

    Returns
    -------
    holoviews.Element
        Points, or a datashaded raster of them.
    """
    vdims = [c for c in (*HOVER_COLS, "id") if c in df] + (
        [color] if color and color in df and color not in HOVER_COLS else [])
    pts = hv.Points(df, ["x", "y"], vdims)
    common = dict(width=width, height=height, tools=list(tools))
    if len(df) <= threshold:
        opts = dict(size=5, alpha=0.8, **common)
        opts["tools"] = opts["tools"] + ["hover", "box_select", "lasso_select", "tap"]
        if color and color in df:
            if _numeric(df[color]):
                opts.update(color=color, cmap="viridis", colorbar=True,
                            clipping_colors={"NaN": NO_VALUE})
                if color == PHENOTYPE_COLUMN:
                    opts["clim"] = (0.0, 1.0)
            else:  # colours fixed per category; the legend sits beside the map
                opts.update(color=color, cmap=category_colors(df[color]), show_legend=False)
        return pts.opts(**opts)
    import datashader as ds
    from holoviews.operation.datashader import datashade, dynspread, rasterize

    common["tools"] = common["tools"] + ["box_select", "lasso_select", "tap"]
    if color and color in df and not _numeric(df[color]):
        return dynspread(datashade(pts, aggregator=ds.count_cat(color),
                                   color_key=category_colors(df[color]))).opts(**common)
    agg = ds.mean(color) if color and color in df else ds.count()
    return rasterize(pts, aggregator=agg).opts(cmap="viridis", cnorm="eq_hist", colorbar=True,
                                               **{**common, "tools": common["tools"] + ["hover"]})


def _numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def category_colors(values) -> dict[str, str]:
    """One colour per category (sorted names, Category20 repeated past 20): the map and
    its legend use the same mapping.

    Parameters
    ----------
    values : array-like
        The category of every point (compared as strings).

    Returns
    -------
    dict
        Category to hex colour.
    """
    from bokeh.palettes import Category20_20

    cats = sorted({str(v) for v in pd.Series(values).astype(str)})
    return {c: Category20_20[i % len(Category20_20)] for i, c in enumerate(cats)}


def legend_html(colors: dict[str, str], title: str) -> str:
    """A legend of ``colors`` (category -> colour) as escaped HTML.

    Parameters
    ----------
    colors : dict
        Category to colour.
    title : str
        Heading of the legend.

    Returns
    -------
    str
        An HTML fragment.
    """
    rows = "".join(f"<div style='white-space:nowrap'><span style='display:inline-block;"
                   f"width:10px;height:10px;margin-right:4px;background:{c}'></span>"
                   f"{html_text(k)}</div>" for k, c in colors.items())
    return f"<div style='font-size:11px'><b>{html_text(title)}</b>{rows}</div>"


def extreme(df: pd.DataFrame, n: int = MAX_LABELS) -> pd.DataFrame:
    """The ``n`` points farthest from the map's median point (the ones worth naming).

    Parameters
    ----------
    df : pandas.DataFrame
        Points with ``x`` and ``y``.
    n : int
        How many to keep.

    Returns
    -------
    pandas.DataFrame
        Those rows (all of ``df`` when it has at most ``n``).
    """
    if len(df) <= n:
        return df
    d = np.hypot(df["x"] - df["x"].median(), df["y"] - df["y"].median())
    return df.iloc[np.argsort(-d.to_numpy(), kind="stable")[:n]]


# ---------------------------------------------------------------------- the view
class EmbeddingsView(StudyView):
    """Scatter of samples or perturbations, linked to the selection.

    Parameters
    ----------
    study : Study or None
        The open Study (it needs ``profiles``).
    selection : Selection or None
        The session's shared selection; None makes a new one.
    **params
        Values of the view's parameters (``level``, ``basis``, ``color_by``,
        ``datashade_above``, ...).
    """

    level = param.Selector(default="samples", objects=["samples", "perturbations"],
                           doc="Draw one point per sample (crop) or per perturbation.")
    basis = param.Selector(default="pca", objects=list(BASES),
                           doc="2-D layout: the one the embed step stored (UMAP or PCA).")
    color_by = param.Selector(default="perturbation", objects=["perturbation"],
                              doc="Colour points by an obs column or a concept's activation.")
    datashade_above = param.Integer(default=DATASHADE_ABOVE, bounds=(100, None),
                                    doc="Rasterise the map above this many points.")

    needs = ("profiles",)
    key = "embeddings"
    label = "Embeddings"

    def __init__(self, study=None, selection=None, **params):
        super().__init__(study, selection, **params)
        if not self.missing:
            self.param.basis.objects = layouts(self.study, self.level)
            if "umap" in self.param.basis.objects and "basis" not in params:
                self.basis = "umap"
            self._color_options()
            self._follow_phenotype()

    @param.depends("selection.phenotype", watch=True)
    def _follow_phenotype(self):
        """A phenotype chosen elsewhere (the gene card) colours the map by its score."""
        if not ph.has_search(self.study):
            return
        chosen = self.selection.phenotype == ph.search_name(self.study)
        if chosen and not self._phenotype_choice():
            self.color_by = ph.color_label(self.study, ph.SCORE)
        elif not chosen and self._phenotype_choice():
            self.color_by = "perturbation"

    @param.depends("color_by", watch=True)
    def _choose_phenotype(self):
        """Colouring by the search's score makes its phenotype the selected one."""
        if ph.has_search(self.study):
            name = ph.search_name(self.study) if self._phenotype_choice() else ""
            if name != self.selection.phenotype:
                self.selection.choose_phenotype(name)

    @param.depends("level", watch=True)
    def _color_options(self):
        """Colour choices of the drawn level: its obs columns, a concept's activation (crops)
        and, when the Study holds a phenotype search, its scores."""
        cols = [c for c in self.data().columns if c not in ("x", "y", "id")]
        extra = ["concept activation"] if self.level == "samples" else []
        if ph.has_search(self.study):
            extra += [ph.color_label(self.study, ph.SCORE)]
            if self.level == "perturbations":
                extra += [ph.color_label(self.study, ph.FRACTION)]
        objects = ["none", *cols, *extra]
        self.param.color_by.objects = objects
        if self.color_by not in objects:
            self.color_by = "perturbation" if "perturbation" in objects else "none"

    def data(self) -> pd.DataFrame:
        """The points of the drawn level in the chosen layout.

        Returns
        -------
        pandas.DataFrame
            See :func:`points`.
        """
        if self.level == "perturbations" and not self.study.has("perturbations"):
            self.study.require("perturbations", why="the perturbation-level map needs it")
        return points(self.study, self.level, self._drawn_basis())

    def _drawn_basis(self) -> str:
        return self.basis if self.basis in layouts(self.study, self.level) else "pca"

    def _highlight(self, gene: str) -> pd.DataFrame:
        """The rows of :meth:`data` that ``gene`` highlights (cached row numbers)."""
        return self.data().iloc[highlight_rows(self.study, self.level, self._drawn_basis(),
                                               gene)]

    def layout_note(self) -> str:
        """How the drawn layout was made (the step's record), as escaped Markdown.

        Returns
        -------
        str
            The note, or an empty string.
        """
        name = "profiles" if self.level == "samples" else "perturbations"
        # cached per artefact version: reading the group costs about 0.1 s a page
        wb = cached(self.study, [name], "uns-workbench", _read_uns, name) \
            if self.study.has(name) else {}
        info = (wb.get("embedding") or {}).get("layout") or wb.get("layout") or {}
        note = info.get("note") if isinstance(info, dict) else None
        return md_text(str(note)) if note else "PCA of X, computed for this view (no stored layout)"

    def _phenotype_choice(self) -> str | None:
        """``phenotype.SCORE`` or ``phenotype.FRACTION`` when the colouring is a search's."""
        if not ph.has_search(self.study):
            return None
        for what in (ph.SCORE, ph.FRACTION):
            if self.color_by == ph.color_label(self.study, what):
                return what
        return None

    def _color_column(self) -> str | None:
        if self._phenotype_choice():
            return PHENOTYPE_COLUMN
        return {"none": None, "concept activation": "activation"}.get(self.color_by,
                                                                      self.color_by)

    def _colored(self) -> pd.DataFrame:
        df = self.data()
        if self.color_by == "concept activation" and self.level == "samples":
            act = concept_activation(self.study, self.selection.concept)
            if act is not None:
                df = df.assign(activation=act)
        what = self._phenotype_choice()
        if what:  # joined by crop id / perturbation name, never by row position
            key = df["id"] if self.level == "samples" else df["perturbation"]
            df = df.assign(**{PHENOTYPE_COLUMN: ph.scores_for(self.study, key, self.level,
                                                               what)})
        return df

    def figure_data(self) -> pd.DataFrame:
        """The data behind the drawn map: x, y, id, the hover columns and the colour.

        Returns
        -------
        pandas.DataFrame
            Indexed by point id.
        """
        df = self._colored()
        color = self._color_column()
        cols = ["x", "y", "id", *[c for c in HOVER_COLS if c in df]]
        if color and color in df and color not in cols:
            cols.append(color)
        return df[cols].set_index("id")

    def legend(self) -> dict[str, str]:
        """Category -> colour of a categorical colouring (empty for numeric ones).

        Returns
        -------
        dict
            Category to colour.
        """
        color = self._color_column()
        df = self.data()
        if not color or color not in df or _numeric(df[color]):
            return {}
        return category_colors(df[color])

    def labels(self) -> pd.DataFrame:
        """The points named on the map: at the perturbation level the
        :data:`MAX_LABELS` most extreme perturbations; none for samples.

        Returns
        -------
        pandas.DataFrame
            The points to name.
        """
        df = self.data()
        return extreme(df) if self.level == "perturbations" else df.iloc[:0]

    def highlighted(self) -> pd.DataFrame:
        """Points of the selected perturbation (the overlay).

        Returns
        -------
        pandas.DataFrame
            Rows of :meth:`data`.
        """
        return self._highlight(self.selection.perturbation)

    def selected(self) -> pd.DataFrame:
        """Points of the selected samples.

        Returns
        -------
        pandas.DataFrame
            Rows of :meth:`data`.
        """
        df = self.data()
        return df[df["id"].isin(set(self.selection.samples))]

    def table(self) -> pd.DataFrame:
        """The selected points, else those of the selected perturbation.

        Returns
        -------
        pandas.DataFrame
            Indexed by point id.
        """
        sel = self.selected()
        return (sel if len(sel) else self.highlighted()).set_index("id")

    # -- plot pieces
    def _base(self):
        df = self._colored()
        color = self._color_column()
        base = scatter(df, color, threshold=self.datashade_above, width=self.width,
                       height=self.height, tools=["save", "reset", "wheel_zoom", "pan"]).opts(
            backend_opts={"plot.output_backend": "svg" if self.svg else "canvas"},
            title=f"{len(df):,} {self.level} ({self.basis.upper()})")
        what = self._phenotype_choice()
        if what and isinstance(base, hv.Points):
            base = base.opts(clabel=f"{what} (grey: none)")
        return base

    def _overlay(self):
        """The selection overlay as HoloViews points (the exported figure's layers)."""
        cols = self._overlay_data()
        a = hv.Points(pd.DataFrame(cols["highlight"]), ["x", "y"], ["id", "perturbation"],
                      label="selected perturbation").opts(
            color="red", size=8, line_color="black", alpha=0.9)
        b = hv.Points(pd.DataFrame(cols["selected"]), ["x", "y"], ["id", "perturbation"],
                      label="selected samples").opts(
            color="orange", marker="square", size=6, alpha=0.9)
        return a * b

    def _overlay_data(self) -> dict:
        df = self.data()
        hi = self._highlight(self.selection.perturbation).head(MAX_OVERLAY)
        sel = df[df["id"].isin(set(self.selection.samples))].head(MAX_OVERLAY)
        return {name: {c: part[c].to_numpy() for c in ("x", "y", "id", "perturbation")}
                for name, part in (("highlight", hi), ("selected", sel))}

    @staticmethod
    def _draw_overlay(fig, sources) -> None:
        had_legend = bool(fig.legend)
        fig.scatter("x", "y", source=sources["highlight"], size=8, fill_color="red",
                    line_color="black", alpha=0.9, legend_label="selected perturbation")
        fig.scatter("x", "y", source=sources["selected"], marker="square", size=6,
                    fill_color="orange", line_color="orange", alpha=0.9,
                    legend_label="selected samples")
        if not had_legend:
            fig.legend.location = "bottom_right"

    def _live_overlay(self) -> LiveGlyphs:
        """The selection overlay, drawn into each rendered map and updated in place when
        the Selection's perturbation or samples change (see :class:`LiveGlyphs`)."""
        if getattr(self, "_live", None) is None:
            self._live = LiveGlyphs(self._overlay_data, self._draw_overlay)
            self.selection.param.watch(self._live.refresh, ["perturbation", "samples"])
        return self._live

    def plot(self, live: bool = True):
        """The map with the selection overlay; its streams write the Selection.

        Parameters
        ----------
        live : bool
            Draw the selection as glyphs that later choices update in place (the page);
            False draws it as HoloViews layers of the current selection (an export).

        Returns
        -------
        holoviews.Overlay or holoviews.Element
            The map, its labels and (when not ``live``) its overlays.
        """
        base = self._base()
        if live:  # the selection's points: Bokeh glyphs that a choice updates in place
            base = base.opts(hooks=[self._live_overlay().hook])
        box = hv.streams.BoundsXY(source=base)
        lasso = hv.streams.Lasso(source=base)
        tap = hv.streams.Tap(source=base)
        box.add_subscriber(lambda bounds=None, **kw: bounds and self.selection.choose_samples(
            ids_in_box(self.data(), bounds)))
        lasso.add_subscriber(lambda geometry=None, **kw: geometry is not None and len(geometry) > 2
                             and self.selection.choose_samples(
                                 ids_in_polygon(self.data(), geometry[:, 0], geometry[:, 1])))
        tap.add_subscriber(lambda x=None, y=None, **kw: self._tap(x, y))
        self._streams = dict(box=box, lasso=lasso, tap=tap)
        out = base
        names = self.labels()
        if len(names):
            out = out * hv.Labels(names, ["x", "y"], "perturbation").opts(
                text_font_size="8pt", yoffset=0.02 * max(float(np.ptp(self.data()["y"])), 1e-9),
                text_color="black")
        if not live:
            out = out * self._overlay()
        return out.opts(hv.opts.Overlay(legend_position="bottom_right"))

    def figure(self):
        """The map as a HoloViews object (for :func:`workbench.dashboards.export.export_view`):
        a categorical colouring carries its legend inside the figure, right of the map.

        Returns
        -------
        holoviews.Element
            The map.
        """
        fig = self.plot(live=False)
        n = len(self.legend())
        if n:
            cols = max(1, -(-(n + 2) // max(1, (self.height - 60) // 24)))  # entries fit
            fig = fig.opts(hv.opts.Points(show_legend=True), hv.opts.Overlay(
                legend_position="right", legend_cols=cols, width=self.width + 110 * cols))
        return fig

    @param.depends("level", "basis", "color_by", "selection.concept", "width", "height", "svg")
    def _plot_pane(self):
        # a new plot when the colouring changes (a categorical colour mapper cannot become a
        # linear one in place); selection changes only redraw the overlay
        key = (self.level, self.basis, self.color_by, self.width, self.height, self.svg,
               self.selection.concept if self.color_by == "concept activation" else None)
        if getattr(self, "_pane_key", None) != key:
            self._pane_key = key
            plot = pn.pane.HoloViews(self.plot(), linked_axes=False)
            colors = self.legend()
            self._pane = pn.Row(plot, pn.pane.HTML(
                legend_html(colors, self.color_by), css_classes=["wb-emb-legend"],
                height=self.height, width=150, styles={"overflow-y": "auto"},
                visible=bool(colors)))
        return self._pane

    def _tap(self, x, y):
        if x is None or y is None:
            return
        df = self.data()
        d = (df["x"].to_numpy() - x) ** 2 + (df["y"].to_numpy() - y) ** 2
        i = int(np.argmin(d))
        span = max(float(np.ptp(df["x"])), float(np.ptp(df["y"])), 1e-9)
        if d[i] <= (0.03 * span) ** 2:
            self.selection.choose_gene(str(df["perturbation"].iloc[i]))

    @param.depends("selection.perturbation", "selection.samples")
    def _status(self):
        gene = self.selection.perturbation
        n_hi = len(self._highlight(gene)) if gene else 0
        text = (f"Highlighted: {n_hi} {self.level} of **{md_text(gene)}**" if gene
                else "Highlighted: none (choose a gene)")
        text += f" · selected: {len(self.selection.samples)}"
        return pn.pane.Markdown(text, css_classes=["wb-emb-status"], margin=(0, 10))

    def probe_plot(self):
        """The linear probe's balanced accuracy per transformer block (see :func:`block_probe`).

        Returns
        -------
        holoviews.Element
            The probe curve with its chance line, or a message when there was no probe.
        """
        curve = block_probe(self.study)
        if curve is None:
            return no_data("no block probe: these profiles were\nnot embedded from images",
                           width=240, height=160)
        x, y = "block", "balanced_accuracy"
        plot = hv.Curve(curve, x, y).opts(width=260, height=180, title="Linear probe by block",
                                          ylabel="balanced accuracy", tools=["hover"])
        plot = plot * hv.Scatter(curve, x, y).opts(size=6)
        plot = plot * hv.VLine(float(curve.attrs["best_block"])).opts(color="red",
                                                                      line_dash="dashed")
        return plot * hv.HLine(curve.attrs["chance"]).opts(color="gray", line_dash="dotted")

    def body(self):
        """The controls and notes above the map, the block probe and benchmark numbers beside
        it, and a download of the map's data.

        Returns
        -------
        panel.Column
            The view's content.
        """
        controls = pn.Row(pn.widgets.Select.from_param(self.param.level, width=120),
                          pn.widgets.Select.from_param(self.param.basis, width=90),
                          pn.widgets.Select.from_param(self.param.color_by, width=260,
                                                       css_classes=["wb-emb-color"]))
        bench = headline_first(benchmark_numbers(self.study))
        # value first: long metric keys must not push the numbers out of view
        rows = "".join(f"<tr><td style='text-align:right;padding-right:8px'>{v:.3g}</td>"
                       f"<td style='white-space:nowrap'>{html.escape(str(m))}</td></tr>"
                       for m, v in zip(bench["metric"], bench["value"], strict=True))
        side = pn.Column(pn.pane.HoloViews(self.probe_plot(), linked_axes=False),
                         pn.pane.HTML("<table style='font-size:12px;border-collapse:collapse'>"
                                      "<tr><th>value</th><th style='text-align:left'>"
                                      f"map benchmark</th></tr>{rows}</table>",
                                      height=170, width=340, styles={"overflow": "auto"},
                                      css_classes=["wb-emb-benchmarks"])
                         if len(bench) else pn.pane.Markdown(
                             "No benchmark numbers yet (`workbench benchmark STUDY`)."))
        note = pn.pane.Markdown(f"Layout: {self.layout_note()}", margin=(0, 10),
                                css_classes=["wb-emb-layout"])
        data = pn.widgets.FileDownload(
            callback=lambda: csv_bytes(self.figure_data()), filename="embedding_map.csv",
            label="Map data (CSV)", embed=False, width=160, height=34,
            css_classes=["wb-export-embedding-map"])
        return pn.Column(controls, live(self, "_status"), self._color_note, note,
                         pn.Row(self._plot_pane, side), data)

    @param.depends("color_by", "level")
    def _color_note(self):
        what = self._phenotype_choice()
        if not what:
            return pn.pane.Markdown("", visible=False, css_classes=["wb-emb-color-note"])
        values = self._colored()[PHENOTYPE_COLUMN]
        unit = "crops" if self.level == "samples" else "perturbations"
        text = (f"Colour: {md_text(self.color_by)}, {int(values.notna().sum())} of "
                f"{len(values)} {unit} have a value (grey: none)")
        return pn.pane.Markdown(text, margin=(0, 10), css_classes=["wb-emb-color-note"])
