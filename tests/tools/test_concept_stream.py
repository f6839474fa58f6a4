"""Whitening and encoding in row chunks, from memory, from Zarr on disk and on Dask."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from workbench.errors import ValidationError  # noqa: E402
from workbench.models.dictionary import ControlWhitener, r2_score  # noqa: E402
from workbench.models.icfl import ICFL  # noqa: E402
from workbench.tools.concept_stream import encode_chunked, fit_whitener  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")
N, D = 203, 10


def data(seed=0, controls=0.4):
    """Rows with a strong shared offset and unequal feature scales; a control mask."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, D)) @ rng.normal(size=(D, D)) + 20.0
    ctrl = rng.random(N) < controls
    x[~ctrl] += 3.0 * rng.normal(size=(1, D))      # perturbed rows move away from controls
    return x.astype(np.float32), ctrl


def dictionary(d=D, m=8, k=3, seed=1):
    rng = np.random.default_rng(seed)
    atoms = rng.normal(size=(m, d)).astype(np.float32)
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    params = ICFL(m, n_nonzero=k, device="cpu", progress=False).get_params()
    return ICFL.from_state(params, {"atoms": atoms, "bias": 0.01 * atoms[0]}, device="cpu")


@pytest.mark.parametrize("chunk", [1, 7, 50, N - 1, N, 4 * N])
def test_chunked_encode_equals_the_in_memory_one(chunk):
    x, ctrl = data()
    wh = ControlWhitener().fit(x[ctrl])
    model = dictionary()
    xw = wh.transform(x)
    expect = model.transform(xw).toarray()
    codes, stats = encode_chunked(model, wh, x, chunk_size=chunk)
    assert codes.shape == (N, 8)
    np.testing.assert_allclose(codes.toarray(), expect, atol=1e-5)
    assert stats["n_chunks"] == -(-N // chunk)
    assert stats["r2"] == pytest.approx(r2_score(xw, model.reconstruct(xw)), abs=1e-6)


def test_chunked_encode_reads_zarr_on_disk_and_selects_columns(tmp_path):
    zarr = pytest.importorskip("zarr")
    x, ctrl = data(1)
    extra = np.concatenate([np.ones((N, 1), np.float32), x[:, ::-1]], axis=1)
    z = zarr.create_array(tmp_path / "x.zarr", shape=extra.shape, chunks=(32, D + 1),
                          dtype="float32")
    z[:] = extra
    cols = np.arange(D, 0, -1)             # the model's feature order inside the stored array
    wh = fit_whitener(z, ctrl, chunk_size=45, columns=cols)
    ref = ControlWhitener().fit(x[ctrl])
    np.testing.assert_allclose(wh.transform(x), ref.transform(x), atol=1e-5)
    model = dictionary()
    codes, _ = encode_chunked(model, wh, z, chunk_size=45, columns=cols)
    np.testing.assert_allclose(codes.toarray(), model.transform(ref.transform(x)).toarray(),
                               atol=1e-4)


@pytest.mark.parametrize("controls", [0.4, 0.03])   # streamed covariance; gathered SVD
@pytest.mark.parametrize("chunk", [13, N + 5])
def test_streamed_whitener_equals_the_in_memory_fit_on_controls(controls, chunk):
    x, ctrl = data(2, controls)
    ref = ControlWhitener(shrinkage=0.2).fit(x[ctrl])
    wh = fit_whitener(x, ctrl, shrinkage=0.2, chunk_size=chunk)
    assert wh.n_controls_ == ctrl.sum()
    np.testing.assert_allclose(wh.mean_, ref.mean_, rtol=1e-6)
    np.testing.assert_allclose(wh.eigenvalues_, ref.eigenvalues_, rtol=1e-6, atol=1e-9)
    assert wh.delta_ == pytest.approx(ref.delta_, rel=1e-6)
    np.testing.assert_allclose(wh.transform(x), ref.transform(x), atol=1e-5)
    # a whitener fitted on every row is a different one: the controls are what counts
    wrong = ControlWhitener(shrinkage=0.2).fit(x)
    assert np.abs(wh.transform(x) - wrong.transform(x)).max() > 0.05


def test_fit_blocks_rejects_ragged_or_empty_input():
    wh = ControlWhitener()
    with pytest.raises(ValueError, match="features"):
        wh.fit_blocks([np.ones((3, 4)), np.ones((3, 5))])
    with pytest.raises(ValueError, match="no control rows"):
        wh.fit_blocks([np.ones((0, 4))])


def test_bad_chunk_size_and_missing_controls_are_clear_errors():
    x, ctrl = data()
    wh = ControlWhitener().fit(x[ctrl])
    with pytest.raises(ValidationError, match="chunk size"):
        encode_chunked(dictionary(), wh, x, chunk_size=0)
    with pytest.raises(ValidationError, match="no control rows"):
        fit_whitener(x, np.zeros(N, bool))
    with pytest.raises(ValidationError, match="one control flag per sample"):
        fit_whitener(x, ctrl[:-1])


@pytest.mark.slow
def test_encode_on_a_dask_cluster_equals_the_local_run(tmp_path):
    distributed = pytest.importorskip("distributed", reason="dask.distributed not installed")
    zarr = pytest.importorskip("zarr")
    x, ctrl = data(3)
    wh = ControlWhitener().fit(x[ctrl])
    model = dictionary()
    local, local_stats = encode_chunked(model, wh, x, chunk_size=37)
    z = zarr.create_array(tmp_path / "x.zarr", shape=x.shape, chunks=(37, D), dtype="float32")
    z[:] = x
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        for source in (x, z):               # chunks sent, and chunks read by the workers
            remote, stats = encode_chunked(model, wh, source, chunk_size=37,
                                           scheduler=cluster.scheduler_address)
            assert stats["n_chunks"] == 6
            np.testing.assert_allclose(remote.toarray(), local.toarray(), atol=1e-6)
            assert stats["r2"] == pytest.approx(local_stats["r2"], abs=1e-9)
        # the chunks ran as tasks on the workers: sent chunks, and chunks read from Zarr there
        prefixes = cluster.scheduler.task_prefixes
        assert {"encode_block", "encode_remote"} <= set(prefixes)
