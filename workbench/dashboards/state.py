"""The one selection that every dashboard view reads and writes.

A biologist follows one gene through the workbench: its images, the concepts it drives, the
pairs it was tested in and its regulators. The :class:`Selection` holds that thread as plain
values (a perturbation name, a concept id, a pair "A+B", a list of sample ids); each view
watches it and redraws, and writes to it when the user clicks. Because it is a
:class:`param.Parameterized` that imports nothing from Panel, the linking logic is tested
without a browser (STYLE item 4).

Each browser session owns its Selection; nothing about it is written into the Study, so
users of one served Study never see each other's choices and a new session starts empty.
It travels three ways:

* the URL query string (``?gene=G03&concept=c7&pair=G03%2BG05&samples=[...]`` and
  ``&phenotype=...``, the phenotype search the embedding map is coloured by), so a page
  can be bookmarked and shared (:data:`URL_KEYS`, :meth:`Selection.to_query`); a session
  opened on such a URL starts from it;
* the session's selection channel, shared with the napari process the session opened
  (:class:`workbench.data.selection.SelectionChannel`; its keys are documented there, and
  the phenotype is not one of them);
* CSV export (:mod:`workbench.dashboards.export`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import param

#: Selection parameter -> URL query key.
URL_KEYS = {"perturbation": "gene", "concept": "concept", "pair": "pair", "samples": "samples",
            "phenotype": "phenotype"}
#: The views a dashboard can show, in their default order.
VIEW_NAMES = ("embeddings", "interactions", "concepts", "grn", "perturbation_map", "images",
              "gene_card", "overview", "plan")
DEFAULT_VIEWS = ("embeddings", "interactions", "concepts", "grn")
#: At most this many sample ids go into a URL (the rest stay in the session).
MAX_URL_SAMPLES = 200
#: Longest name a selection field keeps (gene, concept, pair, sample id); longer text from
#: a URL or a channel file is cut, so a crafted link cannot store a large payload.
MAX_NAME = 200


def clean_name(value: Any) -> str:
    """A selection value as plain one-line text: control characters dropped, cut at
    :data:`MAX_NAME`. (Markup is escaped where it is shown, see ``base.md_text``.)

    Parameters
    ----------
    value : object
        Any value; bytes are decoded (undecodable bytes replaced), anything else goes
        through ``str``.

    Returns
    -------
    str
        The printable characters, stripped of surrounding space and cut at
        :data:`MAX_NAME`; ``""`` for ``None``.
    """
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    text = "".join(ch for ch in str(value) if ch.isprintable())
    return text.strip()[:MAX_NAME]


def split_pair(pair: str) -> tuple[str, str] | None:
    """``"A+B"`` -> ``("A", "B")``; ``None`` for anything that is not a pair.

    Parameters
    ----------
    pair : str
        A pair name; it is split at its first ``+``.

    Returns
    -------
    tuple of str or None
        The two genes, or ``None`` when ``pair`` is empty, has no ``+`` or an empty side.
    """
    if not pair or "+" not in pair:
        return None
    a, _, b = pair.partition("+")
    return (a, b) if a and b else None


def make_pair(a: str, b: str) -> str:
    """The canonical pair name: the two genes sorted, joined by ``+``.

    Parameters
    ----------
    a, b : str
        The two genes, in either order.

    Returns
    -------
    str
        ``"A+B"`` with ``A <= B``.
    """
    a, b = sorted((str(a), str(b)))
    return f"{a}+{b}"


class Selection(param.Parameterized):
    """What the user is looking at, shared by every view of one dashboard session.

    Each session owns its own ``Selection``: two browser tabs never see each other's clicks.
    Views call the ``choose_*`` methods (or set the parameters) and watch the parameters
    they depend on.

    Parameters
    ----------
    concept : str, optional
        Selected concept id (row of the concepts table); default empty.
    pair : str, optional
        Selected pair of perturbations, written ``"A+B"``; default empty.
    perturbation : str, optional
        Selected perturbation or gene name; default empty.
    phenotype : str, optional
        Name of the Study's phenotype search the embedding view colours by; default empty.
    samples : list of str, optional
        Ids of the samples selected by box or lasso (``profiles`` obs names); default
        none.
    name : str, optional
        Name of the object (param's own; a generated one when left out).
    """

    perturbation = param.String(default="", doc="Selected perturbation or gene name.")
    concept = param.String(default="", doc="Selected concept id (row of the concepts table).")
    pair = param.String(default="", doc='Selected pair of perturbations, written "A+B".')
    samples = param.List(default=[], item_type=str,
                         doc="Ids of the samples selected by box or lasso (profiles obs_names).")
    phenotype = param.String(default="", doc="Selected phenotype: the name of the Study's "
                             "phenotype search (``workbench find``), whose classifier score "
                             "the embedding view colours by. Part of the URL, not of the "
                             "napari channel.")

    def __init__(self, **params):
        super().__init__(**params)
        #: Set by the page that shows this Selection: a callable returning the context
        #: every change runs inside (a served page holds its Bokeh document there, so one
        #: choice reaches the browser as one message and the model graph is walked once).
        #: ``None``: changes run as they are.
        self.batch_context: Callable[[], contextlib.AbstractContextManager] | None = None

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """A block whose changes are one update: each watcher runs once, after the block,
        inside :attr:`batch_context` (when set). Blocks may nest.

        Yields
        ------
        None
            Nothing; set the fields inside the block.
        """
        outer = self.batch_context() if self.batch_context else contextlib.nullcontext()
        with outer, param.parameterized.batch_call_watchers(self):
            yield

    # ------------------------------------------------------------------ choosing
    def choose_gene(self, gene: str | None) -> None:
        """Select a perturbation/gene; clears a pair that does not contain it.

        Parameters
        ----------
        gene : str or None
            The gene, cleaned with :func:`clean_name`; ``None`` or ``""`` clears the choice.
        """
        gene = clean_name(gene)
        pair = split_pair(self.pair)
        with self.batch():
            if pair and gene and gene not in pair:
                self.pair = ""
            self.perturbation = gene

    def choose_pair(self, a: str, b: str | None = None) -> None:
        """Select a pair (``choose_pair("A+B")`` or ``choose_pair("A", "B")``); the first
        gene becomes the selected perturbation.

        Parameters
        ----------
        a : str
            The first gene, or the whole pair ``"A+B"`` when ``b`` is ``None`` (anything
            that is not a pair then clears the pair).
        b : str, optional
            The second gene.
        """
        if b is None:
            ab = split_pair(a)
            if ab is None:
                with self.batch():
                    self.pair = ""
                return
            a, b = ab
        a, b = clean_name(a), clean_name(b)
        with self.batch():
            self.pair = make_pair(a, b)
            self.perturbation = str(a)

    def choose_concept(self, concept: str | None) -> None:
        """Select a concept.

        Parameters
        ----------
        concept : str or None
            The concept id, cleaned with :func:`clean_name`; ``None`` clears it.
        """
        with self.batch():
            self.concept = clean_name(concept)

    def choose_phenotype(self, name: str | None) -> None:
        """Select the phenotype search the embedding view colours by.

        Parameters
        ----------
        name : str or None
            The search's name, cleaned with :func:`clean_name`; ``None`` clears it.
        """
        with self.batch():
            self.phenotype = clean_name(name)

    def choose_samples(self, ids) -> None:
        """Select samples by id (a box or lasso selection).

        Parameters
        ----------
        ids : iterable
            The sample ids, each cleaned with :func:`clean_name`.
        """
        with self.batch():
            self.samples = [clean_name(i) for i in ids]

    def clear(self) -> None:
        """Empty every field (one redraw)."""
        self.update(perturbation="", concept="", pair="", samples=[], phenotype="")

    @property
    def pair_genes(self) -> tuple[str, str] | None:
        return split_pair(self.pair)

    # ------------------------------------------------------------------ round trips
    def to_dict(self) -> dict[str, Any]:
        """The fields the selection channel carries.

        Returns
        -------
        dict
            ``perturbation``, ``concept``, ``pair`` and ``samples`` (a new list); the
            phenotype is not among them.
        """
        return {"perturbation": self.perturbation, "concept": self.concept,
                "pair": self.pair, "samples": list(self.samples)}

    def update(self, values: dict[str, Any] | None = None, **kw: Any) -> None:
        """Set several fields at once (one redraw); unknown keys are ignored. Values are
        cleaned with :func:`clean_name`.

        Parameters
        ----------
        values : dict, optional
            Field name to value; ``None`` values are skipped.
        **kw
            More fields, taking precedence over ``values``.
        """
        values = {**(values or {}), **kw}
        clean: dict[str, Any] = {}
        for key in ("perturbation", "concept", "pair", "phenotype"):
            if key in values and values[key] is not None:
                clean[key] = clean_name(values[key])
        if "samples" in values and values["samples"] is not None:
            clean["samples"] = [clean_name(s) for s in values["samples"]]
        clean = {k: v for k, v in clean.items() if getattr(self, k) != v}
        if clean:  # values that change nothing cost nothing
            with self.batch():
                self.param.update(**clean)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Selection:
        """A new Selection holding ``values`` (see :meth:`update`).

        Parameters
        ----------
        values : dict
            Field name to value.

        Returns
        -------
        Selection
            The new selection.
        """
        sel = cls()
        sel.update(values)
        return sel

    def to_query(self) -> dict[str, str]:
        """URL query parameters (empty fields are left out).

        Returns
        -------
        dict of str to str
            Query key (:data:`URL_KEYS`) to value; ``samples`` as a JSON list of at most
            :data:`MAX_URL_SAMPLES` ids.
        """
        q: dict[str, str] = {}
        for attr, key in URL_KEYS.items():
            value = getattr(self, attr)
            if attr == "samples":
                if value:
                    q[key] = json.dumps(list(value)[:MAX_URL_SAMPLES])
            elif value:
                q[key] = value
        return q

    def update_from_query(self, query: dict[str, Any]) -> None:
        """Apply URL query parameters (values may be strings or lists of strings).

        Parameters
        ----------
        query : dict
            Query key to value; a list gives its first item (all of it for ``samples``,
            read with :func:`parse_samples`), bytes are decoded and unknown keys ignored.
        """
        values: dict[str, Any] = {}
        for attr, key in URL_KEYS.items():
            if key not in query:
                continue
            v = query[key]
            if isinstance(v, list | tuple) and attr != "samples":
                v = v[0] if v else ""
            if isinstance(v, bytes):
                v = v.decode()
            if attr == "samples":
                values[attr] = parse_samples(v)
            else:
                values[attr] = v
        self.update(values)


def parse_samples(value: Any) -> list[str]:
    """Sample ids from a URL value: a JSON list, a comma-separated string, or a list.

    Parameters
    ----------
    value : object
        The query value: ``None`` or ``""``, a list or tuple (one string in it is parsed
        again, as a query parser hands it over), or a string; a string starting with
        ``[`` that is not valid JSON is split at commas.

    Returns
    -------
    list of str
        The ids, empty ones dropped from a comma-separated string.
    """
    if value is None or value == "":
        return []
    if isinstance(value, list | tuple):
        if len(value) == 1 and isinstance(value[0], str | bytes):
            return parse_samples(value[0].decode() if isinstance(value[0], bytes) else value[0])
        return [str(v) for v in value]
    text = str(value).strip()
    if text.startswith("["):
        try:
            return [str(v) for v in json.loads(text)]
        except json.JSONDecodeError:
            pass
    return [s for s in text.split(",") if s]


class Layout(param.Parameterized):
    """Which views a session shows side by side (two to four of :data:`VIEW_NAMES`).

    Parameters
    ----------
    columns : int, optional
        Views per row, 1 to 4 (default 2).
    views : list of str, optional
        The views shown, in order (default :data:`DEFAULT_VIEWS`); more than four are cut
        to the first four when set.
    name : str, optional
        Name of the object (param's own; a generated one when left out).
    """

    views = param.ListSelector(default=list(DEFAULT_VIEWS), objects=list(VIEW_NAMES),
                               doc="The views shown side by side, in order (two to four).")
    columns = param.Integer(default=2, bounds=(1, 4), doc="Views per row.")

    @param.depends("views", watch=True)
    def _cap(self):
        if len(self.views) > 4:
            self.views = list(self.views)[:4]
