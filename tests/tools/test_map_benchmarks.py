"""Map benchmarks: recall of known pairs, replicate consistency, retrieval mAP, batch gap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.tools.map_benchmarks import (
    batch_effect, pairs_from_groups, read_relationships, relationship_recall,
    replicate_consistency, retrieval_map, undirected_pairs,
)
from workbench.tools.normalize import cosine_matrix


def group_map(seed=0, groups=5, per=4, extra=20, d=16, noise=0.3):
    """Genes in groups share a direction; 'extra' genes are random."""
    rng = np.random.default_rng(seed)
    names, vecs, member = [], [], {}
    for g in range(groups):
        c = rng.normal(size=d)
        member[f"grp{g}"] = []
        for k in range(per):
            names.append(f"G{g}_{k}")
            member[f"grp{g}"].append(names[-1])
            vecs.append(c + noise * rng.normal(size=d))
    for k in range(extra):
        names.append(f"R{k}")
        vecs.append(rng.normal(size=d))
    return np.array(names), np.array(vecs), member


def test_recall_of_planted_groups_and_random_pairs():
    names, V, groups = group_map()
    cos = cosine_matrix(V)
    r = relationship_recall(cos, names, pairs_from_groups(groups))
    assert r["n_pairs_in_map"] == 5 * 6
    assert r["recall"]["0.05_0.95"] == 1.0 and r["random_baseline"]["0.05_0.95"] == pytest.approx(0.1)
    rng = np.random.default_rng(3)
    rand = undirected_pairs(rng.choice(names, 400), rng.choice(names, 400))
    rr = relationship_recall(cos, names, rand)["recall"]["0.05_0.95"]
    assert 0.02 < rr < 0.25
    # anti-correlated pairs count too (left tail), unknown genes are ignored
    V2 = V.copy()
    V2[1] = -V2[0]
    r2 = relationship_recall(cosine_matrix(V2), names,
                             pd.DataFrame({"entity1": ["G0_0", "nope"], "entity2": ["G0_1", "G0_0"]}))
    assert r2["n_pairs_in_map"] == 1 and r2["recall"]["0.05_0.95"] == 1.0


def test_undirected_pairs_deduplicate():
    df = undirected_pairs(["A", "B", "A", "C"], ["B", "A", "A", "D"])
    assert df.values.tolist() == [["A", "B"], ["C", "D"]]


def test_replicate_consistency_separates_effects_from_no_effects():
    rng = np.random.default_rng(0)
    d, reps = 12, 6
    rows, labels = [], []
    for g in range(8):
        effect = rng.normal(size=d) * (2.0 if g < 5 else 0.0)      # G5..G7 have no effect
        for _ in range(reps):
            rows.append(effect + rng.normal(size=d))
            labels.append(f"G{g}")
    table, overall = replicate_consistency(np.array(rows), labels, n_perm=300)
    t = table.set_index("perturbation")
    assert (t.loc[[f"G{g}" for g in range(5)], "perm_p"] < 0.01).all()
    assert (t.loc[["G5", "G6", "G7"], "perm_p"] > 0.05).all()
    assert (t.loc[["G0", "G1"], "ks"] > t.loc[["G5", "G6", "G7"], "ks"].max()).all()
    assert overall["ks_p"] < 1e-6 and overall["fraction_consistent_p05"] == pytest.approx(5 / 8)


def test_replicate_pairs_within_one_well_are_not_counted():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 5))
    X[:10] += 5 * rng.normal(size=5)         # 'A': cells of one well share a well artefact
    pert = ["A"] * 10 + [f"x{i // 5}" for i in range(30)]
    well = ["w0"] * 10 + [f"w{1 + i // 5}" for i in range(30)]
    table, _ = replicate_consistency(X, pert, distinct=well, n_perm=50)
    assert "A" not in set(table.perturbation)


def test_retrieval_map_planted_and_shuffled():
    names, V, groups = group_map(extra=10)
    lab = {g: k for k, gs in groups.items() for g in gs}
    labels = [lab.get(n) for n in names]
    r = retrieval_map(V, labels, n_perm=200)
    assert r["map"] > 0.95 and r["p_value"] < 0.01 and r["n_queries"] == 20
    shuffled = list(np.random.default_rng(0).permutation(np.array(labels, dtype=object)))
    rs = retrieval_map(V, shuffled, n_perm=200)
    assert rs["map"] < 0.6 and rs["p_value"] > 0.01
    # multi-label sets: sharing any member is a hit
    r3 = retrieval_map(V[:3], ["x|y", "y", "z"], n_perm=10, sep="|")
    assert r3["n_queries"] == 2
    # missing labels (NaN, 'nan' after a string cast) are never a shared label
    assert retrieval_map(np.eye(4), ["a", "a", "nan", None], n_perm=5)["n_queries"] == 2


def test_batch_gap_sees_a_shared_batch_offset():
    rng = np.random.default_rng(2)
    R = rng.normal(size=(60, 10))
    pert = np.repeat(np.arange(30), 2).astype(str)
    batch = np.tile(["b1", "b2"], 30)
    assert abs(batch_effect(R, pert, batch)["gap"]) < 0.05
    R2 = R + np.where(batch[:, None] == "b1", 1.0, -1.0) * rng.normal(size=10)
    assert batch_effect(R2, pert, batch)["gap"] > 0.3


@pytest.mark.realdata
def test_efaar_annotation_files_read_undirected(shared_data):
    pairs = read_relationships(shared_data / "efaar_benchmark_annotations" / "Reactome.txt.gz")
    assert (pairs.entity1 < pairs.entity2).all() and not pairs.duplicated().any()
    assert 17000 < len(pairs) < 19000            # 18,565 unique undirected pairs (card 4.6)
    clusters = read_relationships(shared_data / "efaar_benchmark_annotations" / "CORUM_clusters.tsv.gz")
    assert len(clusters) > 10000


@pytest.mark.slow
@pytest.mark.realdata
def test_lincs_plate_tvn_on_dmso_moa_retrieval(shared_data):
    """One LINCS plate: TVN on DMSO, compound map, same-MOA mAP vs shuffled MOA labels."""
    from workbench.data.readers.profiles import read_profiles_table
    from workbench.tools.normalize import TVN, aggregate

    a = read_profiles_table(shared_data / "lincs_cellpainting_profiles"
                            / "SQ00015054_normalized_feature_select.csv.gz")
    obs = a.obs
    ctrl = obs["is_control"].to_numpy(bool)
    assert ctrl.sum() == 24 and set(obs.perturbation[ctrl]) == {"DMSO"}
    X = TVN(batch_center=False).fit_transform(a.X, ctrl)
    assert np.abs(X[ctrl].mean(0)).max() < 1e-4
    names, P, _ = aggregate(X, obs["perturbation"].astype(str), drop=["DMSO"])
    moa = obs.assign(p=obs.perturbation.astype(str)).drop_duplicates("p").set_index("p").loc[names, "moa"]
    r = retrieval_map(P, moa.to_numpy(), n_perm=500, sep="|")
    assert len(names) == 58 and r["n_queries"] >= 10
    assert r["map"] > r["null_mean"] + 2 * r["null_sd"] and r["p_value"] < 0.02
    shuffled = np.random.default_rng(0).permutation(moa.to_numpy())
    rs = retrieval_map(P, shuffled, n_perm=500, sep="|")
    assert rs["map"] < r["map"] and rs["p_value"] > 0.02


def test_recall_tails_match_an_independent_count_and_are_5_95_by_default():
    """Pairs placed between the 5th and 10th percentile count at 10/90 but not at 5/95:
    widening the headline tails (or one-siding them) changes the numbers and fails."""
    from workbench.tools.map_benchmarks import RECALL_THRESHOLDS, summary

    rng = np.random.default_rng(7)
    n = 40
    names = np.array([f"g{i}" for i in range(n)])
    cos = rng.uniform(-1, 1, (n, n))
    cos = (cos + cos.T) / 2
    np.fill_diagonal(cos, 1)
    iu = np.triu_indices(n, 1)
    null = np.sort(cos[iu])
    q = lambda f: null[int(f * len(null))]          # noqa: E731
    pairs = pd.DataFrame({"entity1": ["g0", "g1", "g2", "g3", "g4"],
                          "entity2": ["g10", "g11", "g12", "g13", "g14"]})
    vals = [q(0.01), q(0.07), q(0.08), q(0.93), q(0.5)]   # tails: 1 at 5/95; 4 at 10/90
    for (a, b), v in zip(zip(pairs.entity1, pairs.entity2), vals):
        i, j = int(a[1:]), int(b[1:])
        cos[i, j] = cos[j, i] = v
    null = np.sort(cos[iu])

    def loop_recall(lo, hi):
        hits = 0
        for a, b in zip(pairs.entity1, pairs.entity2):
            v = cos[int(a[1:]), int(b[1:])]
            left = np.sum(null <= v) / len(null)
            right = np.sum(null < v) / len(null)
            hits += (left <= lo) or (right >= hi)
        return hits / len(pairs)

    r = relationship_recall(cos, names, pairs)
    assert RECALL_THRESHOLDS[0] == (0.05, 0.95)
    assert r["recall"]["0.05_0.95"] == pytest.approx(loop_recall(0.05, 0.95)) == 0.2
    assert r["recall"]["0.1_0.9"] == pytest.approx(loop_recall(0.1, 0.9)) == 0.8
    s = summary({"relationship_recall": {"set": r}})
    assert s["recall_set_0.05_0.95"] == 0.2


def test_map_benchmarks_report_the_control_null_beside_the_random_pair_baseline():
    import anndata as ad

    from workbench.tools.map_benchmarks import map_benchmarks, summary

    rng = np.random.default_rng(0)
    rows, X = [], []
    for b in range(2):
        for w in range(6):
            rows.append(("ctrl", f"b{b}", f"c{b}{w}"))
            X.append(rng.normal(size=6))
        for p, e in (("A", 3.0), ("B", 0.0)):
            for w in range(3):
                rows.append((p, f"b{b}", f"{p}{b}{w}"))
                X.append(e * np.eye(6)[0] + rng.normal(size=6))
    obs = pd.DataFrame(rows, columns=["perturbation", "batch", "well"])
    obs["is_control"] = obs.perturbation == "ctrl"
    prof = ad.AnnData(np.asarray(X, np.float32), obs=obs.set_index(obs.well.rename(None)))
    P = np.stack([prof.X[obs.perturbation.to_numpy() == p].mean(0) for p in ("A", "B")])
    pert = ad.AnnData(P, obs=pd.DataFrame({"n_profiles": [6, 6]}, index=["A", "B"]))
    res = map_benchmarks(pert, prof, "ctrl", n_perm=200)
    cn = res["control_null"]
    assert {"consistency", "consistency_cross_batch", "replicate_map", "energy"} <= set(cn)
    per = dict(zip(cn["replicate_map"]["per_perturbation"]["perturbation"],
                   cn["replicate_map"]["per_perturbation"]["q"]))
    assert per["A"] < 0.05 and per["B"] > 0.05
    s = summary(res)
    assert {"replicate_ks_control", "replicate_cvm_control", "replicate_ks_control_cross_batch",
            "replicate_map_fraction_q05", "replicate_ks"} <= set(s)


def test_control_null_is_skipped_with_the_reason_when_controls_are_few():
    from workbench.tools.map_benchmarks import MIN_CONTROL_REPLICATES, control_benchmarks

    rng = np.random.default_rng(1)
    pert = np.array(["ctrl"] * 4 + ["A"] * 3 + ["B"] * 3)
    res = control_benchmarks(rng.normal(size=(10, 5)), pert, np.array(["b1"] * 10), "ctrl")
    assert set(res) == {"control_null"} and "needs" in res["control_null"]["skipped"]
    assert MIN_CONTROL_REPLICATES > 4
