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
