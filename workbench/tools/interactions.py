"""The interaction step: test every double perturbation of a Study, then plan the next pairs.

For each double ``A+B`` in ``profiles`` (``obs["perturbation_type"] == "double"`` or
``obs["genes"] == "A+B"``; ``"A+A"`` refused, ``"B+A"`` beside ``"A+B"`` merged and
reported) the step gathers four samples from the batches the double was run in: controls,
A, B and A+B, each cell with its replicate unit (``obs["well"]`` within its plate by
default, any column with ``unit=``). Wells are the unit of inference: cell-level statistics
are computed inside wells and compared by their spread between wells
(:mod:`workbench.models.replicates`). Four readouts per pair, and one call from two of them:

- ``additivity``: does the double's mean shift equal the sum of the singles' shifts in the
  embedding (the GI null of Norman et al. 2019 carried to profiles)? A shrunken
  Mahalanobis norm of the interaction contrast of well means, with a replicate-level
  parametric bootstrap null (:mod:`workbench.models.additivity`; p-value, effect size and
  interval); it also tests pairs with few cells (a condition needs one cell);
- ``disjointness``: replicate-level additivity of per-coordinate features (p-value, Simes
  over features; a condition with one well gets a status instead);
- ``separability_score``: KL additivity from flexible, cross-fitted density ratios
  (:mod:`workbench.models.kl_additivity`), a *graded score* with a well-level bootstrap
  interval and no p-value;
- ``viability``: log2 cells per well of the double against its singles (synthetic
  lethality < 0, rescue > 0), tested for every pair, including those with too few cells
  for morphology (they get that status for the two morphology readouts);
- ``additivity_or_viability``: the combined call a biologist reads first, "does the
  double depart from its singles in its profile or in its cell count?": the Bonferroni
  minimum ``min(1, 2 min(p_additivity, p_viability))`` (:mod:`workbench.models.
  combined_call`; valid under any dependence between the two, which share their wells),
  with its BH q across pairs like every test. Written when both readouts run; its
  ``statistic`` is the smaller p and ``params["smaller"]`` names the readout it came from.

``unit=None`` runs the former cell-level tests (kernel disjointness with sign flips, the
Gaussian separability null), which treat cells as independent replicates: their level
fails under well effects and nonlinear maps
(``benchmarks/results_interaction_calibration.md``). q-values are Benjamini-Hochberg per
test. The step writes

- ``"interactions"`` (Parquet): one row per pair and test: ``pair, gene_a, gene_b, test,
  statistic, p, q, effect_size, ci_low, ci_high, n_ctrl, n_a, n_b, n_ab, units_ctrl,
  units_a, units_b, units_ab, unit, n_used, kernel, bandwidth_rule, seed, params`` (JSON),
  ``count_gi`` (log2 cells-per-well interaction) and ``status`` ("tested", "score (no
  p-value)" or why not);
- ``"pair_details"`` (JSON): per pair, exemplar crop ids of control, A, B and A+B (the crops
  nearest each condition's mean profile) and the embedding shifts of A, B, A+B and of the
  interaction ``mean(ab) + mean(ctrl) - mean(a) - mean(b)``, for the dashboard's pair view.

:func:`plan_pairs` (in :mod:`workbench.tools.pair_planning`) learns from the tested pairs
and writes ``"pair_selection"``: the measured pairs (history) and the proposed next batch,
each with its predicted value, interval and the reason it was chosen.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd

from workbench.errors import MissingArtefactError, ValidationError
from workbench.tools.screen_profiles import load_profiles

TESTS = ("additivity", "disjointness", "separability", "viability")
#: The combined call the step writes beside the tests when it runs both readouts it joins.
COMBINED = "additivity_or_viability"
COMBINED_OF = ("additivity", "viability")
#: Settings of :func:`demo_step` per demo size.
DEMO = {"tiny": dict(n_permutations=200, n_bootstrap=30),
        "quick": dict(n_permutations=500, n_bootstrap=50),
        "realistic": dict(n_permutations=1000, n_bootstrap=100)}


# ---------------------------------------------------------------------- inputs
def find_doubles(obs: pd.DataFrame, report: list | None = None) -> list[tuple[str, str, str]]:
    """(pair label, gene A, gene B) for every double in ``obs``.

    ``"A+A"`` is refused; a pair present in both orders is merged under one label (the
    cells of both are its double) and, when ``report`` is a list, a line says so.

    Parameters
    ----------
    obs : pandas.DataFrame
        Sample annotations with ``perturbation`` (and ``perturbation_type``, ``genes`` where
        the screen has them); a double is a row of type ``"double"`` or, without that
        column, a perturbation named ``"A+B"``.
    report : list of str, optional
        Receives one line per pair merged from both orders.

    Returns
    -------
    list of tuple of str
        ``(label, gene_a, gene_b)`` per distinct double.
    """
    from workbench.models.replicates import canonical_pairs

    pert = obs["perturbation"].astype(str)
    if "perturbation_type" in obs.columns:
        is_double = obs["perturbation_type"].astype(str).to_numpy() == "double"
    else:
        is_double = pert.str.contains("+", regex=False).to_numpy()
    labels = obs.loc[is_double, "genes"].astype(str) if "genes" in obs.columns else pert[is_double]
    pairs, merged = canonical_pairs(labels)
    if report is not None:
        report.extend(merged)
    return [(lab, a, b) for lab, (a, b, _) in pairs.items()]


def _units(obs: pd.DataFrame, unit: str | None) -> np.ndarray:
    """Replicate unit of every row: plate:well for "well", the named column otherwise."""
    if unit is None:
        return np.asarray([f"cell{i}" for i in range(len(obs))])
    if unit not in obs.columns:
        raise ValidationError(f"obs has no column {unit!r} to use as the replicate unit "
                              f"(it has {sorted(obs.columns)}).",
                              "pass --unit with a column naming the well (or other replicate) "
                              "of each sample, or --unit none to treat cells as replicates.")
    lab = obs[unit].astype(str)
    if unit == "well" and "plate" in obs.columns:
        lab = obs["plate"].astype(str) + ":" + lab
    return lab.to_numpy()


def gather_pair(X, obs, pair: str, a: str, b: str, min_samples: int,
                labels: tuple[str, ...] | None = None, cross_batch: str = "status") -> dict:
    """Row indices of ctrl/A/B/A+B for one pair, from the batches the double was run in.

    A single run only in batches the double was not run in cannot be compared within batch;
    ``cross_batch`` says what to do then.

    Parameters
    ----------
    X : array_like
        ``(n_samples, n_features)`` profiles (not read; kept for the callers' signature).
    obs : pandas.DataFrame
        Sample annotations with ``perturbation``, ``batch`` and ``is_control`` (and
        ``genes`` where the screen has it).
    pair : str
        The double's label, ``"A+B"``.
    a, b : str
        Its two genes.
    min_samples : int
        Fewest samples per condition the tests need (not checked here; the caller does).
    labels : tuple of str, optional
        Every label of the double (both orders when they were merged); default ``pair``
        and ``"B+A"``.
    cross_batch : str
        ``"status"`` marks the pair (``out["cross_batch"]`` names the single and its
        batches; the caller gives it a status, no p-value), ``"pool"`` takes that single's
        samples from the other batches (batch effects then enter the contrast),
        ``"error"`` raises.

    Returns
    -------
    dict
        ``"ab"``, ``"a"``, ``"b"``, ``"ctrl"``: row indices; ``"batches"``: the double's
        batches; ``"cross_batch"``: "" or the note on singles from other batches;
        ``"a_cross_batch"``, ``"b_cross_batch"``: whether that single came from elsewhere.

    Raises
    ------
    ValidationError
        A single that is absent from the screen, no same-batch controls, or singles only
        in other batches with ``cross_batch="error"``.
    """
    pert = obs["perturbation"].astype(str).to_numpy()
    genes = obs["genes"].astype(str).to_numpy() if "genes" in obs.columns else pert
    batch = obs["batch"].astype(str).to_numpy()
    ctrl = obs["is_control"].to_numpy(bool)
    labels = labels or (pair, f"{b}+{a}")
    rows_ab = np.flatnonzero(np.isin(genes, list(labels)) & ~ctrl)
    batches = set(batch[rows_ab])
    in_b = np.isin(batch, list(batches))
    out = {"ab": rows_ab, "batches": sorted(batches), "cross_batch": ""}
    cross = []
    for key, g in (("a", a), ("b", b)):
        single = ((pert == g) | (genes == g)) & ~ctrl
        if not single.any():
            raise ValidationError(
                f"pair {pair}: the double has no single-perturbation samples of {g!r}, so its "
                "interaction cannot be tested.",
                f"add the {g} single perturbation to the screen (same batches as {pair}), or "
                "drop this double.")
        same = np.flatnonzero(single & in_b)
        out[f"{key}_cross_batch"] = len(same) == 0
        if len(same):
            out[key] = same
            continue
        cross.append(f"{g} only in batch(es) {', '.join(sorted(set(batch[single])))}")
        out[key] = np.flatnonzero(single)
    if cross:
        out["cross_batch"] = (f"singles {'; '.join(cross)}, not in the double's batch(es) "
                              f"{', '.join(sorted(batches))}")
        if cross_batch == "error":
            raise ValidationError(
                f"pair {pair}: {out['cross_batch']}, so the double cannot be compared with "
                "its singles within a batch.",
                "run the singles in the double's batch, or pass cross_batch='status' (the "
                "pair is reported untested) or 'pool' (singles from other batches; batch "
                "effects then enter the test).")
    out["ctrl"] = np.flatnonzero(ctrl & in_b)
    if len(out["ctrl"]) == 0:
        raise ValidationError(
            f"pair {pair}: no control samples in its batch(es) {sorted(batches)}.",
            "add control wells to those batches; the tests compare against same-batch controls.")
    return out


def _count_gi(obs, idx: dict) -> float:
    """log2 cells-per-well interaction: ab + ctrl - a - b (0 when additive on log scale)."""
    well = (obs["plate"].astype(str) + ":" + obs["well"].astype(str)).to_numpy()

    def cpw(rows):
        return len(rows) / max(1, len(set(well[rows])))

    v = [cpw(idx[k]) for k in ("ab", "ctrl", "a", "b")]
    return float(np.log2(v[0]) + np.log2(v[1]) - np.log2(v[2]) - np.log2(v[3]))


# ---------------------------------------------------------------------- the tests
def _combined_rows(rows: list[dict], labs: list[str]) -> list[dict]:
    """One :data:`COMBINED` row per pair: the Bonferroni minimum of its additivity and
    viability p-values (:func:`workbench.models.combined_call.bonferroni_min`)."""
    from workbench.models.combined_call import bonferroni_min

    got = {(r["pair"], r["test"]): r for r in rows if r["test"] in COMBINED_OF}
    p = np.array([[got[(lab, t)]["p"] if (lab, t) in got else np.nan for t in COMBINED_OF]
                  for lab in labs], float).reshape(len(labs), len(COMBINED_OF))
    comb, which = bonferroni_min(p)
    params = {"statistic": "the smaller of the additivity and viability p-values",
              "calibration": "Bonferroni: min(1, 2 * min p), valid under any dependence "
                             "between the two readouts",
              "combines": list(COMBINED_OF), "kernel": "none", "bandwidth_rule": "n/a"}
    out = []
    for k, lab in enumerate(labs):
        missing = [t for j, t in enumerate(COMBINED_OF) if not np.isfinite(p[k, j])]
        if len(missing) == len(COMBINED_OF):
            why = "; ".join(f"{t}: {got[(lab, t)]['status']}" for t in COMBINED_OF
                            if (lab, t) in got)
            status = ("no p-value: neither additivity nor viability gave one"
                      + (f" ({why})" if why else ""))
        elif missing:
            status = (f"tested ({', '.join(missing)} gave no p-value; the factor 2 is kept)")
        else:
            status = "tested"
        lead = COMBINED_OF[which[k]] if which[k] >= 0 else ""
        out.append(_row(lab, COMBINED, float(np.nanmin(p[k])) if lead else np.nan, comb[k],
                        np.nan, np.nan, np.nan, {**params, "smaller": lead}, status))
    return out


def _row(lab, test, statistic, p, eff, lo, hi, params, status):
    return {"pair": lab, "test": test, "statistic": statistic, "p": p, "effect_size": eff,
            "ci_low": lo, "ci_high": hi, "kernel": params.get("kernel", ""),
            "bandwidth_rule": params.get("bandwidth_rule", ""), "params": json.dumps(params),
            "status": status}


def _cell_level(X, info, labs, tests, *, kernel, n_permutations, n_bootstrap, separability,
                reference, rng, seed, device):
    """The cell-level tests (``unit=None``): cells treated as independent replicates."""
    from workbench.models.interaction_tests import disjointness_test, separability_score

    out = []
    by_n: dict[int, list[str]] = {}
    for lab in labs:
        by_n.setdefault(info[lab]["n"], []).append(lab)
    for n, group in sorted(by_n.items()):
        stack = {k: [] for k in ("ctrl", "a", "b", "ab")}
        for lab in group:
            for k in stack:
                take = 2 * n if k == "ctrl" else n
                stack[k].append(X[rng.choice(info[lab][k], take, replace=False)])
        S = {k: np.stack(v) for k, v in stack.items()}
        note = " (cells as replicates)"
        if "disjointness" in tests:
            r = disjointness_test(S["ctrl"][:, :n], S["a"], S["b"], S["ab"], kernel=kernel,
                                  reference=reference, n_permutations=n_permutations,
                                  seed=seed, device=device)
            out += [_row(lab, "disjointness", r.statistic[k], r.p_value[k], r.effect_size[k],
                         np.nan, np.nan, r.params, "tested" + note)
                    for k, lab in enumerate(group)]
        if "separability" in tests:
            r = separability_score(S["ctrl"], S["a"], S["b"], S["ab"], estimator=separability,
                                   n_null=n_permutations, n_bootstrap=n_bootstrap,
                                   reference=reference, seed=seed, device=device)
            name = "separability" if separability == "gaussian" else "separability_score"
            status = ("tested (Gaussian-latent null: not valid under nonlinear maps or well "
                      "effects)" if separability == "gaussian" else "score (no p-value)")
            out += [_row(lab, name, r.statistic[k], r.p_value[k], r.effect_size[k],
                         r.ci_low[k], r.ci_high[k], r.params, status + note)
                    for k, lab in enumerate(group)]
    return out


def test_pairs(X, obs, *, tests=TESTS, unit: str | None = "well", kernel: str = "additive_rbf",
               n_permutations: int = 1000, n_bootstrap: int = 100, min_samples: int = 5,
               max_per_group: int = 200, on_small: str = "skip", seed: int = 0,
               device: str = "auto", pairs: list[tuple[str, str, str]] | None = None,
               separability: str = "classifier", report: list | None = None,
               cross_batch: str = "status", additivity_target: str = "diagonal"
               ) -> tuple[pd.DataFrame, dict]:
    """Run the tests on every double of ``obs``; return the long table and pair details.

    ``"additivity"`` is :func:`~workbench.models.additivity.additivity_test` with
    ``n_permutations`` bootstrap draws for its null, run on every pair with a cell in each
    condition (cells as units when ``unit`` is None), with the shrinkage target
    ``additivity_target`` of its cell covariances. With a unit,
    ``"disjointness"`` is the replicate-level test of
    :func:`~workbench.models.replicates.replicate_disjointness_test`, ``"separability"``
    the graded KL-additivity score with a well-level bootstrap interval (test name
    ``"separability_score"``, no p-value) and ``"viability"`` the cell-count test of each
    double against its singles. A pair whose conditions hold fewer than ``min_samples``
    cells gets a status for the morphology tests (its viability is still tested);
    ``on_small="error"`` raises instead. A condition with a single unit gets a status in
    place of a p-value and a warning. A double whose single(s) were run only in other
    batches gets the status "not tested: singles ... in another batch" for every test
    (``cross_batch="status"``, with a warning), is tested against the singles of the other
    batches with that note in its status (``"pool"``; batch effects enter the contrast), or
    stops the step (``"error"``). ``report`` (a list) collects those notes and the merges
    of pairs given in both orders. When both ``"additivity"`` and ``"viability"`` run, one
    more row per pair, test :data:`COMBINED`, holds their Bonferroni minimum
    ``min(1, 2 min p)`` (the factor 2 kept where one of them gave no p-value) with its BH q.

    Parameters
    ----------
    X : array_like
        ``(n_samples, n_features)`` profiles (embeddings or features), finite.
    obs : pandas.DataFrame
        One row per sample: ``perturbation``, ``batch``, ``is_control``, ``plate`` and
        ``well`` (for the well unit and cell counts), ``genes``/``perturbation_type`` where
        present.
    tests : sequence of str
        Tests to run, among :data:`TESTS`.
    unit : str or None
        The replicate unit: ``"well"`` (plate and well), any ``obs`` column, or None (every
        cell its own replicate: the cell-level kernel and Gaussian tests).
    kernel : str
        Kernel of the cell-level disjointness test (``unit=None`` only).
    n_permutations : int
        Permutations of the cell-level tests and bootstrap draws of the additivity null;
        p-values are at least ``1 / (n_permutations + 1)``.
    n_bootstrap : int
        Bootstrap draws of the separability score's interval (and the cell-level
        separability null).
    min_samples : int
        Fewest samples per condition for the morphology tests.
    max_per_group : int
        Most samples per condition used by the morphology tests (a seeded subsample).
    on_small : str
        ``"skip"`` gives pairs with fewer than ``min_samples`` a status; ``"error"`` raises.
    seed : int
        Seed of the subsamples, permutations and bootstraps.
    device : str
        Torch device (``"auto"``: a GPU when there is one).
    pairs : list of tuple of str, optional
        ``(label, gene_a, gene_b)`` to test; default every double of ``obs``
        (:func:`find_doubles`).
    separability : str
        Estimator of the separability score: ``"classifier"`` (graded, no p-value) or
        ``"gaussian"`` (cell level only).
    report : list of str, optional
        Receives the notes: merged pair orders, pairs with singles from other batches.
    cross_batch : str
        ``"status"``, ``"pool"`` or ``"error"``, see :func:`gather_pair`.
    additivity_target : str
        Shrinkage target of the additivity test's cell covariances: ``"diagonal"`` or
        ``"pooled"``.

    Returns
    -------
    table : pandas.DataFrame
        One row per pair and test (the ``interactions`` schema): ``pair``, ``test``,
        ``statistic``, ``p``, ``q`` (BH within each test), ``effect_size``, ``ci_low``,
        ``ci_high``, ``kernel``, ``bandwidth_rule``, ``params`` (JSON), ``status``.
    details : dict
        Per pair (the ``pair_details`` artefact): its genes, exemplar sample names per
        condition, the mean shifts against control (A, B, A+B and the interaction
        ``A+B - A - B``) with their norms, and its batches.

    Raises
    ------
    ValidationError
        No doubles, a bad option, non-finite profiles, or too few samples with
        ``on_small="error"``.
    """
    from workbench.models.interaction_tests import benjamini_hochberg
    from workbench.models.kl_additivity import kl_additivity_score
    from workbench.models.replicates import (
        check_finite, count_test, replicate_disjointness_test,
    )

    report = report if report is not None else []
    pairs = pairs if pairs is not None else find_doubles(obs, report)
    if not pairs:
        raise ValidationError("the profiles hold no double perturbations (perturbation_type "
                              "'double' / genes 'A+B').", "import a screen with doubles.")
    if cross_batch not in ("status", "pool", "error"):
        raise ValidationError(f"cross_batch={cross_batch!r} is not an option.",
                              "pass 'status', 'pool' or 'error'.")
    X = check_finite(X, "the profiles matrix")
    units = _units(obs, unit)
    info, small = {}, []
    for lab, a, b in pairs:
        idx = gather_pair(X, obs, lab, a, b, min_samples, cross_batch=cross_batch)
        idx["n"] = min(len(idx["ab"]), len(idx["a"]), len(idx["b"]), len(idx["ctrl"]) // 2,
                       max_per_group)
        info[lab] = idx
        if idx["n"] < min_samples and not (idx["cross_batch"] and cross_batch == "status"):
            small.append(f"{lab} (A+B {len(idx['ab'])}, {a} {len(idx['a'])}, {b} "
                         f"{len(idx['b'])}, controls {len(idx['ctrl'])})")
    if small and on_small == "error":
        raise ValidationError(
            f"too few samples for the interaction tests (need {min_samples} per condition and "
            f"{2 * min_samples} controls): {'; '.join(small)}.",
            "add replicates for these pairs, lower min_samples, or pass on_small='skip'.")
    rng = np.random.default_rng(seed)
    reference = X[obs["is_control"].to_numpy(bool)]
    skip = {lab for lab in info if info[lab]["cross_batch"] and cross_batch == "status"}
    ok = [lab for lab in info if info[lab]["n"] >= min_samples and lab not in skip]
    rows = []
    conds = ("ctrl", "a", "b", "ab")
    if unit is None:
        rows += _cell_level(X, info, ok, tests, kernel=kernel, n_permutations=n_permutations,
                            n_bootstrap=n_bootstrap, separability=separability,
                            reference=reference, rng=rng, seed=seed, device=device)
    todo = [lab for lab in info if lab not in skip]  # additivity: few cells are enough
    if "additivity" in tests and todo:
        from workbench.models.additivity import additivity_test

        r = additivity_test([{c: X[info[lab][c]] for c in conds} for lab in todo],
                            [{c: units[info[lab][c]] for c in conds} for lab in todo],
                            reference=reference, names=todo, n_bootstrap=n_permutations,
                            seed=seed, device=device, target=additivity_target)
        note = " (cells as replicates)" if unit is None else ""
        rows += [_row(lab, "additivity", r.statistic[k], r.p_value[k], r.effect_size[k],
                      r.ci_low[k], r.ci_high[k], {**r.params, "unit": unit or "cell"},
                      r.status[k] + (note if r.status[k] == "tested" else ""))
                 for k, lab in enumerate(todo)]
    if unit is not None and ok:
        groups = [{c: X[info[lab][c]] for c in conds} for lab in ok]
        ugroups = [{c: units[info[lab][c]] for c in conds} for lab in ok]
        if "disjointness" in tests:
            r = replicate_disjointness_test(groups, ugroups, reference=reference, names=ok)
            rows += [_row(lab, "disjointness", r.statistic[k], r.p_value[k], r.effect_size[k],
                          np.nan, np.nan, {**r.params, "unit": unit}, r.status[k])
                     for k, lab in enumerate(ok)]
        if "separability" in tests:
            r = kl_additivity_score(groups, ugroups, n_bootstrap=n_bootstrap,
                                    max_n=max_per_group, reference=reference, names=ok,
                                    seed=seed, device=device)
            rows += [_row(lab, "separability_score", r.statistic[k], np.nan, r.effect_size[k],
                          r.ci_low[k], r.ci_high[k], {**r.params, "unit": unit},
                          str(r.terms["status"][k])) for k, lab in enumerate(ok)]
    morph = [t for t in tests if t in ("disjointness", "separability")]
    for lab in info:
        if info[lab]["n"] < min_samples and lab not in skip:
            for t in morph:
                name = t if (t == "disjointness" or (unit is None and separability ==
                                                     "gaussian")) else "separability_score"
                rows.append(_row(lab, name, np.nan, np.nan, np.nan, np.nan, np.nan, {},
                                 f"too few cells for morphology (n={info[lab]['n']} < "
                                 f"{min_samples}); see the viability test"))
    if "viability" in tests:
        cunits = _units(obs, unit if unit is not None else "well")
        counted = [lab for lab in info if lab not in skip]
        counts = [{c: np.unique(cunits[info[lab][c]], return_counts=True)[1] for c in conds}
                  for lab in counted]
        r = count_test(counts) if counted else None
        rows += [_row(lab, "viability", r.statistic[k], r.p_value[k], r.effect_size[k],
                      r.ci_low[k], r.ci_high[k], {**r.params, "unit": unit or "well"},
                      r.status[k]) for k, lab in enumerate(counted)]
    if "additivity" in tests and "viability" in tests:
        rows += _combined_rows(rows, [lab for lab in info if lab not in skip])
    names = {"disjointness": "disjointness", "viability": "viability",
             "additivity": "additivity", COMBINED: COMBINED,
             "separability": ("separability" if unit is None and separability == "gaussian"
                              else "separability_score")}
    combined = ((COMBINED,) if "additivity" in tests and "viability" in tests else ())
    for lab in sorted(skip):
        rows += [_row(lab, names[t], np.nan, np.nan, np.nan, np.nan, np.nan, {},
                      f"not tested: {info[lab]['cross_batch']}")
                 for t in (*tests, *combined) if t in names]
    crossed = sorted(lab for lab in info if info[lab]["cross_batch"])
    if crossed:
        what = ("not tested (status)" if cross_batch == "status" else
                "tested against singles from other batches (batch effects not controlled)")
        msg = (f"{len(crossed)} double(s) have singles only in another batch, {what}: "
               + "; ".join(f"{lab}: {info[lab]['cross_batch']}" for lab in crossed[:5])
               + ("; ..." if len(crossed) > 5 else ""))
        warnings.warn(msg, stacklevel=2)
        report.append(msg)
        if cross_batch == "pool":
            for row in rows:
                if info[row["pair"]]["cross_batch"]:
                    row["status"] += f"; cross-batch: {info[row['pair']]['cross_batch']}"
    one_unit = sorted({row["pair"] for row in rows if "one replicate unit" in row["status"]})
    if one_unit:
        msg = (f"{len(one_unit)} pair(s) have a condition with a single replicate unit "
               f"({', '.join(one_unit[:5])}{', ...' if len(one_unit) > 5 else ''}): their "
               "well-to-well spread cannot be estimated, so they get a status, not a p-value.")
        warnings.warn(msg, stacklevel=2)
        report.append(msg)
    table = pd.DataFrame(rows)
    table["q"] = np.nan
    for _, g in table.groupby("test"):
        table.loc[g.index, "q"] = benjamini_hochberg(g.p.to_numpy(float))
    pair_gene = {lab: (a, b) for lab, a, b in pairs}
    table.insert(1, "gene_a", table.pair.map(lambda p: pair_gene[p][0]))
    table.insert(2, "gene_b", table.pair.map(lambda p: pair_gene[p][1]))
    for k, col in (("ctrl", "n_ctrl"), ("a", "n_a"), ("b", "n_b"), ("ab", "n_ab")):
        table[col] = table.pair.map(lambda p, k=k: len(info[p][k]))
    for k, col in (("ctrl", "units_ctrl"), ("a", "units_a"), ("b", "units_b"),
                   ("ab", "units_ab")):
        table[col] = table.pair.map(lambda p, k=k: len(set(units[info[p][k]])))
    table["unit"] = unit or "cell"
    table["n_used"] = table.pair.map(lambda p: info[p]["n"])
    table["count_gi"] = table.pair.map(lambda p: _count_gi(obs, info[p]))
    table["batches"] = table.pair.map(lambda p: ",".join(info[p]["batches"]))
    table["singles_cross_batch"] = table.pair.map(
        lambda p: bool(info[p]["a_cross_batch"] or info[p]["b_cross_batch"]))
    table["seed"] = seed
    return table, _details(X, obs, info, pair_gene)


def _details(X, obs, info, pair_gene, n_exemplars: int = 4) -> dict:
    names = np.asarray(obs.index).astype(str)
    out = {}
    for lab, idx in info.items():
        means = {k: X[idx[k]].mean(0) for k in ("ctrl", "a", "b", "ab") if len(idx[k])}
        ex = {}
        for k, key in (("ctrl", "control"), ("a", "A"), ("b", "B"), ("ab", "A+B")):
            if k not in means:
                ex[key] = []
                continue
            d = ((X[idx[k]] - means[k]) ** 2).sum(1)
            ex[key] = names[idx[k][np.argsort(d)[:n_exemplars]]].tolist()
        zero = np.zeros(X.shape[1])
        shift = {"A": means["a"] - means["ctrl"], "B": means["b"] - means["ctrl"],
                 "A+B": means.get("ab", means["ctrl"] + zero) - means["ctrl"]}
        shift["interaction"] = shift["A+B"] - shift["A"] - shift["B"]
        a, b = pair_gene[lab]
        out[lab] = {"gene_a": a, "gene_b": b, "exemplars": ex,
                    "shifts": {k: v.astype(float).round(5).tolist() for k, v in shift.items()},
                    "shift_norms": {k: float(np.linalg.norm(v)) for k, v in shift.items()},
                    "batches": idx["batches"]}
    return out


def run_interactions(study, *, use: str | None = None, tests=TESTS, unit: str | None = "well",
                     kernel: str = "additive_rbf", n_permutations: int = 1000,
                     n_bootstrap: int = 100, min_samples: int = 5, on_small: str = "skip",
                     seed: int = 0, device: str = "auto",
                     separability: str = "classifier", cross_batch: str = "status",
                     additivity_target: str = "diagonal") -> pd.DataFrame:
    """Test every double of the Study and write ``"interactions"`` and ``"pair_details"``.

    Runs :func:`test_pairs` on the Study's profiles inside one ``interactions`` step; the
    parameters below that are not described are those of :func:`test_pairs`.

    Parameters
    ----------
    study : Study
        A Study with ``profiles`` holding doubles, their singles and controls.
    use : str, optional
        What to test: None (``profiles.X``), an ``obsm`` key of ``profiles``, or
        ``"latent"`` (the demo's planted latent state: a truth check, recorded as such in
        provenance).
    tests : sequence of str
        Tests to run, among :data:`TESTS`.
    unit : str or None
        The replicate unit (``"well"``, an ``obs`` column, or None for cells).
    kernel : str
        Kernel of the cell-level disjointness test.
    n_permutations : int
        Permutations of the cell-level tests and bootstrap draws of the additivity null.
    n_bootstrap : int
        Bootstrap draws of the separability score's interval.
    min_samples : int
        Fewest samples per condition for the morphology tests.
    on_small : str
        ``"skip"`` (a status for small pairs) or ``"error"``.
    seed : int
        Seed of the subsamples, permutations and bootstraps.
    device : str
        Torch device (``"auto"``: a GPU when there is one).
    separability : str
        Estimator of the separability score (``"classifier"`` or ``"gaussian"``).
    cross_batch : str
        ``"status"``, ``"pool"`` or ``"error"``, see :func:`gather_pair`.
    additivity_target : str
        Shrinkage target of the additivity test (``"diagonal"`` or ``"pooled"``).

    Returns
    -------
    pandas.DataFrame
        The table written as ``interactions``.
    """
    X, obs, src = load_profiles(study, use)
    report: list[str] = []
    table, details = test_pairs(X, obs, tests=tests, unit=unit, kernel=kernel,
                                n_permutations=n_permutations, n_bootstrap=n_bootstrap,
                                min_samples=min_samples, on_small=on_small, seed=seed,
                                device=device, separability=separability, report=report,
                                cross_batch=cross_batch, additivity_target=additivity_target)
    params = {"source": src, "tests": list(tests), "unit": unit or "cell", "kernel": kernel,
              "separability_estimator": separability,
              "n_permutations": n_permutations, "n_bootstrap": n_bootstrap,
              "min_samples": min_samples, "on_small": on_small, "device": device,
              "cross_batch": cross_batch, "additivity_target": additivity_target,
              "truth_check": use == "latent"}
    inputs = ["profiles"] if src.startswith("profiles") else ["images"]
    with study.step("interactions", params=params, seed=seed, inputs=inputs) as tx:
        tx.write_table("interactions", table, description="one row per pair and test")
        tx.write_json("pair_details", {"source": src, "pairs": details})
        tested = table[table.q.notna()]
        tx.note(n_pairs=int(table.pair.nunique()), notes=report,
                n_significant_q05={t: int((g.q < 0.05).sum()) for t, g in tested.groupby("test")})
    return table


# ---------------------------------------------------------------------- against truth
#: Planted pair types of the demo world that interact, and those that add up.
INTERACTING = ("buffering", "synergy", "synthetic_lethal")
ADDITIVE = ("additive_disjoint", "additive_shared")


def _auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of an interacting pair > score of an additive pair), ties counted half."""
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    d = pos[:, None] - neg[None, :]
    return float((d > 0).mean() + 0.5 * (d == 0).mean())


def readout_scores(table: pd.DataFrame, details: dict | None = None) -> pd.DataFrame:
    """Per pair, the ranking score of each readout (larger: more interacting).

    ``additivity``, ``disjointness`` and ``viability``: ``-log10 p`` (rounded to 6
    decimals, so that p values equal up to float noise tie); ``disjointness statistic``: its
    mean ``t^2``, ``additivity statistic``: its Mahalanobis norm ``Q`` (they separate pairs
    whose p-values all sit at the same floor); ``separability_score``:
    ``|S|`` (a graded score, ranked without a p-value); ``any readout``: ``-log10`` of the
    smaller of the disjointness and viability p, Bonferroni-corrected over the readouts the
    pair has (a pair with too few cells for morphology is ranked by viability alone);
    ``additivity_or_viability``: ``-log10`` of the step's combined call (computed the same
    way, factor 2 always, for a table written before the step had it). With the
    ``pair_details`` the naive baseline ``|mean(ab) + mean(ctrl) - mean(a) - mean(b)|``
    (the norm of the interaction shift, no test) is added. NaN where a readout gave none.

    Parameters
    ----------
    table : pandas.DataFrame
        The ``interactions`` table.
    details : dict, optional
        The ``pair_details`` pairs (``{label: details}``), for the naive baseline.

    Returns
    -------
    pandas.DataFrame
        One row per pair (index: label), one column per readout.
    """
    out = {}
    for test, g in table.groupby("test"):
        g = g.set_index("pair")
        if test == "separability_score":
            out[test] = g["statistic"].astype(float).abs()
        elif test in ("additivity", "disjointness", "viability", "separability", COMBINED):
            out[test] = (-np.log10(np.clip(g["p"].astype(float), 1e-300, 1))).round(6)
        if test in ("additivity", "disjointness"):
            out[f"{test} statistic"] = g["statistic"].astype(float)
    df = pd.DataFrame(out)
    ps = [c for c in ("disjointness", "viability") if c in df]
    if ps:
        p = np.power(10.0, -df[ps])
        k = p.notna().sum(1)
        best = (p.min(1) * k).clip(upper=1)
        df["any readout"] = -np.log10(best.where(k > 0))
    if COMBINED not in df and all(t in df for t in COMBINED_OF):  # a table from before
        from workbench.models.combined_call import bonferroni_min  # the step wrote it

        comb, _ = bonferroni_min(np.power(10.0, -df[list(COMBINED_OF)]).to_numpy())
        df[COMBINED] = -np.log10(np.clip(comb, 1e-300, 1))
    if details is not None:
        df["interaction shift norm (baseline)"] = pd.Series(
            {lab: d["shift_norms"]["interaction"] for lab, d in details.items()})
    return df


def rank_against_truth(table: pd.DataFrame, truth: dict, details: dict | None = None, *,
                       n_boot: int = 2000, seed: int = 0, by_kind: bool = False
                       ) -> pd.DataFrame:
    """AUROC of the planted interacting pairs against the additive ones, per readout.

    ``truth`` is the demo's ground truth (its ``all_pairs`` list gives each pair's
    ``type``): interacting are :data:`INTERACTING`, additive :data:`ADDITIVE`; GRN-mediated
    ("network") pairs are left out of both. Pairs without a score for a readout are left
    out of that readout and counted. The interval is the 2.5-97.5 percentile of a
    bootstrap over pairs, resampling the interacting and the additive pairs separately.
    ``by_kind`` adds one row per readout and interacting kind (that kind against all
    additive pairs; column ``kind``, "all planted" for the pooled row).

    Parameters
    ----------
    table : pandas.DataFrame
        The ``interactions`` table.
    truth : dict
        The demo's ``ground_truth`` (its ``all_pairs`` list).
    details : dict, optional
        The ``pair_details`` pairs, to add the naive baseline's row.
    n_boot : int
        Bootstrap draws of the interval.
    seed : int
        Seed of the bootstrap.
    by_kind : bool
        Add a row per interacting kind.

    Returns
    -------
    pandas.DataFrame
        ``readout``, ``kind``, ``auroc``, ``ci_low``, ``ci_high``, ``n_interacting``,
        ``n_additive``, ``n_unscored``.
    """
    return auroc_table(readout_scores(table, details), pair_types(table, truth),
                       n_boot=n_boot, seed=seed, by_kind=by_kind)


def pair_types(table: pd.DataFrame, truth: dict) -> pd.Series:
    """Planted type of every pair of ``table`` (either order), "" where the truth has none.

    A pair is matched whatever the order of its two genes (``"A+B"`` finds the truth's
    ``"B+A"``).

    Parameters
    ----------
    table : pandas.DataFrame
        A table with a ``pair`` column of ``"gene+gene"`` labels (the ``interactions``
        table).
    truth : dict
        The demo's ``ground_truth``: its ``all_pairs`` list of ``{"pair", "type"}``
        records.

    Returns
    -------
    pandas.Series
        The planted ``type`` (``"synergy"``, ``"additive_shared"``, ...) per pair label of
        ``table``, ``""`` for a pair the truth does not list.
    """
    canon = {frozenset(p["pair"].split("+")): p["type"] for p in truth["all_pairs"]}
    return pd.Series({lab: canon.get(frozenset(lab.split("+")), "")
                      for lab in table["pair"].unique()})


def auroc_table(scores: pd.DataFrame, types: pd.Series, *, n_boot: int = 2000, seed: int = 0,
                by_kind: bool = False) -> pd.DataFrame:
    """The rows of :func:`rank_against_truth` from readout scores and pair types.

    The AUROC is the probability that an interacting pair (:data:`INTERACTING`) scores
    above an additive one (:data:`ADDITIVE`), ties counted half; pairs of any other type
    (GRN-mediated, untyped) are in neither group. Its interval is the 2.5-97.5 percentile
    of a bootstrap that resamples the two groups separately; it is NaN where a group is
    empty.

    Parameters
    ----------
    scores : pandas.DataFrame
        One row per pair label, one column per readout, larger meaning more interacting
        (:func:`readout_scores`); NaN where a readout gave no score.
    types : pandas.Series
        The planted type per pair label (:func:`pair_types`); labels it lacks count as
        untyped.
    n_boot : int
        Bootstrap draws of the interval.
    seed : int
        Seed of the bootstrap.
    by_kind : bool
        Add, per readout, one row for each interacting kind against all additive pairs.

    Returns
    -------
    pandas.DataFrame
        One row per readout (and kind): ``readout``, ``kind`` (``"all planted"`` for the
        pooled row), ``auroc``, ``ci_low``, ``ci_high``, ``n_interacting``, ``n_additive``
        (the pairs scored) and ``n_unscored`` (typed pairs the readout left NaN).
    """
    types = types.reindex(scores.index).fillna("")
    rng = np.random.default_rng(seed)
    rows = []
    targets = [("all planted", INTERACTING)]
    if by_kind:
        targets += [(k, (k,)) for k in INTERACTING]
    for col in scores.columns:
        v = scores[col]
        for name, kinds in targets:
            pos = v[types.isin(kinds) & v.notna()].to_numpy(float)
            neg = v[types.isin(ADDITIVE) & v.notna()].to_numpy(float)
            auc = _auroc(pos, neg)
            boot = [_auroc(rng.choice(pos, len(pos)), rng.choice(neg, len(neg)))
                    for _ in range(n_boot)] if len(pos) and len(neg) else [np.nan]
            lo, hi = (np.nanpercentile(boot, [2.5, 97.5]) if np.isfinite(auc)
                      else (np.nan, np.nan))
            rows.append({"readout": col, "kind": name, "auroc": auc, "ci_low": float(lo),
                         "ci_high": float(hi), "n_interacting": len(pos),
                         "n_additive": len(neg),
                         "n_unscored": int((types.isin(kinds + ADDITIVE) & v.isna()).sum())})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------- planning
def plan_pairs(study, **kw) -> pd.DataFrame:
    """Propose the next doubles; see :func:`workbench.tools.pair_planning.plan_pairs`.

    Parameters
    ----------
    study : Study
        A Study with ``interactions`` (or a GI map).
    **kw
        Options of :func:`workbench.tools.pair_planning.plan_pairs` (``budget``,
        ``planner``, ``seed``, ...).

    Returns
    -------
    pandas.DataFrame
        The proposed pairs, as written to ``pair_selection``.
    """
    from workbench.tools.pair_planning import plan_pairs as _plan

    return _plan(study, **kw)


def demo_step(study, size: str = "quick", seed: int = 0) -> None:
    """Interaction tests and pair planning on the demo Study (quick: well under 30 s CPU).

    Tests the embedded ``profiles`` (the demo runs ``embed`` first). Pairs with too few
    surviving cells (synthetic lethality) keep a status for morphology and are tested for
    viability.

    Parameters
    ----------
    study : Study
        A demo Study after ``embed``.
    size : str
        The demo size, which sets the permutation and bootstrap counts (:data:`DEMO`).
    seed : int
        Seed of the tests and of the planner.

    Returns
    -------
    None
        Writes ``interactions``, ``pair_details`` and ``pair_selection``.
    """
    cfg = DEMO.get(size, DEMO["quick"])
    run_interactions(study, seed=seed, **cfg)
    plan_pairs(study, budget=5 if size in ("tiny", "quick") else 10, seed=seed)


__all__ = ["run_interactions", "plan_pairs", "test_pairs", "find_doubles", "gather_pair",
           "load_profiles", "demo_step", "readout_scores", "rank_against_truth", "MissingArtefactError"]
