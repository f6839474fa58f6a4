"""The interaction step: test every double perturbation of a Study, then plan the next pairs.

For each double ``A+B`` in ``profiles`` (``obs["perturbation_type"] == "double"`` or
``obs["genes"] == "A+B"``) the step gathers four samples from the batches the double was
run in: controls, A, B and A+B. It runs the disjointness test and the separability score of
:mod:`workbench.models.interaction_tests` on all pairs at once (pairs with the same usable
sample size are batched together), adjusts p-values across pairs with Benjamini-Hochberg
per test, and writes

- ``"interactions"`` (Parquet): one row per pair and test: ``pair, gene_a, gene_b, test,
  statistic, p, q, effect_size, ci_low, ci_high, n_ctrl, n_a, n_b, n_ab, n_used, kernel,
  bandwidth_rule, seed, params`` (JSON), plus ``count_gi`` (log2 cells-per-well interaction:
  synthetic lethality shows here) and ``status`` ("tested" or why not);
- ``"pair_details"`` (JSON): per pair, exemplar crop ids of control, A, B and A+B (the crops
  nearest each condition's mean profile) and the embedding shifts of A, B, A+B and of the
  interaction ``mean(ab) + mean(ctrl) - mean(a) - mean(b)``, for the dashboard's pair view.

:func:`plan_pairs` fits the Bayesian low-rank model to the tested pairs' statistic (with
the singles' mean profiles as side information) and writes ``"pair_selection"``: the
measured pairs (history) and the proposed next batch.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from workbench.errors import MissingArtefactError, ValidationError

TESTS = ("disjointness", "separability")
#: Settings of :func:`demo_step` per demo size.
DEMO = {"tiny": dict(n_permutations=200, n_bootstrap=30),
        "quick": dict(n_permutations=500, n_bootstrap=50),
        "realistic": dict(n_permutations=1000, n_bootstrap=100)}


# ---------------------------------------------------------------------- inputs
def load_profiles(study, use: str | None = None) -> tuple[np.ndarray, pd.DataFrame, str]:
    """Matrix and obs of the samples: ``profiles.X`` (or ``obsm[use]``); falls back to the
    simulator's ``latent_*`` columns of ``images.obs`` when ``use="latent"``."""
    if use == "latent" or (use is None and not study.has("profiles") and study.has("images")):
        if not study.has("images"):
            study.require("profiles", why="the interaction step tests profiles")
        obs = study.read("images").obs.copy()
        cols = [c for c in obs.columns if c.startswith("latent_")]
        if not cols:
            study.require("profiles", why="the interaction step tests profiles")
        return obs[cols].to_numpy(np.float32), obs, "images.obs[latent_*]"
    study.require("profiles", why="the interaction step tests profiles")
    adata = study.read("profiles")
    if use in (None, "X"):
        X, src = adata.X, "profiles.X"
    elif use in adata.obsm:
        X, src = adata.obsm[use], f"profiles.obsm[{use!r}]"
    else:
        raise ValidationError(f"profiles has no obsm[{use!r}] (it has {sorted(adata.obsm)}).",
                              "pass use='X' or one of the listed keys.")
    X = np.asarray(X.toarray() if hasattr(X, "toarray") else X, np.float32)
    return X, adata.obs.copy(), src


def find_doubles(obs: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(pair label, gene A, gene B) for every double in ``obs``."""
    pert = obs["perturbation"].astype(str)
    if "perturbation_type" in obs.columns:
        is_double = obs["perturbation_type"].astype(str).to_numpy() == "double"
    else:
        is_double = pert.str.contains("+", regex=False).to_numpy()
    labels = obs.loc[is_double, "genes"].astype(str) if "genes" in obs.columns else pert[is_double]
    out = []
    for lab in sorted(set(labels)):
        parts = [p.strip() for p in lab.split("+") if p.strip()]
        if len(parts) != 2:
            raise ValidationError(f"double perturbation {lab!r} does not name two genes as 'A+B'.",
                                  "write obs['genes'] as 'A+B' for every double.")
        out.append((lab, parts[0], parts[1]))
    return out


def gather_pair(X, obs, pair: str, a: str, b: str, min_samples: int) -> dict:
    """Row indices of ctrl/A/B/A+B for one pair, from the batches the double was run in."""
    pert = obs["perturbation"].astype(str).to_numpy()
    genes = obs["genes"].astype(str).to_numpy() if "genes" in obs.columns else pert
    batch = obs["batch"].astype(str).to_numpy()
    ctrl = obs["is_control"].to_numpy(bool)
    rows_ab = np.flatnonzero((genes == pair) & ~ctrl)
    batches = set(batch[rows_ab])
    in_b = np.isin(batch, list(batches))
    out = {"ab": rows_ab, "batches": sorted(batches)}
    for key, g in (("a", a), ("b", b)):
        single = ((pert == g) | (genes == g)) & ~ctrl
        if not single.any():
            raise ValidationError(
                f"pair {pair}: the double has no single-perturbation samples of {g!r}, so its "
                "interaction cannot be tested.",
                f"add the {g} single perturbation to the screen (same batches as {pair}), or "
                "drop this double.")
        same = np.flatnonzero(single & in_b)
        out[key] = same if len(same) >= min_samples else np.flatnonzero(single)
        out[f"{key}_cross_batch"] = len(same) < min_samples
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
def test_pairs(X, obs, *, tests=TESTS, kernel: str = "additive_rbf", n_permutations: int = 1000,
               n_bootstrap: int = 100, min_samples: int = 5, max_per_group: int = 200,
               on_small: str = "error", seed: int = 0, device: str = "auto",
               pairs: list[tuple[str, str, str]] | None = None,
               separability: str = "gaussian") -> tuple[pd.DataFrame, dict]:
    """Run the tests on every double of ``obs``; return the long table and pair details.

    ``on_small``: "error" raises naming the pairs with fewer than ``min_samples`` in some
    condition (controls need 2n for separability); "skip" keeps them as rows with
    ``status`` saying why. ``n_permutations`` is also the number of parametric null data
    sets of the separability test. ``separability``: its estimator, "gaussian" (p-values
    from a parametric null) or "classifier" (a graded score: ``p`` and ``q`` stay NaN and
    ``status`` says "scored (no p-value)").
    """
    from workbench.models.interaction_tests import (
        benjamini_hochberg, disjointness_test, separability_score,
    )

    pairs = pairs if pairs is not None else find_doubles(obs)
    if not pairs:
        raise ValidationError("the profiles hold no double perturbations (perturbation_type "
                              "'double' / genes 'A+B').", "import a screen with doubles.")
    X = np.asarray(X, np.float32)
    info, small = {}, []
    for lab, a, b in pairs:
        idx = gather_pair(X, obs, lab, a, b, min_samples)
        n = min(len(idx["ab"]), len(idx["a"]), len(idx["b"]), len(idx["ctrl"]) // 2, max_per_group)
        idx["n"] = n
        info[lab] = idx
        if n < min_samples:
            small.append(f"{lab} (A+B {len(idx['ab'])}, {a} {len(idx['a'])}, {b} "
                         f"{len(idx['b'])}, controls {len(idx['ctrl'])})")
    if small and on_small == "error":
        raise ValidationError(
            f"too few samples for the interaction tests (need {min_samples} per condition and "
            f"{2 * min_samples} controls): {'; '.join(small)}.",
            "add replicates for these pairs, lower min_samples, or pass on_small='skip'.")
    rng = np.random.default_rng(seed)
    reference = X[obs["is_control"].to_numpy(bool)]
    rows, results = [], {}
    by_n: dict[int, list[str]] = {}
    for lab, idx in info.items():
        if idx["n"] >= min_samples:
            by_n.setdefault(idx["n"], []).append(lab)
    for n, labs in sorted(by_n.items()):
        stack = {k: [] for k in ("ctrl", "a", "b", "ab")}
        for lab in labs:
            idx = info[lab]
            for k in stack:
                take = 2 * n if k == "ctrl" else n
                stack[k].append(X[rng.choice(idx[k], take, replace=False)])
        S = {k: np.stack(v) for k, v in stack.items()}
        if "disjointness" in tests:
            r = disjointness_test(S["ctrl"][:, :n], S["a"], S["b"], S["ab"], kernel=kernel,
                                  reference=reference, n_permutations=n_permutations,
                                  seed=seed, device=device)
            results.setdefault("disjointness", []).append((labs, r))
        if "separability" in tests:
            r = separability_score(S["ctrl"], S["a"], S["b"], S["ab"], estimator=separability,
                                   n_null=n_permutations, n_bootstrap=n_bootstrap,
                                   reference=reference, seed=seed, device=device)
            results.setdefault("separability", []).append((labs, r))
    pair_gene = {lab: (a, b) for lab, a, b in pairs}
    for test in tests:
        block = []
        for labs, r in results.get(test, []):
            for k, lab in enumerate(labs):
                block.append({"pair": lab, "test": test, "statistic": r.statistic[k],
                              "p": r.p_value[k], "effect_size": r.effect_size[k],
                              "ci_low": r.ci_low[k], "ci_high": r.ci_high[k],
                              "kernel": r.params["kernel"],
                              "bandwidth_rule": r.params["bandwidth_rule"],
                              "params": json.dumps(r.params),
                              "status": "tested" if np.isfinite(r.p_value[k])
                              else "scored (no p-value)"})
        for lab, idx in info.items():
            if idx["n"] < min_samples:
                block.append({"pair": lab, "test": test, "statistic": np.nan, "p": np.nan,
                              "effect_size": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                              "kernel": "", "bandwidth_rule": "", "params": "{}",
                              "status": f"too few samples (n={idx['n']} < {min_samples})"})
        if block:
            df = pd.DataFrame(block)
            df["q"] = benjamini_hochberg(df.p.to_numpy(float))
            rows.append(df)
    table = pd.concat(rows, ignore_index=True)
    table.insert(1, "gene_a", table.pair.map(lambda p: pair_gene[p][0]))
    table.insert(2, "gene_b", table.pair.map(lambda p: pair_gene[p][1]))
    for k, col in (("ctrl", "n_ctrl"), ("a", "n_a"), ("b", "n_b"), ("ab", "n_ab")):
        table[col] = table.pair.map(lambda p, k=k: len(info[p][k]))
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
        means = {k: X[idx[k]].mean(0) for k in ("ctrl", "a", "b", "ab")}
        ex = {}
        for k, key in (("ctrl", "control"), ("a", "A"), ("b", "B"), ("ab", "A+B")):
            d = ((X[idx[k]] - means[k]) ** 2).sum(1)
            ex[key] = names[idx[k][np.argsort(d)[:n_exemplars]]].tolist()
        shift = {"A": means["a"] - means["ctrl"], "B": means["b"] - means["ctrl"],
                 "A+B": means["ab"] - means["ctrl"]}
        shift["interaction"] = shift["A+B"] - shift["A"] - shift["B"]
        a, b = pair_gene[lab]
        out[lab] = {"gene_a": a, "gene_b": b, "exemplars": ex,
                    "shifts": {k: v.astype(float).round(5).tolist() for k, v in shift.items()},
                    "shift_norms": {k: float(np.linalg.norm(v)) for k, v in shift.items()},
                    "batches": idx["batches"]}
    return out


def run_interactions(study, *, use: str | None = None, tests=TESTS, kernel: str = "additive_rbf",
                     n_permutations: int = 1000, n_bootstrap: int = 100, min_samples: int = 5,
                     on_small: str = "error", seed: int = 0, device: str = "auto",
                     separability: str = "gaussian") -> pd.DataFrame:
    """Test every double of the Study and write ``"interactions"`` and ``"pair_details"``."""
    X, obs, src = load_profiles(study, use)
    table, details = test_pairs(X, obs, tests=tests, kernel=kernel, n_permutations=n_permutations,
                                n_bootstrap=n_bootstrap, min_samples=min_samples,
                                on_small=on_small, seed=seed, device=device,
                                separability=separability)
    params = {"source": src, "tests": list(tests), "kernel": kernel,
              "separability_estimator": separability,
              "n_permutations": n_permutations, "n_bootstrap": n_bootstrap,
              "min_samples": min_samples, "on_small": on_small, "device": device}
    inputs = ["profiles"] if src.startswith("profiles") else ["images"]
    with study.step("interactions", params=params, seed=seed, inputs=inputs) as tx:
        tx.write_table("interactions", table, description="one row per pair and test")
        tx.write_json("pair_details", {"source": src, "pairs": details})
        tested = table[table.q.notna()]
        tx.note(n_pairs=int(table.pair.nunique()),
                n_significant_q05={t: int((g.q < 0.05).sum()) for t, g in tested.groupby("test")})
    return table


# ---------------------------------------------------------------------- planning
def plan_pairs(study, *, budget: int = 10, acquisition: str = "ids",
               test: str = "disjointness", value: str = "effect_size", genes=None,
               use: str | None = None, seed: int = 0, device: str = "auto") -> pd.DataFrame:
    """Propose the next ``budget`` doubles from the tested ones; write ``"pair_selection"``.

    The pair value is the chosen test's ``value`` column (larger = more interacting);
    candidates are all untested pairs of ``genes`` (default: every single perturbation of
    the screen). Side information: each gene's mean shift from controls.
    """
    from workbench.tools.campaign import propose_batch

    study.require("interactions", why="planning learns from the tested pairs")
    tab = study.read("interactions")
    tab = tab[(tab.test == test) & tab.status.isin(("tested", "scored (no p-value)"))]
    if tab.empty:
        raise ValidationError(f"interactions holds no tested pairs for test {test!r}.",
                              "run `workbench interactions STUDY` with that test first.")
    X, obs, _ = load_profiles(study, use)
    ctrl = obs["is_control"].to_numpy(bool)
    pert = obs["perturbation"].astype(str).to_numpy()
    is_single = ~ctrl & ~pd.Series(pert).str.contains("+", regex=False).to_numpy()
    genes = sorted(set(pert[is_single])) if genes is None else list(genes)
    pos = {g: i for i, g in enumerate(genes)}
    side = np.stack([X[is_single & (pert == g)].mean(0) - X[ctrl].mean(0) for g in genes])
    tab = tab[tab.gene_a.isin(pos) & tab.gene_b.isin(pos)]
    oi, oj = tab.gene_a.map(pos).to_numpy(), tab.gene_b.map(pos).to_numpy()
    y = tab[value].to_numpy(float)
    done = {frozenset(p) for p in zip(oi, oj)}
    cand = [(i, j) for i in range(len(genes)) for j in range(i + 1, len(genes))
            if frozenset((i, j)) not in done]
    if not cand:
        raise ValidationError("every pair of the genes has been tested already.",
                              "give more genes (genes=...) to plan over.")
    ci, cj = np.array(cand).T
    pick, post = propose_batch(len(genes), ci, cj, oi, oj, y, side=side, acquisition=acquisition,
                               batch_size=budget, seed=seed, device=device)
    hist = pd.DataFrame({"round": 0, "gene_a": tab.gene_a.to_numpy(), "gene_b": tab.gene_b.to_numpy(),
                         "pair": tab.pair.to_numpy(), "status": "measured", "value": y,
                         "posterior_mean": np.nan, "posterior_sd": np.nan, "rank": np.nan})
    prop = pd.DataFrame({"round": 1, "gene_a": [genes[i] for i in ci[pick]],
                         "gene_b": [genes[j] for j in cj[pick]], "status": "proposed",
                         "value": np.nan, "posterior_mean": post["mean"][pick],
                         "posterior_sd": post["sd"][pick], "rank": np.arange(1, len(pick) + 1)})
    prop["pair"] = prop.gene_a + "+" + prop.gene_b
    out = pd.concat([hist, prop[hist.columns]], ignore_index=True)
    out["acquisition"] = acquisition
    out["test"] = test
    out["seed"] = seed
    params = {"budget": budget, "acquisition": acquisition, "test": test, "value": value,
              "n_genes": len(genes), "n_candidates": len(cand)}
    with study.step("plan_pairs", params=params, seed=seed, inputs=["interactions"]) as tx:
        tx.write_table("pair_selection", out, description="measured pairs and the next batch")
    return out


def demo_step(study, size: str = "quick", seed: int = 0) -> None:
    """Interaction tests and pair planning on the demo Study (quick: well under 30 s CPU).

    Uses ``profiles`` when the embedding step has run, else the simulator's latent columns.
    Pairs with too few surviving cells (synthetic lethality) are kept with a status.
    """
    cfg = DEMO.get(size, DEMO["quick"])
    run_interactions(study, on_small="skip", seed=seed, **cfg)
    plan_pairs(study, budget=5 if size in ("tiny", "quick") else 10, seed=seed)


__all__ = ["run_interactions", "plan_pairs", "test_pairs", "find_doubles", "gather_pair",
           "load_profiles", "demo_step", "MissingArtefactError"]
