"""Embedding a multi-chunk image store, locally and on a dask cluster, gives every crop's
own features in the store's order (a reordering of gathered chunks fails here)."""

from __future__ import annotations

import numpy as np
import pytest


def rechunked_store(images, path, chunk: int):
    """A copy of an image store whose crops are stored ``chunk`` crops per Zarr chunk."""
    import shutil

    import zarr

    from workbench.data.images import ImageStore

    shutil.copytree(images.path, path)
    group = zarr.open_group(str(path), mode="r+")
    crops = np.asarray(group["crops"][...])
    del group["crops"]
    arr = group.create_array("crops", shape=crops.shape, dtype=crops.dtype,
                             chunks=(chunk, *crops.shape[1:]))
    arr[...] = crops
    return ImageStore(path), crops


def per_crop_truth(enc, crops):
    return np.concatenate([enc.extract(crops[i:i + 1])["mean"] for i in range(len(crops))])


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from workbench.data.simulate import build_demo_study
    from workbench.models.vit_mae import MAEEncoder

    tmp = tmp_path_factory.mktemp("chunks")
    study = build_demo_study(tmp / "t.study", "tiny", seed=2)
    images, crops = rechunked_store(study.read("images"), tmp / "rechunked.zarr", chunk=24)
    enc = MAEEncoder("tiny", device="cpu", seed=4, bf16=False).build(crops)
    n = min(len(crops), 120)
    return images, crops, enc, per_crop_truth(enc, crops[:n]), n


def test_local_multi_chunk_embedding_keeps_the_store_order(store):
    from workbench.tools.embed import extract_features

    images, crops, enc, truth, n = store
    assert images.group["crops"].chunks[0] == 24 and len(crops) > 3 * 24
    feats = extract_features(images, enc, batch_size=8, progress=False)
    np.testing.assert_allclose(feats["mean"][:n], truth, atol=1e-5)
    # the check has teeth: two swapped chunks differ from the truth
    swapped = np.concatenate([truth[24:48], truth[:24], truth[48:]])
    assert np.abs(swapped - truth).max() > 1e-3


@pytest.mark.slow
def test_cluster_gathers_chunks_in_store_order(store):
    from distributed import Client, LocalCluster

    from workbench.tools.embed import extract_features

    images, crops, enc, truth, n = store
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        remote = extract_features(images, enc, batch_size=8, scheduler=client)
    assert remote["mean"].shape[0] == len(crops)
    np.testing.assert_allclose(remote["mean"][:n], truth, atol=1e-5)
