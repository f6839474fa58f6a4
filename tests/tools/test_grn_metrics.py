"""Admissible sets, Bayes-SHD, KL(P*||Q), coverage, reference AUCs and cycles."""

import itertools

import numpy as np
import pandas as pd

from workbench.tools.grn_metrics import (AdmissibleSet, bayes_shd, bernoulli_row_log_prob,
                                         coverage, cycle_frequencies, kl_to_admissible,
                                         reference_auc, reference_matrix, simple_cycles)

# 3 base variables + a negated copy of variable 0 (column 3 is interchangeable with 0)
TRUTH = np.array([[1, 0, 1, 0],
                  [1, 1, 0, 0],
                  [0, 1, 1, 0],
                  [1, 0, 1, 0]], np.uint8)
GROUPS = np.array([0, 1, 2, 0])


def _brute_force_admissible():
    """Every 4x4 graph, kept when it is TRUTH with column 0 swapped for 3 in some rows."""
    out = []
    for swap in itertools.product([0, 1], repeat=4):
        g = TRUTH.copy()
        for i, s in enumerate(swap):
            if s and g[i, 0]:
                g[i, 0], g[i, 3] = 0, 1
        out.append(g)
    return np.unique(np.array(out), axis=0)


def test_admissible_set_matches_brute_force():
    adm = AdmissibleSet.from_truth(TRUTH, GROUPS)
    brute = _brute_force_admissible()
    assert adm.size == len(brute) == 8  # rows 0, 1, 3 each choose x0 or -x0
    assert adm.contains(brute).all()
    rng = np.random.default_rng(0)
    graphs = rng.integers(0, 2, size=(300, 4, 4))
    nearest = np.array([np.abs(brute - g).sum((1, 2)).min() for g in graphs])
    assert np.array_equal(adm.nearest_distance(graphs), nearest)
    assert abs(bayes_shd(graphs, adm) - nearest.mean()) < 1e-12
    assert adm.identifiable[:, [1, 2]].all() and not adm.identifiable[:, [0, 3]].any()


def test_kl_is_zero_for_the_admissible_posterior_and_positive_otherwise():
    adm = AdmissibleSet.from_truth(TRUTH, GROUPS)

    def log_q_perfect(i, parents):  # uniform over each row's admissible options
        opts = adm.row_options(i)
        return -np.log(len(opts)) if tuple(parents) in opts else -np.inf

    assert abs(kl_to_admissible(log_q_perfect, adm)) < 1e-12

    def log_q_collapsed(i, parents):  # always x0, never the copy
        opts = adm.row_options(i)
        return 0.0 if tuple(parents) == opts[0] else np.log(1e-6)

    kl = kl_to_admissible(log_q_collapsed, adm)
    # rows 0, 1, 3 each: -log 2 - (0 + log 1e-6) / 2
    assert abs(kl - 3 * (-np.log(2) - np.log(1e-6) / 2)) < 1e-9
    # Bernoulli reading: edge marginal 1/2 on both copies is not the same as the set
    p = TRUTH.astype(float)
    p[:, [0, 3]] = np.where(TRUTH[:, [0]] > 0, 0.5, 0.0)
    assert kl_to_admissible(bernoulli_row_log_prob(p), adm) > 0.5


def test_coverage_counts_distinct_admissible_graphs():
    adm = AdmissibleSet.from_truth(TRUTH, GROUPS)
    brute = _brute_force_admissible()
    samples = np.concatenate([brute[:3], brute[:3], np.zeros((5, 4, 4), np.uint8)])
    assert coverage(samples, adm) == 3 / 8


def test_reference_auc_orientation_and_permutation_p_value():
    genes = ["A", "B", "C", "D", "E", "F"]
    edges = pd.DataFrame({"source": ["a", "A", "c", "E"], "target": ["B", "C", "D", "F"]})
    ref = reference_matrix(edges, genes)
    assert ref[1, 0] == 1 and ref[0, 1] == 0  # A -> B sets R[B, A]
    prob = ref * 0.9 + 0.05
    good = reference_auc(prob, ref, n_perm=300, seed=0)
    assert good["auroc"] == 1.0 and good["p_auroc"] < 0.02
    assert good["random_auroc"] == 0.5 and abs(good["random_auprc"] - 4 / 30) < 1e-12
    bad = reference_auc(prob.T, ref, n_perm=300, seed=0)  # flipped orientation
    assert bad["auroc"] < 0.6 and bad["p_auroc"] > 0.05


def test_cycles_in_samples():
    g = np.zeros((4, 4), np.uint8)
    g[1, 0] = g[2, 1] = g[0, 2] = 1  # 0 -> 1 -> 2 -> 0
    g[3, 3] = 1  # self-loop: not a cycle here
    assert simple_cycles(g) == [(0, 1, 2)]
    h = g.copy()
    h[0, 1] = 1  # adds 1 -> 0: a two-cycle
    assert sorted(simple_cycles(h)) == [(0, 1), (0, 1, 2)]
    freq = cycle_frequencies(np.stack([g, h, np.zeros_like(g)]), ["a", "b", "c", "d"])
    assert freq[0] == {"cycle": ["a", "b", "c"], "length": 3, "frequency": 2 / 3}


def test_reference_gene_set_picks_dense_regulators_and_their_shared_targets():
    import pandas as pd

    from workbench.tools.grn_metrics import reference_gene_set, reference_matrix

    edges = pd.DataFrame({
        "source": ["TFA"] * 4 + ["TFB"] * 3 + ["TFC", "TFA", "GONE"],
        "target": ["t1", "t2", "t3", "t4", "t1", "t2", "t5", "t9", "TFB", "t1"]})
    candidates = ["tfa", "TFB", "TFC", "t1", "t2", "t3", "t4", "t5", "t9"]  # GONE not measured
    genes = reference_gene_set(edges, candidates, n_genes=5, n_regulators=2)
    # the two biggest regulators first, then targets shared by most of them; names as given
    assert genes[:2] == ["tfa", "TFB"] and set(genes[2:4]) == {"t1", "t2"} and len(genes) == 5
    ref = reference_matrix(edges, genes)
    assert ref.sum() >= 6 and "GONE" not in genes
