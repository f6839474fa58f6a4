"""Small hand-made Studies for the store and schema tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from workbench.data.study import Study


def screen_obs(n_per: int = 4, perts=("ctrl", "A", "B"), batches=("b1", "b2")) -> pd.DataFrame:
    rows = []
    for b in batches:
        for p in perts:
            for r in range(n_per):
                rows.append({"perturbation": p, "is_control": p == "ctrl", "batch": b,
                             "plate": f"P{b}", "well": f"{p}{r:02d}"})
    obs = pd.DataFrame(rows)
    obs.index = [f"cell{i}" for i in range(len(obs))]
    return obs


def screen_adata(seed: int = 0, **kw) -> ad.AnnData:
    obs = screen_obs(**kw)
    x = np.random.default_rng(seed).normal(size=(len(obs), 6)).astype("float32")
    a = ad.AnnData(x, obs=obs)
    a.obsm["X_emb_b1"] = x[:, :3].copy()
    return a


def snapshot(path: Path) -> dict[str, str]:
    """Every file under ``path`` (the lock files excluded) with its content hash."""
    out = {}
    for f in sorted(path.rglob("*")):
        rel = f.relative_to(path)
        if f.is_file() and f.name != ".lock" and rel.parts[0] != ".locks":
            out[f.relative_to(path).as_posix()] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


@pytest.fixture
def study(tmp_path) -> Study:
    s = Study.create(tmp_path / "s.study", title="test", control_label="ctrl")
    with s.step("import", params={"source": "test"}, seed=1) as tx:
        tx.write_anndata("profiles", screen_adata())
        tx.write_table("results", pd.DataFrame({"pair": ["A+B"], "p": [0.5]}))
    return s
