"""Plan view: what to run next, why, how the campaign has gone, and whether to stop.

Reads the ``design_plan`` artefact that ``workbench design screen|hits|knockout`` writes,
and the design steps' provenance for the campaign curve (one point per design step: the
certified lower bound on system accuracy for the screen planner, the best measured value
for the hit designer, the posterior's mean edge entropy for the knock-out planner). It
shows the proposed batch with the reason for each pick, the stop recommendation, and
exports the batch as a plate map (CSV: plate, well, row, column, candidate, rank, reason).
Choosing a proposed candidate selects it in every view (a pair ``A+B`` selects the pair).
"""

from __future__ import annotations

import html
import io
import string

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from workbench.dashboards.base import StudyView, md_text
from workbench.dashboards.cache import cached
from workbench.errors import ValidationError

#: What the campaign curve shows for each planner: (note key, axis label).
CURVES = {"screen": ("bound", "certified accuracy bound"),
          "hits": ("best_value", "best measured value"),
          "knockout": ("entropy", "mean edge entropy (nats)")}
TOOLTIPS = {"rank": "order of the pick within the batch",
            "score": "the policy's acquisition score (knock-outs: expected information gain, "
                     "nats)",
            "reason": "why the planner chose it"}


def read_plan(study) -> pd.DataFrame:
    # keyed on the content too: copies of one Study share its id and versions
    """The ``design_plan`` table, cached per artefact version and content.

    Parameters
    ----------
    study : Study
        A Study with ``design_plan``.

    Returns
    -------
    pandas.DataFrame
        The plan (shared; do not mutate it).
    """
    sha = study.artefacts.get("design_plan", {}).get("sha256", "")
    return cached(study, ["design_plan"], "design-plan", lambda s, _sha: s.read("design_plan"),
                  sha)


def proposed_batch(study) -> pd.DataFrame:
    """The proposed candidates, in rank order: ``candidate, rank, score, reason, planner,
    policy``.

    Parameters
    ----------
    study : Study
        A Study with ``design_plan``.

    Returns
    -------
    pandas.DataFrame
        The proposed rows, with those of the columns that the plan holds.
    """
    plan = read_plan(study)
    prop = plan[plan["status"] == "proposed"].sort_values("rank")
    cols = [c for c in ("candidate", "rank", "score", "reason", "planner", "policy")
            if c in prop]
    out = prop[cols].reset_index(drop=True)
    out["rank"] = out["rank"].astype(int)
    return out


def campaign_curve(study) -> pd.DataFrame:
    """One row per design step of the current planner: ``round``, ``value``, ``what``.

    The planner is that of the current ``design_plan``; steps of other planners are left
    out. Steps without the value (a first screen batch has no bound yet) are left out too.

    Parameters
    ----------
    study : Study
        A Study with ``design_plan``.

    Returns
    -------
    pandas.DataFrame
        ``round`` (the planner's design step, counting from 1), ``value`` and ``what`` (the
        quantity the planner tracks).
    """
    plan = read_plan(study)
    planner = str(plan["planner"].iloc[0]) if len(plan) else ""
    key, what = CURVES.get(planner, ("", ""))
    rows = []
    n = 0
    for prov in study.provenance:
        if prov.get("tool") != "design" or "design_plan" not in prov.get("outputs", {}):
            continue
        notes = prov.get("notes", {})
        if notes.get("planner", prov.get("params", {}).get("kind")) != planner:
            continue
        n += 1
        if key in notes and np.isfinite(float(notes[key])):
            rows.append({"round": n, "value": float(notes[key]), "what": what})
    return pd.DataFrame(rows, columns=["round", "value", "what"])


def stop_advice(study) -> str:
    """The stop recommendation of the current plan, in words (plain text).

    Parameters
    ----------
    study : Study
        A Study with ``design_plan``.

    Returns
    -------
    str
        One sentence: stop or continue, and why.
    """
    plan = read_plan(study)
    if not len(plan):
        return "The plan is empty."
    planner = str(plan["planner"].iloc[0])
    stop = bool(plan["stop"].iloc[0])
    if planner == "screen":
        bound = float(plan["bound"].iloc[0])
        if not np.isfinite(bound):
            return ("No certificate yet: measure the proposed batch, add its labels and plan "
                    "again.")
        return (f"Stop: the measured-plus-predicted table is certified at accuracy >= "
                f"{bound:.3f}." if stop else
                f"Continue: the certified accuracy bound is {bound:.3f}, below the target.")
    if planner == "knockout":
        ent = float(plan["entropy"].iloc[0]) if "entropy" in plan else float("nan")
        return ("Stop: no batch of knock-outs is expected to teach much more about the graph."
                if stop else f"Continue: the posterior's mean edge entropy is {ent:.3f} nats "
                "and the proposed batch is expected to lower it.")
    return "The hit designer has no stopping rule: stop when the budget is spent."


def plate_map(batch: pd.DataFrame, *, rows: int = 8, columns: int = 12,
              plate_prefix: str = "P", controls: int = 0,
              control_label: str = "control") -> pd.DataFrame:
    """The batch laid out on plates, row by row (A01, A02, ...), ``controls`` control wells
    at the end of each plate. Columns: plate, well, row, column, candidate, rank, reason.

    Parameters
    ----------
    batch : pandas.DataFrame
        The proposed batch (``candidate``, ``rank``, ``reason``), in well order.
    rows, columns : int
        Plate layout (8 x 12: a 96-well plate); at most 26 rows.
    plate_prefix : str
        Plates are named ``<prefix>1``, ``<prefix>2``, ...
    controls : int
        Control wells at the end of each plate.
    control_label : str
        The candidate name written into control wells.

    Returns
    -------
    pandas.DataFrame
        One row per used well (control wells have no rank).

    Raises
    ------
    ValidationError
        When the layout leaves no well for the batch.
    """
    per_plate = rows * columns - controls
    if rows < 1 or columns < 1 or rows > 26 or per_plate < 1:
        raise ValidationError(f"a plate of {rows} x {columns} wells with {controls} control "
                              "wells leaves no well for the batch.",
                              "use up to 26 rows, and fewer control wells than wells.")
    out = []
    items = list(batch.itertuples(index=False))
    n_plates = max(1, -(-len(items) // per_plate))
    for p in range(n_plates):
        chunk = items[p * per_plate:(p + 1) * per_plate]
        entries = [(str(r.candidate), int(r.rank), str(r.reason)) for r in chunk]
        entries += [(control_label, 0, "control well")] * controls
        for k, (cand, rank, reason) in enumerate(entries):
            r, c = divmod(k, columns)
            out.append({"plate": f"{plate_prefix}{p + 1}",
                        "well": f"{string.ascii_uppercase[r]}{c + 1:02d}",
                        "row": string.ascii_uppercase[r], "column": c + 1,
                        "candidate": cand, "rank": rank or np.nan, "reason": reason})
    return pd.DataFrame(out, columns=["plate", "well", "row", "column", "candidate", "rank",
                                      "reason"])


def escaped(df: pd.DataFrame) -> pd.DataFrame:
    """Text columns with HTML characters escaped (for cells rendered as HTML).

    Parameters
    ----------
    df : pandas.DataFrame
        The table.

    Returns
    -------
    pandas.DataFrame
        A copy whose object columns are escaped strings (None as an empty string).
    """
    df = df.copy()
    for col in df.columns:
        if df[col].dtype == object:
            df[col] = [html.escape(str(v)) if v is not None else "" for v in df[col]]
    return df


class PlanView(StudyView):
    """The proposed batch with reasons, the campaign curve, the stop advice, a plate map.

    Parameters
    ----------
    study : Study or None
        The open Study (it needs ``design_plan``).
    selection : Selection or None
        The session's shared selection; None makes a new one.
    **params
        Values of the view's parameters (``candidate``, ``controls``, ...).
    """

    candidate = param.Selector(default="", objects=[""],
                               doc="Choose a proposed candidate (selects it everywhere).")
    controls = param.Integer(default=0, bounds=(0, 48),
                             doc="Control wells at the end of each plate of the plate map.")

    needs = ("design_plan",)
    key = "plan"
    label = "Plan"

    def __init__(self, study=None, selection=None, **params):
        super().__init__(study, selection, **params)
        if not self.missing:
            self.param.candidate.objects = ["", *proposed_batch(self.study)["candidate"]]
            self._sync()
            self.selection.param.watch(lambda e: self._sync(), ["perturbation", "pair"])

    def _sync(self):
        for name in (self.selection.pair, self.selection.perturbation):
            if name and name in self.param.candidate.objects and name != self.candidate:
                self.candidate = name
                return

    @param.depends("candidate", watch=True)
    def _chosen(self):
        c = self.candidate
        if not c:
            return
        if "+" in c:
            if c != self.selection.pair:
                self.selection.choose_pair(c)
        elif c != self.selection.perturbation:
            self.selection.choose_gene(c)

    def table(self) -> pd.DataFrame:
        """The proposed batch (exported as CSV).

        Returns
        -------
        pandas.DataFrame
            See :func:`proposed_batch`.
        """
        return proposed_batch(self.study)

    def plate_csv(self) -> io.BytesIO:
        """The plate map of the proposed batch as CSV, with ``controls`` control wells per plate.

        Returns
        -------
        io.BytesIO
            The CSV, rewound.
        """
        pm = plate_map(proposed_batch(self.study), controls=self.controls,
                       control_label=self.study.control_label)
        buf = io.BytesIO(pm.to_csv(index=False).encode())
        buf.seek(0)
        return buf

    def curve(self):
        """The campaign curve (see :func:`campaign_curve`).

        Returns
        -------
        panel.pane.HoloViews or panel.pane.Markdown
            The plot, or a note while there is no point yet.
        """
        df = campaign_curve(self.study)
        what = df["what"].iloc[0] if len(df) else "campaign"
        if len(df) == 0:
            return pn.pane.Markdown("No campaign curve yet: it grows by one point each time "
                                    "the planner runs on new measurements.",
                                    css_classes=["wb-plan-curve"])
        plot = hv.Curve(df, "round", "value").opts(
            title="Campaign so far", ylabel=what, xlabel="design step", tools=["hover", "save"],
            width=300, height=220) * hv.Scatter(df, "round", "value").opts(size=6)
        return pn.pane.HoloViews(plot, linked_axes=False, css_classes=["wb-plan-curve"])

    def header(self) -> pn.pane.Markdown:
        """The planner, its policy, how many candidates are proposed, and the stop advice.

        Returns
        -------
        panel.pane.Markdown
            The header pane.
        """
        batch = proposed_batch(self.study)
        plan = read_plan(self.study)
        planner = str(plan["planner"].iloc[0]) if len(plan) else ""
        policy = str(plan["policy"].iloc[0]) if len(plan) else ""
        return pn.pane.Markdown(
            f"**{md_text(planner)} planner**, policy {md_text(policy)}: {len(batch)} proposed "
            f"of {len(plan)} candidates.\n\n{md_text(stop_advice(self.study))}",
            css_classes=["wb-plan-stop"])

    def body(self):
        """The header, the candidate and plate-map controls, then the batch table beside the
        campaign curve.

        Returns
        -------
        panel.Column
            The view's content.
        """
        batch = escaped(proposed_batch(self.study))
        batch["score"] = batch["score"].astype(float).round(4)
        cols = [c for c in ("candidate", "rank", "score", "reason") if c in batch]
        grid = pn.widgets.Tabulator(batch[cols], show_index=False, disabled=True, height=220,
                                    width=self.width,
                                    header_tooltips={k: TOOLTIPS[k] for k in cols
                                                     if k in TOOLTIPS},
                                    css_classes=["wb-plan-batch"])
        download = pn.widgets.FileDownload(callback=self.plate_csv, filename="plate_map.csv",
                                           label="Plate map (CSV)", embed=False, width=180,
                                           height=34, css_classes=["wb-plan-platemap"])
        controls = pn.Row(
            pn.widgets.Select.from_param(self.param.candidate, name="Proposed", width=160,
                                         css_classes=["wb-plan-select"]),
            pn.widgets.IntInput.from_param(self.param.controls, name="Control wells",
                                           width=120), download)
        return pn.Column(self.header(), controls, pn.Row(grid, self.curve()))
