"""Posterior metrics for regulatory graphs: admissible sets, Bayes-SHD, KL, AUROC, cycles.

The *admissible set* is the set of graphs that explain the data equally well (method card
section 1.8). It is described by a canonical ground-truth adjacency and a partition of the
columns into interchangeable groups (a variable and its negated copy): for every row ``i``
and every group ``g`` with a true edge, an admissible graph uses exactly one member of
``g`` as parent of ``i``; it uses none of a group without a true edge. With all groups of
size one the set holds only the ground truth.

Metrics (DynGFN's, section 1.9):

- **Bayes-SHD**: mean over posterior samples of the Hamming distance to the *nearest*
  admissible graph.
- **KL(P* || Q)**, with ``P*`` uniform over the admissible set and ``Q`` the model, i.e.
  ``-log|A| - mean_{G in A} log Q(G)``. This is the forward direction (mass-covering): it
  is large when ``Q`` misses admissible graphs. Both DynGFN and the bootstrap baseline
  factorise over rows, so the mean is taken row by row.
- **Coverage**: share of admissible graphs seen at least once among the samples.
- **AUROC / AUPRC** of the posterior edge marginals on the identifiable entries (columns
  in singleton groups), and against reference networks given as edge lists with a random
  baseline and a permutation p-value.

Orientation: ``G[i, j] = 1`` means gene ``j`` regulates the velocity of gene ``i``; an edge
list row ``(source, target)`` therefore sets ``G[target, source]``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np


@dataclass
class AdmissibleSet:
    """Graphs equivalent to ``truth`` under swaps within column ``groups``.

    Parameters
    ----------
    truth : numpy.ndarray
        ``(d, d)`` 0/1 canonical ground truth, ``truth[i, j] = 1`` for ``j -> i``.
    groups : numpy.ndarray
        ``(d,)`` group label of each column; columns sharing a label are interchangeable
        parents. :meth:`from_truth` builds one from a truth alone (every column its own
        group).
    """

    truth: np.ndarray
    groups: np.ndarray

    @classmethod
    def from_truth(cls, truth, groups=None) -> AdmissibleSet:
        """The admissible set of a ground truth and an optional grouping of its columns.

        Parameters
        ----------
        truth : array_like
            ``(d, d)`` ground truth; positive entries are edges (stored as 0/1 uint8).
        groups : array_like, optional
            Group label of each column; ``None`` puts every column in its own group.

        Returns
        -------
        AdmissibleSet
            The set.
        """
        truth = (np.asarray(truth) > 0).astype(np.uint8)
        groups = np.arange(truth.shape[1]) if groups is None else np.asarray(groups)
        return cls(truth, groups)

    @property
    def d(self) -> int:
        return self.truth.shape[0]

    def _group_truth(self) -> tuple[np.ndarray, np.ndarray]:
        labels = np.unique(self.groups)
        onehot = (self.groups[None, :] == labels[:, None]).astype(np.int64)  # (g, d)
        gt = (self.truth.astype(np.int64) @ onehot.T) > 0  # (d, g)
        return labels, gt

    def row_options(self, i: int) -> list[tuple[int, ...]]:
        """All admissible parent sets of row ``i`` (sorted tuples).

        Parameters
        ----------
        i : int
            The row (child).

        Returns
        -------
        list of tuple of int
            One member of every group with a true edge into ``i``, in every combination.
        """
        labels, gt = self._group_truth()
        choices = [np.flatnonzero(self.groups == g) for g, on in zip(labels, gt[i]) if on]
        return [tuple(sorted(int(c) for c in combo)) for combo in itertools.product(*choices)]

    @property
    def log_size(self) -> float:
        return float(sum(np.log(len(self.row_options(i))) for i in range(self.d)))

    @property
    def size(self) -> int:
        return int(np.prod([len(self.row_options(i)) for i in range(self.d)], dtype=object))

    @property
    def identifiable(self) -> np.ndarray:
        """Boolean ``(d, d)``: entries whose column is in a group of its own."""
        counts = {g: int((self.groups == g).sum()) for g in np.unique(self.groups)}
        single = np.array([counts[g] == 1 for g in self.groups])
        return np.broadcast_to(single[None, :], (self.d, self.d)).copy()

    def nearest_distance(self, graphs) -> np.ndarray:
        """Hamming distance from each graph ``(n, d, d)`` to the nearest admissible graph.

        Parameters
        ----------
        graphs : array_like
            Graphs ``(n, d, d)``; positive entries are edges.

        Returns
        -------
        numpy.ndarray
            ``(n,)`` integer distances.
        """
        g = (np.asarray(graphs) > 0).astype(np.int64)
        labels, gt = self._group_truth()
        onehot = (self.groups[None, :] == labels[:, None]).astype(np.int64)
        k = g @ onehot.T  # (n, d, groups): how many members of each group are parents
        want = gt.astype(np.int64)[None]
        return np.where(want == 1, np.abs(k - 1), k).sum((-1, -2))

    def contains(self, graphs) -> np.ndarray:
        """Whether each graph is admissible.

        Parameters
        ----------
        graphs : array_like
            Graphs ``(n, d, d)``; positive entries are edges.

        Returns
        -------
        numpy.ndarray
            ``(n,)`` booleans: distance 0 from the set (:meth:`nearest_distance`).
        """
        return self.nearest_distance(graphs) == 0


def bayes_shd(samples, admissible: AdmissibleSet) -> float:
    """Mean Hamming distance from posterior samples to their nearest admissible graph.

    Parameters
    ----------
    samples : array_like
        Graphs ``(n, d, d)``; positive entries are edges.
    admissible : AdmissibleSet
        The admissible set.

    Returns
    -------
    float
        Bayes-SHD.
    """
    return float(admissible.nearest_distance(samples).mean())


def kl_to_admissible(log_q_row, admissible: AdmissibleSet) -> float:
    """``KL(P* || Q)`` with ``P*`` uniform on the admissible set and ``Q`` row-factorised.

    Parameters
    ----------
    log_q_row : callable
        ``log_q_row(i, parents)`` returns ``log Q_i(parents)`` for row ``i``, ``parents``
        a sorted tuple of column indices.
    admissible : AdmissibleSet
        The admissible set, the support of ``P*``.

    Returns
    -------
    float
        The KL in nats, summed over rows.
    """
    total = 0.0
    for i in range(admissible.d):
        opts = admissible.row_options(i)
        total += -np.log(len(opts)) - np.mean([log_q_row(i, p) for p in opts])
    return float(total)


def bernoulli_row_log_prob(edge_probability, n_samples: int | None = None):
    """``log_q_row`` for independent Bernoulli edges (Jeffreys-smoothed when ``n_samples``).

    Parameters
    ----------
    edge_probability : array_like
        ``(d, d)`` edge probabilities, ``[i, j]`` for ``j -> i``.
    n_samples : int, optional
        Number of graphs the probabilities were counted from: each becomes
        ``(p n + 1/2) / (n + 1)``. ``None`` uses them as given. Either way they are clipped
        to ``[1e-12, 1 - 1e-12]``.

    Returns
    -------
    callable
        ``log_q_row(i, parents) -> float``, the log-probability of row ``i`` having exactly
        those parents (for :func:`kl_to_admissible`).
    """
    p = np.asarray(edge_probability, np.float64)
    if n_samples is not None:
        p = (p * n_samples + 0.5) / (n_samples + 1.0)
    p = np.clip(p, 1e-12, 1 - 1e-12)

    def log_q_row(i, parents):
        g = np.zeros(p.shape[1], bool)
        g[list(parents)] = True
        return float(np.where(g, np.log(p[i]), np.log1p(-p[i])).sum())

    return log_q_row


def coverage(samples, admissible: AdmissibleSet) -> float:
    """Share of the admissible graphs seen at least once among ``samples``.

    Parameters
    ----------
    samples : array_like
        Graphs ``(n, d, d)``; positive entries are edges.
    admissible : AdmissibleSet
        The admissible set.

    Returns
    -------
    float
        Distinct admissible graphs among the samples over the size of the set.
    """
    s = (np.asarray(samples) > 0)
    hits = s[admissible.contains(s)]
    distinct = {h.tobytes() for h in hits}
    return float(len(distinct) / admissible.size)


def edge_auc(prob, truth, mask=None) -> dict[str, float]:
    """AUROC and AUPRC of edge probabilities against a binary truth on ``mask`` entries.

    Parameters
    ----------
    prob : array_like
        Edge scores, the shape of ``truth``.
    truth : array_like
        True edges; positive entries are edges.
    mask : array_like of bool, optional
        Entries scored; ``None`` scores all.

    Returns
    -------
    dict
        ``auroc``, ``auprc`` (both ``NaN`` when the masked truth is all one class) and
        ``prevalence`` (share of true edges among the masked entries).
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    prob = np.asarray(prob, np.float64)
    truth = np.asarray(truth) > 0
    mask = np.ones_like(truth, bool) if mask is None else np.asarray(mask, bool)
    y, s = truth[mask], prob[mask]
    if y.all() or not y.any():
        return {"auroc": float("nan"), "auprc": float("nan"), "prevalence": float(y.mean())}
    return {"auroc": float(roc_auc_score(y, s)), "auprc": float(average_precision_score(y, s)),
            "prevalence": float(y.mean())}


def posterior_metrics(samples, admissible: AdmissibleSet, log_q_row=None,
                      edge_probability=None) -> dict[str, float]:
    """Bayes-SHD, KL(P*||Q) (when ``log_q_row`` is given), coverage, identifiable AUROC/AUPRC.

    Parameters
    ----------
    samples : array_like
        Posterior graphs ``(n, d, d)``.
    admissible : AdmissibleSet
        The admissible set of the ground truth.
    log_q_row : callable, optional
        The model's row log-probability (see :func:`kl_to_admissible`); ``None`` leaves the
        KL out.
    edge_probability : array_like, optional
        ``(d, d)`` edge marginals for the AUROC; ``None`` uses the samples' mean.

    Returns
    -------
    dict
        ``bayes_shd``, ``coverage``, ``admissible_size``, ``share_admissible``,
        ``mean_edges``, ``auroc`` and ``auprc`` (on the identifiable entries), and
        ``kl_pstar_q`` when ``log_q_row`` is given.
    """
    samples = np.asarray(samples)
    prob = samples.mean(0) if edge_probability is None else np.asarray(edge_probability)
    out = {"bayes_shd": bayes_shd(samples, admissible),
           "coverage": coverage(samples, admissible),
           "admissible_size": admissible.size,
           "share_admissible": float(admissible.contains(samples).mean()),
           "mean_edges": float((samples > 0).sum((-1, -2)).mean())}
    auc = edge_auc(prob, admissible.truth, admissible.identifiable)
    out.update({"auroc": auc["auroc"], "auprc": auc["auprc"]})
    if log_q_row is not None:
        out["kl_pstar_q"] = kl_to_admissible(log_q_row, admissible)
    return out


# ---------------------------------------------------------------------- reference networks
def reference_matrix(edges, genes, source: str = "source", target: str = "target") -> np.ndarray:
    """``(d, d)`` 0/1 matrix from an edge table: ``R[target, source] = 1`` (case-insensitive).

    Parameters
    ----------
    edges : pandas.DataFrame
        Edge table.
    genes : sequence of str
        Genes of the rows and columns; edges naming other genes are dropped.
    source, target : str
        Column names of the regulator and the regulated gene.

    Returns
    -------
    numpy.ndarray
        ``(d, d)`` uint8 reference matrix.
    """
    index = {str(g).upper(): k for k, g in enumerate(genes)}
    ref = np.zeros((len(genes), len(genes)), np.uint8)
    src = edges[source].astype(str).str.upper().map(index)
    tgt = edges[target].astype(str).str.upper().map(index)
    ok = src.notna() & tgt.notna()
    ref[tgt[ok].astype(int).to_numpy(), src[ok].astype(int).to_numpy()] = 1
    return ref


def reference_auc(prob, reference, *, n_perm: int = 1000, seed: int = 0,
                  include_self: bool = False) -> dict[str, float]:
    """AUROC/AUPRC of edge probabilities against a reference network, with a null.

    The null permutes the gene labels of the probability matrix (rows and columns together),
    keeping the posterior's structure but breaking its alignment with the reference. The
    p-value is ``(1 + #{null >= observed}) / (1 + n_perm)``. Self-loops are excluded unless
    ``include_self`` (reference networks rarely list them).

    Parameters
    ----------
    prob : array_like
        ``(d, d)`` edge probabilities, ``[i, j]`` for ``j -> i``.
    reference : array_like
        ``(d, d)`` reference network in the same orientation (:func:`reference_matrix`).
    n_perm : int
        Label permutations of the null.
    seed : int
        Seed of the permutations.
    include_self : bool
        Score the diagonal too.

    Returns
    -------
    dict
        ``auroc``, ``auprc``, ``n_edges`` and ``n_pairs`` scored, ``random_auroc`` (0.5),
        ``random_auprc`` (the prevalence), and ``p_auroc``, ``p_auprc`` (``NaN`` when the
        reference has no edge or no non-edge among the scored pairs).
    """
    prob = np.asarray(prob, np.float64)
    reference = np.asarray(reference) > 0
    d = prob.shape[0]
    mask = np.ones((d, d), bool) if include_self else ~np.eye(d, dtype=bool)
    obs = edge_auc(prob, reference, mask)
    out = {"auroc": obs["auroc"], "auprc": obs["auprc"], "n_edges": int(reference[mask].sum()),
           "n_pairs": int(mask.sum()), "random_auroc": 0.5, "random_auprc": obs["prevalence"]}
    if np.isnan(obs["auroc"]):
        out.update(p_auroc=float("nan"), p_auprc=float("nan"))
        return out
    rng = np.random.default_rng(seed)
    null_roc, null_pr = [], []
    for _ in range(n_perm):
        perm = rng.permutation(d)
        r = edge_auc(prob[np.ix_(perm, perm)], reference, mask)
        null_roc.append(r["auroc"])
        null_pr.append(r["auprc"])
    out["p_auroc"] = float((1 + np.sum(np.array(null_roc) >= obs["auroc"])) / (1 + n_perm))
    out["p_auprc"] = float((1 + np.sum(np.array(null_pr) >= obs["auprc"])) / (1 + n_perm))
    return out


# ---------------------------------------------------------------------- cycles
def simple_cycles(graph, max_length: int = 4) -> list[tuple[int, ...]]:
    """Directed simple cycles of length 2..``max_length`` (self-loops excluded).

    An edge ``j -> i`` exists where ``graph[i, j] = 1``. Each cycle is returned once, as the
    tuple of genes in regulation order starting from its smallest index.

    Parameters
    ----------
    graph : array_like
        ``(d, d)`` adjacency; positive entries are edges.
    max_length : int
        Longest cycle listed.

    Returns
    -------
    list of tuple of int
        The cycles.
    """
    g = np.asarray(graph) > 0
    d = g.shape[0]
    children = [np.flatnonzero(g[:, j]) for j in range(d)]  # j regulates these
    found = []

    def extend(path, start):
        for nxt in children[path[-1]]:
            if nxt == start and len(path) >= 2:
                found.append(tuple(path))
            elif nxt > start and nxt not in path and len(path) < max_length:
                extend(path + [int(nxt)], start)

    for s in range(d):
        extend([s], s)
    return found


def cycle_frequencies(samples, names=None, max_length: int = 4, top: int = 20) -> list[dict]:
    """The most frequent cycles across posterior samples, with their sample frequency.

    Parameters
    ----------
    samples : array_like
        Posterior graphs ``(n, d, d)``.
    names : sequence of str, optional
        Gene names; ``None`` labels genes by index.
    max_length : int
        Longest cycle counted (see :func:`simple_cycles`).
    top : int
        Cycles kept.

    Returns
    -------
    list of dict
        Most frequent first (ties by cycle): ``cycle`` (gene names or indices as strings,
        in regulation order), ``length`` and ``frequency`` (share of samples holding it).
    """
    counts: dict[tuple, int] = {}
    samples = np.asarray(samples)
    for g in samples:
        for cyc in set(simple_cycles(g, max_length)):
            counts[cyc] = counts.get(cyc, 0) + 1
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    out = []
    for cyc, c in ranked:
        label = [names[k] for k in cyc] if names is not None else list(cyc)
        out.append({"cycle": [str(n) for n in label], "length": len(cyc),
                    "frequency": c / max(len(samples), 1)})
    return out


#: Columns of the stored cycle table (``grn.uns["workbench"]["cycles"]``).
CYCLE_COLUMNS = ("genes", "length", "frequency")
#: Separator between gene names in the stored ``genes`` column.
CYCLE_SEP = ","


def cycle_table(records: list[dict]):
    """The stored layout of cycles: one row per cycle, in frequency order.

    ``records`` are :func:`cycle_frequencies` entries. The table has a ``genes`` column (the
    cycle's genes in regulation order, joined by ``","``), ``length`` and ``frequency``
    (share of posterior samples that contain the cycle). A table rather than a list of
    dicts because AnnData stores tables in ``uns`` but not lists of mappings.

    Parameters
    ----------
    records : list of dict
        Cycles from :func:`cycle_frequencies`.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`CYCLE_COLUMNS`.
    """
    import pandas as pd

    return pd.DataFrame({
        "genes": pd.Series([CYCLE_SEP.join(map(str, r["cycle"])) for r in records], dtype=object),
        "length": pd.Series([int(r["length"]) for r in records], dtype=np.int64),
        "frequency": pd.Series([float(r["frequency"]) for r in records], dtype=np.float64)})


def cycles_from_table(table) -> list[dict]:
    """Read the stored cycle table back as records ``{"cycle": [genes], "length", "frequency"}``.

    Anything else (the older dict keyed by index, a list of gene lists) is refused with a
    message that names the step to rerun: no reader guesses at a layout.

    Parameters
    ----------
    table : pandas.DataFrame
        The stored cycle table (:func:`cycle_table`).

    Returns
    -------
    list of dict
        One record per row, in the table's order.

    Raises
    ------
    ValidationError
        When ``table`` is not a DataFrame with the columns of :data:`CYCLE_COLUMNS`.
    """
    import pandas as pd

    from workbench.errors import ValidationError

    if not isinstance(table, pd.DataFrame) or not set(CYCLE_COLUMNS) <= set(table.columns):
        found = (list(table.columns) if isinstance(table, pd.DataFrame)
                 else type(table).__name__)
        raise ValidationError(
            f"grn.uns['workbench']['cycles'] is not a cycle table with columns "
            f"{list(CYCLE_COLUMNS)} (found {found}).",
            "rerun `workbench grn STUDY` to store the cycles in the current layout.")
    return [{"cycle": str(g).split(CYCLE_SEP), "length": int(n), "frequency": float(f)}
            for g, n, f in zip(table["genes"], table["length"], table["frequency"], strict=True)]


def read_edge_list(path, *, confidence=("A", "B", "C")):
    """Read a reference network as a ``source, target`` table.

    Accepts BEELINE files (``Gene1, Gene2``: TF -> target), DoRothEA regulons (``tf``,
    ``target``, ``confidence``: rows with a confidence in ``confidence`` are kept) and plain
    ``source, target`` CSV/TSV files (gzip allowed).

    Parameters
    ----------
    path : str or pathlib.Path
        The file; a name containing ``.tsv`` or ``.txt`` is read as tab-separated, any other
        as comma-separated. Column names are matched case-insensitively.
    confidence : sequence of str, optional
        Confidence levels kept when the file has a ``confidence`` column; ``None`` keeps
        every row.

    Returns
    -------
    pandas.DataFrame
        Columns ``source`` and ``target`` (strings).

    Raises
    ------
    InputFormatError
        When the file cannot be read or has none of the column pairs.
    """
    import pandas as pd

    from workbench.errors import InputFormatError

    path = str(path)
    sep = "\t" if ".tsv" in path or ".txt" in path else ","
    try:
        df = pd.read_csv(path, sep=sep)
    except Exception as exc:
        raise InputFormatError(f"reference network {path} cannot be read: {exc}",
                               "give a CSV/TSV edge list with source and target columns.") from exc
    cols = {c.lower(): c for c in df.columns}
    if "confidence" in cols and confidence is not None:
        df = df[df[cols["confidence"]].astype(str).isin(confidence)]
    for s, t in (("source", "target"), ("gene1", "gene2"), ("tf", "target")):
        if s in cols and t in cols:
            return pd.DataFrame({"source": df[cols[s]].astype(str),
                                 "target": df[cols[t]].astype(str)})
    raise InputFormatError(f"reference network {path} has columns {list(df.columns)[:6]}.",
                           "use source,target (or Gene1,Gene2 / tf,target) columns.")


def reference_gene_set(edges, candidates, *, n_genes: int = 26, n_regulators: int = 8) -> list:
    """Genes whose reference sub-network is dense: regulators first, then shared targets.

    Takes the ``n_regulators`` sources with the most targets among ``candidates``, then
    adds the candidates regulated by most of the chosen sources until ``n_genes``. The
    choice reads only the reference and the candidate list (never the data a method is
    scored on), so it does not bias a method's AUROC; it makes the reference large enough
    (dozens of edges among the genes) for a permutation p-value to mean something.

    Parameters
    ----------
    edges : pandas.DataFrame
        Reference edge table with ``source`` and ``target`` columns (self-loops and edges
        outside ``candidates`` ignored; names matched case-insensitively).
    candidates : sequence of str
        Genes that may be chosen (for example those measured).
    n_genes : int
        Most genes returned.
    n_regulators : int
        Regulators chosen first.

    Returns
    -------
    list of str
        The chosen genes, spelled as in ``candidates``: regulators first.
    """
    cand = {str(g).upper(): str(g) for g in candidates}
    e = edges.assign(s=edges["source"].astype(str).str.upper(),
                     t=edges["target"].astype(str).str.upper())
    e = e[e["s"].isin(cand) & e["t"].isin(cand) & (e["s"] != e["t"])].drop_duplicates(["s", "t"])
    regs = e.groupby("s").size().sort_values(ascending=False, kind="stable")
    chosen = list(regs.index[:n_regulators])
    shared = e[e["s"].isin(chosen) & ~e["t"].isin(chosen)].groupby("t").size()
    shared = shared.sort_values(ascending=False, kind="stable")
    chosen += list(shared.index[: max(n_genes - len(chosen), 0)])
    return [cand[g] for g in chosen[:n_genes]]
