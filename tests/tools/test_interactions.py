"""The interaction step on a small hand-made screen with planted pair types."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from workbench.data.study import Study
from workbench.errors import ValidationError
from workbench.tools.interactions import find_doubles, plan_pairs, run_interactions

D = 6
SHIFT = {"G1": [1.5, 0, 0, 0, 0, 0], "G2": [0, 1.5, 0, 0, 0, 0], "G3": [0, 0, 1.5, 0, 0, 0],
         "G4": [0, 0, 0, 1.5, 0, 0]}
DOUBLE = {"G1+G2": [1.5, 1.5, 0, 0, 0, 0],        # additive on disjoint coordinates
          "G3+G4": [0, 0, 1.5, 1.5, 2.5, 0],      # synergy on a new coordinate
          "G1+G3": [1.5, 0, 1.5, 0, 0, 0]}        # additive, disjoint


def _screen(n=24, drop=(), seed=0, ctrl_batches=("B1", "B2")):
    rng = np.random.default_rng(seed)
    rows, xs = [], []
    conds = {"control": np.zeros(D), **{k: np.array(v, float) for k, v in SHIFT.items()},
             **{k: np.array(v, float) for k, v in DOUBLE.items()}}
    for batch in ("B1", "B2"):
        off = rng.normal(0, 0.3, D)
        for cond, mu in conds.items():
            if cond in drop or (cond == "control" and batch not in ctrl_batches):
                continue
            k = 2 * n if cond == "control" else n // 2
            xs.append(mu + off + rng.normal(size=(k, D)))
            kind = "control" if cond == "control" else ("double" if "+" in cond else "single")
            for i in range(k):
                rows.append({"perturbation": cond, "is_control": cond == "control",
                             "batch": batch, "plate": f"P{batch}", "well": f"{cond}-{i % 3}",
                             "genes": "" if cond == "control" else cond,
                             "perturbation_type": kind})
    obs = pd.DataFrame(rows)
    obs.index = [f"c{i:05d}" for i in range(len(obs))]
    return ad.AnnData(np.concatenate(xs).astype(np.float32), obs=obs)


def _study(tmp_path, adata):
    s = Study.create(tmp_path / "t.study", control_label="control")
    with s.step("import", params={}) as tx:
        tx.write_anndata("profiles", adata)
    return s


def test_step_writes_tables_and_finds_planted_pair(tmp_path):
    s = _study(tmp_path, _screen())
    table = run_interactions(s, n_permutations=300, n_bootstrap=20, seed=0)
    assert {"pair", "gene_a", "gene_b", "test", "statistic", "p", "q", "effect_size",
            "n_ctrl", "n_a", "n_b", "n_ab", "kernel", "bandwidth_rule", "seed",
            "params"} <= set(table.columns)
    dis = table[table.test == "disjointness"].set_index("pair")
    assert dis.loc["G3+G4", "q"] < 0.05
    assert dis.loc["G1+G2", "p"] > 0.05 and dis.loc["G1+G3", "p"] > 0.05
    assert json.loads(dis.loc["G3+G4", "params"])["unit_level"] is True
    assert (dis.units_ab == 6).all() and (dis.unit == "well").all()
    sep = table[table.test == "separability_score"].set_index("pair")
    assert sep.p.isna().all() and (sep.status == "score (no p-value)").all()
    assert sep.loc["G3+G4", "statistic"] > max(sep.loc["G1+G2", "statistic"],
                                               sep.loc["G1+G3", "statistic"])
    via = table[table.test == "viability"].set_index("pair")
    assert via.p.notna().all() and (via.status == "tested").all()
    add = table[table.test == "additivity"].set_index("pair")
    assert add.loc["G3+G4", "q"] < 0.05 and (add.status == "tested").all()
    assert add.loc["G1+G2", "p"] > 0.05 and add.loc["G1+G3", "p"] > 0.05
    # effect: the debiased interaction norm (control-sd units; 2.5 planted) in its interval
    g34 = add.loc["G3+G4"]
    assert g34.ci_low <= g34.effect_size <= g34.ci_high and 1.5 < g34.effect_size < 3.5
    assert add.loc["G1+G2", "ci_low"] < 0.5
    assert json.loads(g34["params"])["unit"] == "well" and (add.units_ab == 6).all()
    stored = s.read("interactions")
    assert len(stored) == 15
    assert set(stored.test) == {"additivity", "disjointness", "separability_score",
                                "viability", "additivity_or_viability"}
    details = s.read("pair_details")["pairs"]["G3+G4"]
    assert set(details["exemplars"]) == {"control", "A", "B", "A+B"}
    inter = np.array(details["shifts"]["interaction"])
    assert np.argmax(np.abs(inter)) == 4  # the synergy coordinate
    plan = plan_pairs(s, budget=3, seed=0)
    prop = plan[plan.status == "proposed"]
    assert len(prop) == 3 and prop.pair.is_unique
    measured = {frozenset(p.split("+")) for p in plan[plan.status == "measured"].pair}
    assert not measured & {frozenset((a, b)) for a, b in zip(prop.gene_a, prop.gene_b)}
    assert s.read("pair_selection").shape[0] == len(plan)


def test_double_without_single_names_the_pair(tmp_path):
    s = _study(tmp_path, _screen(drop=("G4",)))
    with pytest.raises(ValidationError, match=r"G3\+G4.*'G4'"):
        run_interactions(s, n_permutations=50, n_bootstrap=5)


def test_too_few_cells_is_a_status_and_viability_still_tested(tmp_path):
    s = _study(tmp_path, _screen(n=6))
    with pytest.raises(ValidationError, match=r"too few samples.*G1\+G2"):
        run_interactions(s, n_permutations=50, n_bootstrap=5, min_samples=8, on_small="error")
    table = run_interactions(s, n_permutations=50, n_bootstrap=5, min_samples=8)
    morph = table[~table.test.isin(["viability", "additivity", "additivity_or_viability"])]
    assert morph.p.isna().all()
    assert morph.status.str.startswith("too few cells for morphology").all()
    assert table[table.test == "viability"].p.notna().all()
    # the additivity test needs one cell per condition: it still tests these pairs
    add = table[table.test == "additivity"]
    assert len(add) == 3 and add.p.notna().all() and (add.status == "tested").all()


def test_without_profiles_names_embed_and_latent_is_a_recorded_truth_check(tmp_path):
    from workbench.data.simulate import build_demo_study
    from workbench.errors import MissingArtefactError

    s = build_demo_study(tmp_path / "demo.study", size="tiny", seed=0)
    with pytest.raises(MissingArtefactError, match="workbench embed"):
        run_interactions(s, n_bootstrap=5)
    table = run_interactions(s, use="latent", n_bootstrap=5, tests=("disjointness",
                                                                    "viability"))
    assert set(table.test) == {"disjointness", "viability"}
    step = [e for e in s.provenance if e["tool"] == "interactions"][-1]
    assert step["params"]["truth_check"] is True
    assert "latent" in step["params"]["source"]


def test_pair_inputs_checked():
    from workbench.tools.interactions import test_pairs

    adata = _screen()
    X = adata.X.copy()
    X[np.flatnonzero(adata.obs.is_control.to_numpy())[3], 1] = np.nan
    with pytest.raises(ValidationError, match="NaN"):
        test_pairs(X, adata.obs, n_bootstrap=5)
    obs = adata.obs.copy()
    swap = (obs.genes == "G1+G2").to_numpy() & (obs.batch == "B2").to_numpy()
    obs.loc[swap, "genes"] = "G2+G1"
    obs["perturbation"] = obs["perturbation"].astype(str)
    obs.loc[swap, "perturbation"] = "G2+G1"
    report = []
    table, _ = test_pairs(adata.X, obs, n_bootstrap=5, tests=("viability",), report=report)
    assert set(table.pair) == {"G1+G2", "G1+G3", "G3+G4"}
    assert table.set_index("pair").loc["G1+G2", "n_ab"] == 24  # both orders' cells
    assert any("G2+G1" in r and "merged" in r for r in report)
    obs.loc[swap, "genes"] = "G1+G1"
    with pytest.raises(ValidationError, match="same gene twice"):
        test_pairs(adata.X, obs, n_bootstrap=5)


def test_one_well_per_condition_warns_and_gives_a_status():
    from workbench.tools.interactions import test_pairs

    adata = _screen()
    obs = adata.obs.copy()
    obs["well"] = obs["perturbation"].astype(str)  # one well per condition and plate
    obs["plate"] = "P"  # ... and one plate
    with pytest.warns(UserWarning, match="single replicate unit"):
        table, _ = test_pairs(adata.X, obs, n_bootstrap=5, n_permutations=50,
                              tests=("additivity", "disjointness", "viability"))
    assert set(table.test) == {"additivity", "disjointness", "viability",
                               "additivity_or_viability"}
    assert table.p.isna().all()
    assert table.status.str.contains("one replicate unit").all()


def test_no_controls_in_batch_names_the_pair():
    from workbench.tools.interactions import test_pairs

    adata = _screen(ctrl_batches=("B1",))
    obs = adata.obs[adata.obs.batch == "B2"]
    X = adata.X[(adata.obs.batch == "B2").to_numpy()]
    with pytest.raises(ValidationError, match=r"pair G1\+G2: no control samples"):
        test_pairs(X, obs, n_permutations=20, n_bootstrap=5)


def test_find_doubles_rejects_bad_labels():
    obs = pd.DataFrame({"perturbation": ["A+B+C"], "genes": ["A+B+C"],
                        "perturbation_type": ["double"]})
    with pytest.raises(ValidationError, match="A\\+B\\+C"):
        find_doubles(obs)


def _ranked_table(scores):
    """A long table as the step writes it, with the given p (disjointness, viability)."""
    rows = []
    for pair, (p_dis, s_sep, p_via) in scores.items():
        a, b = pair.split("+")
        rows += [{"pair": pair, "gene_a": a, "gene_b": b, "test": "disjointness",
                  "statistic": -np.log10(p_dis) if np.isfinite(p_dis) else np.nan, "p": p_dis},
                 {"pair": pair, "gene_a": a, "gene_b": b, "test": "separability_score",
                  "statistic": s_sep, "p": np.nan},
                 {"pair": pair, "gene_a": a, "gene_b": b, "test": "viability",
                  "statistic": 0.0, "p": p_via}]
    return pd.DataFrame(rows)


def test_rank_against_truth_orders_small_p_and_large_abs_score_first():
    from workbench.tools.interactions import rank_against_truth

    truth = {"all_pairs": [{"pair": "A+B", "type": "synergy"},
                           {"pair": "C+D", "type": "synthetic_lethal"},
                           {"pair": "E+F", "type": "additive_disjoint"},
                           {"pair": "G+H", "type": "additive_shared"},
                           {"pair": "I+J", "type": "network"}]}
    table = _ranked_table({"B+A": (1e-4, -5.0, 0.5),       # stored in the other order
                           "C+D": (np.nan, np.nan, 1e-3),  # too few cells for morphology
                           "E+F": (0.3, 0.5, 0.4), "G+H": (0.02, -1.0, 0.6),
                           "I+J": (1e-9, 9.0, 1e-9)})      # network: in neither class
    res = rank_against_truth(table, truth, n_boot=200, by_kind=True).set_index(
        ["readout", "kind"])
    dis = res.loc[("disjointness", "all planted")]
    assert dis.auroc == 1.0 and dis.n_interacting == 1 and dis.n_additive == 2
    assert dis.n_unscored == 1
    # |S|: -5 ranks above +0.5 and -1 (a signed ranking would put it last)
    assert res.loc[("separability_score", "all planted"), "auroc"] == 1.0
    via = res.loc[("viability", "all planted")]
    assert via.n_interacting == 2 and via.auroc == 0.75  # A+B (p 0.5) beats only G+H
    assert res.loc[("viability", "synthetic_lethal"), "auroc"] == 1.0
    assert res.loc[("any readout", "all planted"), "auroc"] == 1.0
    assert np.isnan(res.loc[("disjointness", "buffering"), "auroc"])
    flipped = _ranked_table({"B+A": (0.3, 0.1, 0.5), "C+D": (np.nan, np.nan, 0.9),
                             "E+F": (1e-4, 4.0, 1e-3), "G+H": (1e-3, -3.0, 1e-2)})
    res2 = rank_against_truth(flipped, truth, n_boot=200).set_index("readout")
    assert res2.loc["disjointness", "auroc"] == 0.0
    assert res2.loc["separability_score", "auroc"] == 0.0
    assert res2.loc["viability", "ci_high"] <= 0.5


def test_singles_only_in_another_batch_status_pool_or_error():
    from workbench.tools.interactions import test_pairs

    adata = _screen()
    obs = adata.obs.copy()
    keep = ~(((obs.perturbation == "G4") & (obs.batch == "B1"))
             | ((obs.perturbation == "G3+G4") & (obs.batch == "B2"))).to_numpy()
    X, obs = adata.X[keep], obs[keep]
    with pytest.warns(UserWarning, match=r"G3\+G4: singles G4 only in batch\(es\) B2"):
        table, _ = test_pairs(X, obs, n_bootstrap=5)
    g34 = table[table.pair == "G3+G4"]
    assert len(g34) == 5 and g34.p.isna().all() and g34.statistic.isna().all()
    assert g34.status.str.startswith("not tested: singles G4 only in batch(es) B2").all()
    others = table[(table.pair != "G3+G4") & (table.test != "separability_score")]
    assert others.p.notna().all()
    with pytest.raises(ValidationError, match=r"G3\+G4.*G4 only in batch\(es\) B2"):
        test_pairs(X, obs, n_bootstrap=5, cross_batch="error")
    with pytest.warns(UserWarning, match="batch effects not controlled"):
        pooled, _ = test_pairs(X, obs, n_bootstrap=5, cross_batch="pool", n_permutations=100,
                               tests=("additivity", "disjointness", "viability"))
    g34 = pooled[pooled.pair == "G3+G4"]
    assert g34.p.notna().all() and g34.status.str.contains("cross-batch: singles G4").all()
    assert g34.singles_cross_batch.all() and not pooled[pooled.pair == "G1+G2"
                                                        ].singles_cross_batch.any()


@pytest.mark.slow
def test_quick_demo_viability_ranks_synthetic_lethal_pairs_first(demo_study_path):
    """On the quick demo's embedded profiles (the step's own output), the viability test
    puts the planted synthetic-lethal pairs above every additive pair; a random ranking
    would not (the morphology readouts are reported in the benchmark, not asserted: they
    rank at chance on these profiles)."""
    from workbench.tools.interactions import rank_against_truth

    s = Study.open(demo_study_path)
    res = rank_against_truth(s.read("interactions"), s.read("ground_truth"),
                             s.read("pair_details")["pairs"], by_kind=True, n_boot=500)
    via = res.set_index(["readout", "kind"]).loc[("viability", "synthetic_lethal")]
    assert via.n_interacting >= 1 and via.n_additive >= 4
    assert via.auroc >= 0.95 and via.ci_low > 0.5


def test_additivity_or_viability_is_the_bonferroni_minimum_of_the_two():
    from workbench.tools.interactions import readout_scores

    table = _ranked_table({"A+B": (1e-4, -5.0, 0.5), "C+D": (np.nan, np.nan, 1e-3),
                           "E+F": (0.3, 0.5, 0.4)})
    table["test"] = table["test"].replace({"disjointness": "additivity"})
    sc = readout_scores(table)  # a table without the step's combined rows
    got = sc["additivity_or_viability"]
    np.testing.assert_allclose(got["A+B"], -np.log10(2e-4), rtol=1e-5)
    # one readout without a p-value: the factor 2 is kept (which readouts exist can depend
    # on the data: a lethal double loses its cells)
    np.testing.assert_allclose(got["C+D"], -np.log10(2e-3), rtol=1e-5)
    np.testing.assert_allclose(got["E+F"], -np.log10(0.6), rtol=1e-5)


def test_additivity_with_cells_as_units_says_so():
    from workbench.tools.interactions import test_pairs

    adata = _screen()
    table, _ = test_pairs(adata.X, adata.obs, unit=None, tests=("additivity",),
                          n_permutations=100)
    add = table.set_index("pair")
    assert (add.status == "tested (cells as replicates)").all() and (add.unit == "cell").all()
    assert (add.units_ab == add.n_ab).all()  # every cell its own unit
    assert add.loc["G3+G4", "p"] < 0.05 and add.loc["G1+G2", "p"] > 0.05


def test_combined_call_is_the_bonferroni_minimum_with_its_own_q():
    import warnings

    from workbench.models.interaction_tests import benjamini_hochberg
    from workbench.tools.interactions import COMBINED, test_pairs

    adata = _screen()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table, _ = test_pairs(adata.X, adata.obs, n_permutations=200, n_bootstrap=5,
                              tests=("additivity", "viability"))
    wide = table.pivot(index="pair", columns="test", values="p")
    smaller = wide[["additivity", "viability"]].min(1)
    # never below twice the smaller p (a dropped Bonferroni factor fails here), and exactly
    # min(1, 2 min p)
    assert (wide[COMBINED] >= np.minimum(1, 2 * smaller) - 1e-12).all()
    np.testing.assert_allclose(wide[COMBINED], np.minimum(1, 2 * smaller))
    # the planted synergy is found by it, and its q is BH over pairs of the combined p
    assert wide.loc["G3+G4", COMBINED] < 0.05 < wide.loc["G1+G2", COMBINED]
    comb = table[table.test == COMBINED].set_index("pair")
    np.testing.assert_allclose(comb.q, benjamini_hochberg(comb.p.to_numpy()))
    assert (comb.status == "tested").all()
    assert (comb.statistic == smaller.reindex(comb.index)).all()
    # not written when the step runs only one of its two readouts
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alone, _ = test_pairs(adata.X, adata.obs, n_permutations=50, tests=("additivity",))
    assert COMBINED not in set(alone.test)


def test_additivity_target_reaches_the_test_and_is_recorded():
    from workbench.tools.interactions import test_pairs

    adata = _screen()
    for target in ("pooled", "diagonal"):
        table, _ = test_pairs(adata.X, adata.obs, tests=("additivity",), n_permutations=50,
                              additivity_target=target)
        assert {json.loads(p)["shrinkage_target"] for p in table.params} == {target}
    with pytest.raises(ValidationError, match="not a shrinkage target"):
        test_pairs(adata.X, adata.obs, tests=("additivity",), n_permutations=50,
                   additivity_target="identity")
