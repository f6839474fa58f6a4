"""Sample data for napari's File > Open Sample menu: a small demo Study made on the fly.

The demo Study comes from the workbench simulator
(:func:`workbench.data.simulate.build_demo_study`, size "tiny") when it is installed, and
otherwise from :func:`build_toy_study`, a few dozen synthetic three-channel cells with a
control, two single perturbations, their double and per-crop concept activations. The
Study is built once per session in the temporary folder and reused.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

TOY_CHANNELS = ["DNA", "RNA", "Mito"]


def build_toy_study(path: str | Path, *, n_control: int = 12, n_per: int = 6, size: int = 32,
                    seed: int = 0, images: bool = True):
    """Write a tiny image Study: control, A, B, A+B and C crops with masks and concepts.

    Each crop is one cell: a nucleus (DNA), a cytoplasm (RNA) and a mitochondrial ring
    (Mito). Perturbation A brightens Mito, B brightens RNA and the double A+B brightens both
    more than their sum; C shrinks the nucleus. ``profiles`` holds per-crop mean intensities
    and ``obsm["concepts_toy"]`` three activations (Mito, RNA, nuclear size) so that the
    concept view has something to rank. ``images=False`` writes a Study with profiles but
    no images (to test the message about missing crops).
    """
    import anndata as ad

    from workbench.data.study import Study

    rng = np.random.default_rng(seed)
    labels = (["control"] * n_control + ["A"] * n_per + ["B"] * n_per + ["A+B"] * n_per
              + ["C"] * n_per)
    n = len(labels)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    r = np.hypot(yy, xx)
    crops = np.zeros((n, 3, size, size), np.float32)
    masks = np.zeros((n, size, size), np.int32)
    for i, lab in enumerate(labels):
        genes = set(lab.split("+")) - {"control"}
        r_nuc = size * (0.14 if "C" in genes else 0.22) * rng.uniform(0.9, 1.1)
        mito = 0.35 + 0.4 * ("A" in genes) + 0.3 * (genes == {"A", "B"})
        rna = 0.25 + 0.35 * ("B" in genes) + 0.3 * (genes == {"A", "B"})
        crops[i, 0] = (r < r_nuc) * 0.9
        crops[i, 1] = (r < size * 0.42) * rna
        crops[i, 2] = ((r > size * 0.28) & (r < size * 0.38)) * mito
        crops[i] += rng.normal(0, 0.03, crops[i].shape).astype(np.float32)
        masks[i] = np.where(r < r_nuc, 1, np.where(r < size * 0.42, 2, 0))
    crops = np.clip(crops, 0, None)
    obs = pd.DataFrame({
        "perturbation": labels,
        "is_control": [lab == "control" for lab in labels],
        "genes": [("" if lab == "control" else lab) for lab in labels],
        "batch": "b1",
        "plate": "P1",
        "well": [f"{'ABCDE'[i % 5]}{i // 5 + 1:02d}" for i in range(n)],
    }, index=[f"crop{i:03d}" for i in range(n)])
    for col in ("perturbation", "genes", "batch", "plate", "well"):
        obs[col] = obs[col].astype("category")
    means = crops.mean(axis=(2, 3))
    nuc = (masks == 1).mean(axis=(1, 2))
    adata = ad.AnnData(X=means.astype(np.float32), obs=obs.copy())
    adata.var_names = [f"mean_{c}" for c in TOY_CHANNELS]
    adata.obsm["concepts_toy"] = np.stack([means[:, 2], means[:, 1], nuc], 1).astype(np.float32)
    study = Study.create(path, title="toy screen", control_label="control", overwrite=True)
    with study.step("toy", params={"seed": seed}, seed=seed) as tx:
        if images:
            tx.write_images("images", crops, obs, TOY_CHANNELS, masks=masks)
        tx.write_anndata("profiles", adata)
    return study


def demo_study_path(size: str = "tiny") -> Path:
    """The session's demo Study, built on first use in the temporary folder."""
    root = Path(tempfile.gettempdir()) / "workbench-napari-sample"
    path = root / f"demo_{size}.study"
    if (path / "study.json").is_file():
        return path
    root.mkdir(parents=True, exist_ok=True)
    try:
        from workbench.data.simulate import build_demo_study
    except ImportError:
        build_demo_study = None
    if build_demo_study is not None:
        build_demo_study(path, size=size)
    else:
        build_toy_study(path)
    return path


def make_demo_sample():
    """npe2 sample-data command: the demo Study's overview grid."""
    from workbench.napari._source import StudySource

    return StudySource(demo_study_path()).open_layers()
