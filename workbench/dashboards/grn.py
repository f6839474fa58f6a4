"""GRN view: the posterior over regulatory networks, around the selected gene.

DynGFN (Atanackovic et al., NeurIPS 2023) samples whole graphs, cycles included, so the
view shows the posterior rather than one network: the edge-probability matrix
(``grn.varp["edge_probability"]``, child-major: entry ``[i, j]`` is the probability that
gene ``j`` regulates gene ``i``), the subgraph of likely edges around the selected gene
(breadth-first, capped at :attr:`GRNView.max_nodes`, drawn with one layout computed per
artefact version and centred on the gene), single posterior samples from ``grn_samples``,
the most frequent cycles, and the agreement with a reference network when the Study has one
(the simulator's ground truth, or metrics the GRN step stored).
"""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from workbench.dashboards.base import LiveGlyphs, StudyView, live, md_text
from workbench.dashboards.cache import cached
from workbench.dashboards.concepts import _uns
from workbench.dashboards.embeddings import flat_numbers


#: At most this many edges are drawn in the subgraph (the most probable).
MAX_EDGES = 120


def _posterior(study):
    g = study.read("grn")
    names = g.var_names.astype(str).tolist()
    prob = g.varp["edge_probability"]
    prob = np.asarray(prob.toarray() if hasattr(prob, "toarray") else prob, dtype=np.float32)
    return names, prob


def posterior(study) -> tuple[list[str], np.ndarray]:
    """Gene names and the edge-probability matrix (child-major).

    Parameters
    ----------
    study : Study
        A Study with ``grn``.

    Returns
    -------
    names : list of str
        The genes.
    probability : numpy.ndarray
        Genes x genes; row ``i``, column ``j`` is the probability of the edge ``j -> i``.
    """
    return cached(study, ["grn"], "grn-posterior", _posterior)


def _signs(study):
    g = study.read("grn")
    if "edge_weight" not in g.varp or "edge_positive_share" not in g.varp:
        return None
    return (np.asarray(g.varp["edge_weight"], np.float64),
            np.asarray(g.varp["edge_positive_share"], np.float64))


def signs(study):
    """``(mean weight given the edge, share of samples where it activates)`` or ``None``
    for a GRN artefact written before the step stored per-sample weights.

    Parameters
    ----------
    study : Study
        A Study with ``grn``.

    Returns
    -------
    tuple of numpy.ndarray or None
        The two genes x genes matrices, in the layout of :func:`posterior`, or None.
    """
    return cached(study, ["grn"], "grn-signs", _signs)


def edges(study, threshold: float = 0.5) -> pd.DataFrame:
    """Edges ``source -> target`` with probability at least ``threshold``, with the mean
    fitted weight and its effect (activates / represses / mixed) when the step stored them.

    Parameters
    ----------
    study : Study
        A Study with ``grn``.
    threshold : float
        Smallest edge probability kept.

    Returns
    -------
    pandas.DataFrame
        One row per edge: ``source``, ``target``, ``probability`` and, when stored, the
        weight and its effect.
    """
    from workbench.tools.grn import edge_frame

    names, prob = posterior(study)
    sg = signs(study)
    return edge_frame(names, prob, *(sg if sg is not None else (None, None)), threshold)


#: Edge colours of the subgraph by effect.
EFFECT_COLOURS = {"activates": "#1a9850", "represses": "#d73027", "mixed": "#7f7f7f",
                  "unknown": "#7f7f7f"}
#: Node colours of the subgraph: the centre gene and its neighbours.
NODE_COLOURS = {"centre": "red", "neighbour": "lightblue"}


def _layout(study):
    import networkx as nx

    names, prob = posterior(study)
    stored = _uns(study, "grn").get("layout")
    if stored is not None:
        if isinstance(stored, dict):
            return {str(k): tuple(map(float, v)) for k, v in stored.items()}
        arr = np.asarray(stored, dtype=float)
        if arr.shape == (len(names), 2):
            return {n: tuple(p) for n, p in zip(names, arr, strict=True)}
    graph = nx.Graph()
    graph.add_nodes_from(names)
    sym = np.maximum(prob, prob.T)
    for a, b in zip(*np.nonzero(np.triu(sym, 1) >= 0.2), strict=True):
        graph.add_edge(names[a], names[b], weight=float(sym[a, b]))
    pos = nx.spring_layout(graph, seed=0, weight="weight")
    return {n: (float(p[0]), float(p[1])) for n, p in pos.items()}


def layout(study) -> dict[str, tuple[float, float]]:
    """Node positions for the whole network: stored by the GRN step, else a spring layout
    computed once per artefact version.

    Parameters
    ----------
    study : Study
        A Study with ``grn``.

    Returns
    -------
    dict
        Gene to ``(x, y)``.
    """
    return cached(study, ["grn"], "grn-layout", _layout)


def subgraph(study, gene: str, threshold: float = 0.5, max_nodes: int = 25,
             hops: int = 2) -> tuple[list[str], pd.DataFrame]:
    """Nodes within ``hops`` likely edges of ``gene`` (strongest first, at most
    ``max_nodes``) and the likely edges among them.

    Parameters
    ----------
    study : Study
        A Study with ``grn``.
    gene : str
        The centre gene; an unknown gene gives an empty subgraph.
    threshold : float
        Smallest edge probability (in either direction) that links two genes.
    max_nodes : int
        Cap on the number of genes, the centre included.
    hops : int
        How many edges away from ``gene`` to go.

    Returns
    -------
    nodes : list of str
        The genes, ``gene`` first.
    edges : pandas.DataFrame
        The edges among them (see :func:`edges`).
    """
    names, prob = posterior(study)
    if gene not in names:
        return [], pd.DataFrame(columns=["source", "target", "probability"])
    idx = {n: k for k, n in enumerate(names)}
    sym = np.maximum(prob, prob.T)
    nodes, frontier = [gene], [gene]
    for _ in range(hops):
        nxt = []
        for n in frontier:
            k = idx[n]
            for m in np.argsort(-sym[k]):
                if sym[k, m] < threshold or len(nodes) >= max_nodes:
                    break
                if names[m] not in nodes and m != k:
                    nodes.append(names[m])
                    nxt.append(names[m])
        frontier = nxt
    e = edges(study, threshold)
    e = e[e["source"].isin(nodes) & e["target"].isin(nodes)].reset_index(drop=True)
    return nodes, e


def cycles(study) -> pd.DataFrame:
    """The cycles the GRN step stored, with the share of posterior samples holding each.

    Parameters
    ----------
    study : Study
        A Study with ``grn``.

    Returns
    -------
    pandas.DataFrame
        ``cycle`` (genes joined by arrows), ``genes`` (a tuple), ``length`` and
        ``frequency``; empty when none was stored.
    """
    def _read(study):
        from workbench.tools.grn_metrics import cycles_from_table

        info = _uns(study, "grn")
        records = cycles_from_table(info["cycles"]) if "cycles" in info else []
        return pd.DataFrame({
            "cycle": pd.Series([" → ".join(r["cycle"]) for r in records], dtype=object),
            "genes": pd.Series([tuple(r["cycle"]) for r in records], dtype=object),
            "length": pd.Series([r["length"] for r in records], dtype="int64"),
            "frequency": pd.Series([r["frequency"] for r in records], dtype=float)})

    return cached(study, ["grn"], "grn-cycles", _read)


def agreement(study) -> pd.DataFrame:
    """Agreement with a reference: the GRN step's metrics, and AUROC/AUPRC of the edge
    probabilities against the ground-truth adjacency of a simulated Study.

    Parameters
    ----------
    study : Study
        A Study with ``grn`` (and, when simulated, ``ground_truth``).

    Returns
    -------
    pandas.DataFrame
        ``metric`` (prefixed ``stored.``, ``reference.`` or ``ground_truth.``) and ``value``.
    """
    def _read(study):
        info = _uns(study, "grn")
        rows = {f"stored.{k}": v for k, v in flat_numbers(info.get("metrics", {})).items()}
        # real data: AUROC/AUPRC against the reference networks the step was given
        rows.update({f"reference.{k}": v
                     for k, v in flat_numbers(info.get("reference_metrics", {})).items()})
        if study.has("ground_truth"):
            truth = study.read("ground_truth")
            names, prob = posterior(study)
            if "adjacency" in truth and list(truth.get("genes", [])) == names:
                from workbench.tools.grn_metrics import edge_auc

                adj = np.asarray(truth["adjacency"])
                mask = ~np.eye(len(names), dtype=bool)
                rows.update({f"ground_truth.{k}": v for k, v in edge_auc(prob, adj, mask).items()})
        return pd.DataFrame({"metric": list(rows), "value": list(rows.values())})

    return cached(study, ["grn", "ground_truth"], "grn-agreement", _read)


class GRNView(StudyView):
    """Edge probabilities, the subgraph around the selected gene, samples, cycles.

    Parameters
    ----------
    study : Study or None
        The open Study (it needs ``grn``).
    selection : Selection or None
        The session's shared selection; None makes a new one.
    **params
        Values of the view's parameters (``threshold``, ``max_nodes``, ``sample``, ...).
    """

    threshold = param.Number(default=0.5, bounds=(0.0, 1.0), step=0.05,
                             doc="Draw edges at least this probable.")
    max_nodes = param.Integer(default=25, bounds=(2, 200), doc="Cap on subgraph size.")
    sample = param.Integer(default=0, bounds=(0, None), doc="Posterior sample shown.")

    needs = ("grn",)
    key = "grn"
    label = "GRN posterior"

    def __init__(self, study=None, selection=None, **params):
        super().__init__(study, selection, **params)
        if not self.missing and self.study.has("grn_samples"):
            self.param.sample.bounds = (0, int(self.study.read("grn_samples").shape[0]) - 1)

    def centre(self) -> str:
        """The selected perturbation when it is a gene of the network.

        Returns
        -------
        str
            The gene, or an empty string.
        """
        names, _ = posterior(self.study)
        g = self.selection.perturbation
        return g if g in names else ""

    def table(self) -> pd.DataFrame:
        """The edges around the centre gene, or all likely edges when there is none.

        Returns
        -------
        pandas.DataFrame
            See :func:`subgraph` and :func:`edges`.
        """
        g = self.centre()
        return subgraph(self.study, g, self.threshold, self.max_nodes)[1] if g else \
            edges(self.study, self.threshold)

    def matrix(self):
        """The edge-probability heatmap; a tap selects the regulator.

        Returns
        -------
        holoviews.HeatMap
            The heatmap.
        """
        names, prob = posterior(self.study)
        n = len(names)
        df = pd.DataFrame({"regulator": np.tile(names, n), "target": np.repeat(names, n),
                           "probability": prob.ravel()})
        hm = hv.HeatMap(df, ["regulator", "target"], "probability").opts(
            width=self.width - 160, height=self.height - 60, cmap="Blues", clim=(0, 1),
            colorbar=True, tools=["hover", "tap", "save"], xrotation=90, invert_yaxis=True,
            title="P(regulator → target)")
        tap = hv.streams.Tap(source=hm)
        tap.add_subscriber(lambda x=None, y=None, **kw: isinstance(x, str)
                           and self.selection.choose_gene(x))
        self._tap_stream = tap
        return hm

    def _graph_parts(self) -> dict:
        """The subgraph around the centre gene as tables: ``edges`` (segments), ``heads``
        (an arrowhead 80 % along each edge), ``nodes``, ``labels``, ``note`` (the empty
        state's message), ``title`` and ``r`` (the half-width of the square drawn)."""
        gene = self.centre()
        nodes, e = (subgraph(self.study, gene, self.threshold, self.max_nodes) if gene
                    else ([], pd.DataFrame(columns=["source", "target", "probability"])))
        e = e.head(MAX_EDGES)
        pos = layout(self.study)
        cx, cy = pos[gene] if gene else (0.0, 0.0)
        nd = pd.DataFrame({"x": pd.Series([pos[n][0] - cx for n in nodes], dtype=float),
                           "y": pd.Series([pos[n][1] - cy for n in nodes], dtype=float),
                           "gene": pd.Series(nodes, dtype=object),
                           "role": pd.Series(["centre" if n == gene else "neighbour"
                                              for n in nodes], dtype=object)})
        xy = {n: (x, y) for n, x, y in zip(nd["gene"], nd["x"], nd["y"], strict=True)}
        x0 = np.array([xy[a][0] for a in e["source"]], dtype=float)
        y0 = np.array([xy[a][1] for a in e["source"]], dtype=float)
        x1 = np.array([xy[b][0] for b in e["target"]], dtype=float)
        y1 = np.array([xy[b][1] for b in e["target"]], dtype=float)
        prob = e["probability"].to_numpy(dtype=float)
        effect = (e["effect"].astype(str).to_numpy() if "effect" in e
                  else np.full(len(e), "unknown", dtype=object))
        seg = pd.DataFrame({"x0": x0, "y0": y0, "x1": x1, "y1": y1, "probability": prob,
                            "effect": pd.Series(effect, dtype=object),
                            "edge": [f"{a} → {b}" for a, b in zip(e["source"], e["target"],
                                                                  strict=True)]})
        heads = pd.DataFrame({"x": x0 + 0.8 * (x1 - x0), "y": y0 + 0.8 * (y1 - y0),
                              "angle": np.arctan2(y1 - y0, x1 - x0) - np.pi / 2,
                              "probability": prob, "effect": pd.Series(effect, dtype=object)})
        r = 1.2 * float(np.abs(nd[["x", "y"]].to_numpy()).max()) if len(nd) > 1 else 1.0
        title = (f"Around {gene} (p ≥ {self.threshold:g}; green activates, red represses)"
                 if gene else "Subgraph")
        # the empty states say what fills them
        if not gene:
            msg = "Choose a gene (box above, or click\nthe matrix) to draw its likely\n" \
                  "regulators and targets here"
        elif len(e) == 0:
            msg = f"No edge with p ≥ {self.threshold:g}\naround {gene}:\nlower the threshold"
        else:
            msg = ""
        note = pd.DataFrame({"x": [0.0], "y": [-0.5 * r if len(e) else 0.0], "text": [msg]})
        # the offset is in the data, not a ``yoffset`` option: HoloViews draws that as a new
        # Bokeh Dodge transform on every redraw, and a new model in a glyph makes Bokeh walk
        # the page's whole model graph
        return {"edges": seg, "heads": heads, "nodes": nd,
                "labels": nd.assign(y=nd["y"] + 0.08 * r), "note": note, "title": title,
                "r": r}

    def _graph_element(self):
        """The subgraph around the centre gene as HoloViews segments, arrowheads, nodes and
        labels (the same tables as the page's glyphs, :meth:`_graph_parts`).

        Plain glyphs rather than ``hv.Graph``: computing directed edge paths dominated the
        redraw time, and a triangle 80% along each edge shows the direction.
        """
        parts = self._graph_parts()
        r = parts["r"]
        lim = dict(xlim=(-r, r), ylim=(-r, r), framewise=True)
        # colour: activating green, repressing red; opacity: posterior probability
        edges_el = hv.Segments(parts["edges"], ["x0", "y0", "x1", "y1"],
                               ["probability", "effect", "edge"]).opts(
            color="effect", cmap=EFFECT_COLOURS, alpha=hv.dim("probability"), line_width=2,
            tools=["hover"], show_legend=False, **lim)
        heads_el = hv.Points(parts["heads"], ["x", "y"], ["angle", "probability", "effect"]).opts(
            marker="triangle", angle=hv.dim("angle"), size=9, color="effect",
            cmap=EFFECT_COLOURS, alpha=hv.dim("probability"), show_legend=False)
        nodes_el = hv.Points(parts["nodes"], ["x", "y"], ["gene", "role"]).opts(
            color="role", cmap=NODE_COLOURS, size=16, line_color="black", tools=["hover"],
            show_legend=False)
        labels = hv.Labels(parts["labels"], ["x", "y"], "gene").opts(text_font_size="9pt")
        note = parts["note"].iloc[0]
        note = hv.Text(note["x"], note["y"], note["text"]).opts(text_font_size="10pt",
                                                               text_color="dimgray")
        return (edges_el * heads_el * nodes_el * labels * note).opts(
            hv.opts.Overlay(width=self.width - 160, height=self.height - 60, xaxis=None,
                            yaxis=None, title=parts["title"], tools=["save"]))

    def _graph_data(self) -> dict:
        parts = self._graph_parts()
        seg, heads, nd = parts["edges"], parts["heads"], parts["nodes"]

        def colours(values, table):
            return np.array([table.get(v, table.get("unknown", "#7f7f7f")) for v in values],
                            dtype=object)

        def cols(df, names):
            return {c: df[c].to_numpy() for c in names}

        r, title = parts["r"], parts["title"]

        def figure(fig):
            fig.title.text = title
            for rng in (fig.x_range, fig.y_range):
                rng.update(start=-r, end=r, reset_start=-r, reset_end=r)

        return {
            "edges": {**cols(seg, ["x0", "y0", "x1", "y1", "probability", "effect", "edge"]),
                      "colour": colours(seg["effect"], EFFECT_COLOURS)},
            "heads": {**cols(heads, ["x", "y", "angle", "probability", "effect"]),
                      "colour": colours(heads["effect"], EFFECT_COLOURS)},
            "nodes": {**cols(nd, ["x", "y", "gene", "role"]),
                      "colour": colours(nd["role"], NODE_COLOURS)},
            "labels": cols(parts["labels"], ["x", "y", "gene"]),
            "note": cols(parts["note"], ["x", "y", "text"]),
            "figure": figure}

    @staticmethod
    def _draw_graph(fig, src) -> None:
        from bokeh.models import HoverTool

        edges = fig.segment("x0", "y0", "x1", "y1", source=src["edges"], line_color="colour",
                            line_alpha="probability", line_width=2)
        fig.scatter("x", "y", source=src["heads"], marker="triangle", angle="angle", size=9,
                    fill_color="colour", line_color="colour", fill_alpha="probability",
                    line_alpha="probability")
        nodes = fig.scatter("x", "y", source=src["nodes"], size=16, fill_color="colour",
                            line_color="black")
        fig.text("x", "y", text="gene", source=src["labels"], text_font_size="9pt",
                 text_align="center", text_baseline="middle")
        fig.text("x", "y", text="text", source=src["note"], text_font_size="10pt",
                 text_color="dimgray", text_align="center", text_baseline="middle")
        fig.add_tools(HoverTool(renderers=[edges], tooltips=[
            ("edge", "@edge"), ("probability", "@probability{0.00}"), ("effect", "@effect")]),
            HoverTool(renderers=[nodes], tooltips=[("gene", "@gene"), ("role", "@role")]))

    def _live_graph(self) -> LiveGlyphs:
        """The subgraph's glyphs, drawn into each rendered frame and updated in place when
        the centre gene or the filters change (see :class:`LiveGlyphs`)."""
        if getattr(self, "_live", None) is None:
            self._live = LiveGlyphs(self._graph_data, self._draw_graph)
            self.selection.param.watch(self._live.refresh, ["perturbation"])
            self.param.watch(self._live.refresh, ["threshold", "max_nodes"])
        return self._live

    @param.depends("selection.perturbation", "threshold", "max_nodes")
    def _centre_text(self):
        gene = self.centre()
        if not gene:
            return pn.pane.Markdown("Choose a gene of the network to centre the subgraph on it "
                                    f"({len(posterior(self.study)[0])} genes).",
                                    css_classes=["wb-grn-centre"])
        nodes, e = subgraph(self.study, gene, self.threshold, self.max_nodes)
        return pn.pane.Markdown(f"Subgraph centred on **{md_text(gene)}**: {len(nodes)} genes, "
                                f"{len(e)} edges", css_classes=["wb-grn-centre"])

    def graph(self):
        """The subgraph, redrawn in place when the gene or the filters change.

        Returns
        -------
        panel.Column
            The centre's caption and the plot.
        """
        # a fixed frame; the glyphs inside are data that a choice replaces in place
        frame = hv.Points([]).opts(
            width=self.width - 160, height=self.height - 60, xaxis=None, yaxis=None,
            xlim=(-1, 1), ylim=(-1, 1), tools=["save"], title="Subgraph",
            hooks=[self._live_graph().hook])
        return pn.Column(live(self, "_centre_text"), pn.pane.HoloViews(frame, linked_axes=False))

    def _sample_image(self, sample=0):
        s = np.asarray(self.study.read("grn_samples")[int(sample)])
        n = s.shape[0]
        return hv.Image(s[::-1].astype(float), bounds=(0, 0, n, n)).opts(
            cmap="Greys", width=220, height=200, xaxis=None, yaxis=None, toolbar=None)

    @param.depends("sample", "selection.perturbation")
    def _sample_text(self):
        names, _ = posterior(self.study)
        arr = self.study.read("grn_samples")
        s = np.asarray(arr[int(self.sample)])
        gene = self.centre()
        txt = f"Sample {self.sample} of {arr.shape[0]}: {int((s > 0).sum())} edges"
        if gene and s.shape[0] == len(names):
            k = names.index(gene)
            regs = [names[j] for j in np.flatnonzero(s[k]) if j != k]
            tgts = [names[i] for i in np.flatnonzero(s[:, k]) if i != k]
            txt += (f"; regulators of {gene}: {', '.join(regs) or '-'}; "
                    f"targets: {', '.join(tgts) or '-'}")
        return pn.pane.Markdown(md_text(txt), width=260)

    def sample_view(self):
        """The posterior sample chosen by ``sample``, redrawn when it changes.

        Returns
        -------
        panel.viewable.Viewable
            The plot, or a note when no samples are stored.
        """
        if not self.study.has("grn_samples"):
            return pn.pane.Markdown("No posterior samples stored (`workbench grn STUDY`).")
        dmap = hv.DynamicMap(self._sample_image, streams=[hv.streams.Params(self, ["sample"])])
        return pn.Row(pn.pane.HoloViews(dmap, linked_axes=False), live(self, "_sample_text"))

    def _cycles_for_gene(self) -> pd.DataFrame:
        df = cycles(self.study)
        g = self.centre()
        if g and len(df):
            df = df[df["genes"].map(lambda c: g in c)]
        return df[["cycle", "length", "frequency"]].head(20).reset_index(drop=True)

    def edges_csv(self) -> str:
        """The edges shown (around the selected gene, or all) as CSV, effects included.

        Returns
        -------
        str
            The CSV text.
        """
        return self.table().to_csv(index=False)

    def edge_table(self):
        """The likely edges with weight and effect, and a CSV download of them.

        Returns
        -------
        panel.Column
            The table and its download button.
        """
        tab = pn.widgets.Tabulator(self.table(), show_index=False, disabled=True, height=220,
                                   width=420)

        def refresh(*_):
            tab.value = self.table()

        self.selection.param.watch(refresh, "perturbation")
        self.param.watch(refresh, ["threshold", "max_nodes"])
        import io

        download = pn.widgets.FileDownload(
            callback=lambda: io.StringIO(self.edges_csv()), filename="grn_edges.csv",
            label="Download edges (CSV)", button_type="default", width=200)
        return pn.Column(tab, download)

    def cycle_table(self):
        """The stored cycles (up to 20; those through the selected gene when there is one).

        Returns
        -------
        panel.widgets.Tabulator
            The table.
        """
        tab = pn.widgets.Tabulator(self._cycles_for_gene(), show_index=False, disabled=True,
                                   height=150, width=340)
        self.selection.param.watch(lambda e: setattr(tab, "value", self._cycles_for_gene()),
                                   "perturbation")
        return tab

    def body(self):
        """The edge filters above tabs: subgraph, edge probabilities, samples, edges, cycles,
        reference.

        Returns
        -------
        panel.Column
            The view's content.
        """
        agree = agreement(self.study)
        return pn.Column(
            pn.Row(pn.widgets.FloatSlider.from_param(self.param.threshold, width=180),
                   pn.widgets.IntSlider.from_param(self.param.max_nodes, width=160)),
            pn.Tabs(("Subgraph", self.graph()),
                    ("Edge probabilities", pn.pane.HoloViews(self.matrix(), linked_axes=False)),
                    ("Samples", pn.Column(pn.widgets.IntSlider.from_param(self.param.sample,
                                                                          width=240),
                                          self.sample_view())),
                    ("Edges", self.edge_table()),
                    ("Cycles", self.cycle_table()),
                    ("Reference", pn.widgets.Tabulator(agree, show_index=False, disabled=True,
                                                       width=320, height=160) if len(agree)
                     else pn.pane.Markdown("No reference network in this Study.")),
                    dynamic=True))
