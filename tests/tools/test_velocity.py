"""Steady-state RNA velocity and gene selection: planted kinetics and real data."""

import numpy as np
import pytest

from workbench.errors import UnknownGeneError
from workbench.tools.velocity import highly_variable_genes, select_genes, steady_state_velocity


def _kinetics(n=400, genes=5, seed=0):
    """Cells on induction/repression curves of ds/dt = u - gamma s with known gamma."""
    rng = np.random.default_rng(seed)
    gamma = np.linspace(0.3, 1.5, genes)
    s = rng.gamma(4.0, 5.0, size=(n, genes))
    state = rng.choice([-1.0, 0.0, 1.0], size=(n, genes), p=[0.3, 0.4, 0.3])
    lo, hi = np.quantile(s, [0.1, 0.9], axis=0)
    state[(s <= lo) | (s >= hi)] = 0.0  # the extremes are at steady state
    u = gamma * s * (1.0 + 0.6 * state)  # above the line: induction, below: repression
    return s, u, gamma, state


def test_steady_state_recovers_gamma_and_velocity_sign():
    s, u, gamma, state = _kinetics()
    # no library-size scaling, no smoothing: a clean check of the fit
    out = steady_state_velocity(s, u, n_neighbors=1, normalize=False)
    assert np.allclose(out["gamma"], gamma, rtol=0.1)
    v = out["velocity"]
    assert (np.sign(v[state == 1]) > 0).mean() > 0.95
    assert (np.sign(v[state == -1]) < 0).mean() > 0.95


def test_gene_selection_named_tf_and_hvg():
    names = ["Sox9", "Pdx1", "Actb", "Gapdh"]
    assert select_genes(names, genes=["pdx1", "SOX9"]) == ["Pdx1", "Sox9"]
    with pytest.raises(UnknownGeneError, match="Neurog3"):
        select_genes(names, genes=["Neurog3", "Pdx1"])
    assert select_genes(names, tf_list=["Pdx1", "Neurog3", "Sox9"]) == ["Pdx1", "Sox9"]
    rng = np.random.default_rng(0)
    counts = rng.poisson(5.0, size=(300, 40)).astype(float)
    counts[:150, 7] = 0.0  # two planted highly variable genes
    counts[150:, 7] *= 8
    counts[::2, 21] *= 10
    top = highly_variable_genes(counts, n_top=2)
    assert set(top) == {7, 21}
    assert select_genes([f"g{i}" for i in range(40)], counts=counts, n_top=2) == ["g7", "g21"]


def test_velocity_on_dentate_gyrus_agrees_with_scvelo(shared_data):
    ad = pytest.importorskip("anndata")
    a = ad.read_h5ad(shared_data / "rna_velocity_small" / "dentategyrus_cellrank_adata_100.h5ad")
    out = steady_state_velocity(a.layers["spliced"], a.layers["unspliced"], n_neighbors=10,
                                n_pcs=10)
    keep = a.var["velocity_genes"].to_numpy().astype(bool)
    fitted = (a.var["fit_gamma"] / a.var["fit_beta"]).to_numpy()
    # our steady-state degradation ratios track scVelo's fitted gamma / beta
    assert np.corrcoef(out["gamma"][keep], fitted[keep])[0, 1] > 0.85
    ref = np.asarray(a.layers["velocity"])
    corr = np.array([np.corrcoef(out["velocity"][:, g], ref[:, g])[0, 1]
                     for g in np.flatnonzero(keep)])
    assert np.nanmean(corr > 0) > 0.65  # same direction as scVelo's dynamical model
    shuffled = np.array([np.corrcoef(out["velocity"][:, g], np.roll(ref[:, g], 37))[0, 1]
                         for g in np.flatnonzero(keep)])
    assert np.nanmean(corr) > np.nanmean(shuffled) + 0.15


def test_own_velocity_is_kept_and_paired_with_ms(shared_data, tmp_path):
    from workbench.data.readers.velocity import read_velocity
    from workbench.errors import WorkbenchError
    from workbench.tools.grn import prepare

    path = shared_data / "rna_velocity_small" / "dentategyrus_cellrank_adata_50.h5ad"
    a = read_velocity(path, require_integer=False)
    assert {"velocity", "Ms", "Mu"} <= set(a.layers)
    ad = pytest.importorskip("anndata")
    src = ad.read_h5ad(path)
    fitted = [str(g) for g, ok in zip(src.var_names, np.isfinite(np.asarray(
        src.layers["velocity"])).all(0), strict=True) if ok][:5]
    data = prepare(a, genes=fitted)
    k = [list(src.var_names).index(g) for g in fitted]
    # the file's velocity, paired with its own smoothed Ms (not the raw spliced counts)
    assert np.allclose(data["v"], np.asarray(src.layers["velocity"])[:, k])
    assert np.allclose(data["x"], np.asarray(src.layers["Ms"])[:, k])
    assert data["velocity_source"] == "given (paired with Ms)"
    again = prepare(a, genes=fitted, recompute_velocity=True)
    assert again["velocity_source"] == "steady_state"
    assert not np.allclose(again["v"], data["v"])
    # a gene scVelo did not fit is refused by name, with the way out
    unfit = [str(g) for g, ok in zip(src.var_names, np.isfinite(np.asarray(
        src.layers["velocity"])).all(0), strict=True) if not ok][0]
    with pytest.raises(WorkbenchError, match=unfit):
        prepare(a, genes=[fitted[0], unfit])
    dropped = read_velocity(path, require_integer=False, own_velocity=False)
    assert "velocity" not in dropped.layers and "Ms" not in dropped.layers
