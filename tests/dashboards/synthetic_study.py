"""A small synthetic Study holding every artefact the dashboards show (a test helper,
loaded by path from tests/dashboards/conftest.py and tests/ui/conftest.py).

It is written with the Study API in the layout the steps use (see DESIGN section 3), with a
few planted facts the tests check: G01 and G02 interact strongly, G01's samples sit in one
corner of the embedding, concept ``c1`` is driven by G01, and G01 -> G02 -> G03 -> G01 is a
cycle of the network.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.tools.grn_metrics import cycle_table

GENES = [f"G{i:02d}" for i in range(1, 9)]
DOUBLES = [("G01", "G02"), ("G01", "G03"), ("G02", "G04"), ("G05", "G06"), ("G03", "G07")]
CONTROL = "control"
CHANNELS = ["DNA", "ER", "RNA", "AGP", "Mito"]


def _screen_obs(n_per: int, rng) -> pd.DataFrame:
    rows = []
    perts = [CONTROL] * 2 + GENES + [f"{a}+{b}" for a, b in DOUBLES]
    for p in perts:
        for r in range(n_per):
            batch = f"b{r % 2}"
            rows.append({"perturbation": p, "is_control": p == CONTROL, "batch": batch,
                         "plate": f"P{r % 2}", "well": f"{'ABCD'[r % 4]}{len(rows) % 24 + 1:02d}",
                         "genes": p if "+" in p else ""})
    obs = pd.DataFrame(rows)
    obs.index = [f"crop{i:04d}" for i in range(len(obs))]
    for col in ("perturbation", "batch", "plate", "well", "genes"):
        obs[col] = obs[col].astype(str)
    return obs


def make_synthetic_study(path, *, n_per: int = 6, seed: int = 0, parts=None):
    """Write a Study with images, profiles, perturbations, concepts, interactions,
    pair_selection, grn, grn_samples, relationships and ground_truth (or only ``parts``)."""
    import anndata as ad

    from workbench.data.study import Study

    rng = np.random.default_rng(seed)
    parts = set(parts or ["images", "profiles", "perturbations", "concepts", "interactions",
                          "pair_selection", "grn", "relationships", "ground_truth"])
    study = Study.create(path, title="synthetic", control_label=CONTROL)
    obs = _screen_obs(n_per, rng)
    n = len(obs)
    centres = {p: rng.normal(size=2) * 4 for p in obs["perturbation"].unique()}
    centres["G01"] = np.array([10.0, 10.0])
    xy = np.stack([centres[p] for p in obs["perturbation"]]) + rng.normal(size=(n, 2)) * 0.5
    emb = np.concatenate([xy, rng.normal(size=(n, 6))], axis=1).astype(np.float32)
    K = 6
    codes = np.abs(rng.normal(size=(n, K))).astype(np.float32) * 0.1
    codes[obs["perturbation"].str.contains("G01").to_numpy(), 1] += 3.0

    with study.step("synthetic", params={"seed": seed}, seed=seed) as tx:
        if "images" in parts:
            crops = rng.gamma(2.0, 200.0, size=(n, len(CHANNELS), 16, 16)).astype(np.uint16)
            tx.write_images("images", crops, obs, CHANNELS)
        if "profiles" in parts:
            prof = ad.AnnData(X=emb, obs=obs.copy())
            prof.obsm["X_umap"] = xy.astype(np.float32)
            prof.obsm["X_mae_b3"] = emb
            prof.obsm["concepts_icfl"] = codes
            prof.uns["workbench"] = {"block_probe": {"block": [1, 2, 3, 4],
                                                     "score": [0.4, 0.6, 0.8, 0.7]},
                                     "best_block": 3, "encoder": "mae"}
            tx.write_anndata("profiles", prof)
        if "perturbations" in parts:
            perts = [p for p in obs["perturbation"].unique()]
            agg = np.stack([emb[(obs["perturbation"] == p).to_numpy()].mean(0) for p in perts])
            unit = agg / np.linalg.norm(agg, axis=1, keepdims=True)
            pobs = pd.DataFrame({"perturbation": perts,
                                 "n_samples": [int((obs["perturbation"] == p).sum()) for p in perts]},
                                index=perts)
            pa = ad.AnnData(X=agg.astype(np.float32), obs=pobs)
            pa.obsp["cosine"] = (unit @ unit.T).astype(np.float32)
            pa.uns["workbench"] = {"benchmark": {"replicate_consistency": 0.81,
                                                 "recall_at_5pct": 0.42}}
            tx.write_anndata("perturbations", pa, screen=False)
        if "concepts" in parts:
            cids = [f"c{k}" for k in range(K)]
            cobs = pd.DataFrame({
                "frequency": codes.astype(bool).mean(0) * 0 + rng.uniform(0.05, 0.3, K),
                "selectivity": rng.uniform(0, 1, K),
                "top_perturbations": ["G05;G06", "G01;G01+G02;G01+G03", "G02;G04", "G07",
                                      "G03;G01", "G08"],
                "batch_flag": [False, False, False, False, False, True],
            }, index=cids)
            ca = ad.AnnData(X=rng.normal(size=(K, emb.shape[1])).astype(np.float32), obs=cobs)
            pages = {}
            for k, cid in enumerate(cids):
                order = np.argsort(-codes[:, k])[:6]
                counts, edges = np.histogram(codes[:, k], bins=12)
                pages[cid] = {"exemplars": obs.index[order].tolist(),
                              "hist_counts": counts.tolist(), "hist_edges": edges.tolist()}
            ca.uns["workbench"] = {"run": "icfl", "pages": pages}
            tx.write_anndata("concepts", ca, screen=False)
        if "interactions" in parts:
            rows = []
            for i, a in enumerate(GENES):
                for b in GENES[i + 1:]:
                    strong = (a, b) == ("G01", "G02")
                    for test in ("disjointness", "separability"):
                        stat = 8.0 if strong else abs(rng.normal())
                        p = 1e-6 if strong else float(rng.uniform(0.01, 1))
                        rows.append({"pair": f"{a}+{b}", "gene_a": a, "gene_b": b, "test": test,
                                     "statistic": stat, "p": p, "q": min(1.0, p * 28),
                                     "effect_size": float(stat * np.sign(rng.normal())),
                                     "n_a": n_per, "n_b": n_per, "n_ab": n_per})
            tx.write_table("interactions", pd.DataFrame(rows))
        if "pair_selection" in parts:
            hist = pd.DataFrame({
                "round": [0, 0, 1, 1, 2, 2],
                "pair": ["G01+G02", "G01+G03", "G02+G04", "G05+G06", "G03+G07", "G04+G08"],
                "score": [0.9, 0.5, 0.7, 0.4, 0.6, 0.55],
                "hits_found": [1, 1, 2, 2, 2, 2],
                "status": ["tested", "tested", "tested", "tested", "proposed", "proposed"]})
            tx.write_table("pair_selection", hist)
        if "grn" in parts:
            G = len(GENES)
            prob = rng.uniform(0, 0.2, size=(G, G))
            for a, b in [(0, 1), (1, 2), (2, 0), (3, 4), (0, 5)]:
                prob[a, b] = 0.9
            np.fill_diagonal(prob, 0)
            cells = 40
            g = ad.AnnData(X=rng.poisson(3, size=(cells, G)).astype(np.float32),
                           var=pd.DataFrame(index=GENES))
            g.layers["spliced"] = g.X.copy()
            g.layers["unspliced"] = g.X.copy()
            g.layers["velocity"] = rng.normal(size=(cells, G)).astype(np.float32)
            g.varp["edge_probability"] = prob.astype(np.float32)
            g.uns["workbench"] = {"metrics": {"auroc": 0.91, "auprc": 0.77},
                                  "cycles": cycle_table([{"cycle": ["G01", "G02", "G03"],
                                                         "length": 3, "frequency": 0.5}])}
            tx.write_anndata("grn", g, screen=False)
            samples = (rng.uniform(size=(20, G, G)) < prob[None]).astype(np.uint8)
            tx.write_array("grn_samples", samples, attrs={"genes": GENES})
        if "relationships" in parts:
            rel = pd.DataFrame({"entity1": ["G01", "G05", "G03"], "entity2": ["G02", "G06", "G07"],
                                "source": ["planted"] * 3})
            path_tmp = study.path / ".rel.csv"
            rel.to_csv(path_tmp, index=False)
            tx.write_file("relationships", path_tmp, "relationships.csv")
        if "ground_truth" in parts:
            adj = np.zeros((len(GENES), len(GENES)), dtype=int)
            for a, b in [(0, 1), (1, 2), (2, 0), (3, 4)]:
                adj[a, b] = 1  # child-major, as the simulator writes it
            tx.write_json("ground_truth", {"genes": GENES, "adjacency": adj.tolist(),
                                           "pairs": {"interacting": [{"pair": "G01+G02"}]}})
    if (study.path / ".rel.csv").exists():
        (study.path / ".rel.csv").unlink()
    return study
