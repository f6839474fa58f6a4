"""Whitening and encoding in row chunks: bounded memory, and on Dask when a scheduler is given.

A screen of a million crops x 384 dimensions is 1.5 GB in float32; whitening it whole in
float64 and keeping the whitened copy beside the input is what made the concepts step peak
at several times its input. Here every pass reads ``chunk_size`` rows at a time from any
array that slices by rows (numpy, a ``zarr`` array on disk, a dask array, an h5py dataset):

* :func:`fit_whitener` fits the control whitener from the control rows of each chunk
  (:meth:`~workbench.models.dictionary.ControlWhitener.fit_blocks`, memory ``d x d``), or
  from the gathered controls when there are fewer controls than features (then they are a
  small ``n_c x d`` block and the thin SVD of :meth:`ControlWhitener.fit` is cheaper);
* :func:`encode_chunked` whitens each chunk, encodes it with a fitted dictionary, and keeps
  only the sparse codes (``k`` entries a row) and the sums that give the reconstruction
  R^2 of all rows. Rows are encoded independently, so the codes equal those of the
  in-memory ``model.transform(whitener.transform(x))`` whatever the chunk size.

With ``scheduler`` (a ``dask.distributed`` address or ``Client``) :func:`encode_chunked`
sends the model and the whitener to the workers once and encodes the chunks there; a zarr
array is read by the workers themselves (it pickles as its store), any other array is sent
chunk by chunk. The result equals the local run.
"""

from __future__ import annotations

import contextlib

import numpy as np

from workbench.errors import ValidationError

__all__ = ["CHUNK_ROWS", "check_chunk_size", "encode_chunked", "fit_whitener", "row_chunks"]

#: Rows per chunk by default: 65,536 x 384 float64 is about 200 MB of working memory.
CHUNK_ROWS = 65536


def check_chunk_size(chunk_size) -> int:
    """The chunk size as a positive int, or a :class:`ValidationError` that says what to give.

    Parameters
    ----------
    chunk_size : int or str
        Rows per chunk, as given by the user.

    Returns
    -------
    int
        The validated number of rows.
    """
    try:
        step = int(chunk_size)
    except (TypeError, ValueError):
        step = 0
    if step < 1:
        raise ValidationError(f"the chunk size must be a positive number of rows, got "
                              f"{chunk_size!r}.", "give --chunk-size 1 or more (e.g. 65536).")
    return step


def _read(x, a: int, b: int, columns=None) -> np.ndarray:
    block = x[a:b]
    if hasattr(block, "compute"):          # dask
        block = block.compute()
    if hasattr(block, "toarray"):          # scipy sparse
        block = block.toarray()
    block = np.asarray(block, dtype=np.float32)
    return block if columns is None else block[:, columns]


def row_chunks(x, chunk_size: int = CHUNK_ROWS, columns=None):
    """Yield ``(start, stop, block)`` over the rows of ``x``: float32, ``columns`` only.

    Parameters
    ----------
    x : array_like
        Any 2-D array that slices by rows: numpy, zarr, dask, h5py, scipy sparse.
    chunk_size : int
        Rows per block (the last block holds the remainder).
    columns : array_like, optional
        Column indices (or a boolean mask) to keep, in that order; None keeps all.

    Yields
    ------
    tuple
        ``(start, stop, block)`` with ``block`` a ``(stop - start, n_columns)`` float32 array.
    """
    step = check_chunk_size(chunk_size)
    n = int(x.shape[0])
    for a in range(0, n, step):
        b = min(a + step, n)
        yield a, b, _read(x, a, b, columns)


def fit_whitener(x, is_control, *, whiten: bool = True, shrinkage: float = 0.1,
                 chunk_size: int = CHUNK_ROWS, columns=None):
    """The control whitener of ``x``, fitted from its control rows one chunk at a time.

    Parameters
    ----------
    x : array_like
        Samples x features, any row-sliceable array (see :func:`row_chunks`).
    is_control : array_like
        Boolean mask of the control rows (length ``n``).
    whiten : bool
        As :class:`~workbench.models.dictionary.ControlWhitener`.
    shrinkage : float
        As :class:`~workbench.models.dictionary.ControlWhitener`.
    chunk_size : int
        Rows read at a time.
    columns : array_like, optional
        Features to use (indices or mask), as the dictionary will see them.

    Returns
    -------
    ControlWhitener
        Fitted on the controls only (Donhauser et al., ICML 2025, section 4).
    """
    from workbench.models.dictionary import ControlWhitener

    ctrl = np.asarray(is_control, bool)
    if ctrl.shape != (int(x.shape[0]),):
        raise ValidationError(f"is_control has {ctrl.size} entries for {x.shape[0]} rows.",
                              "give one control flag per sample.")
    n_c = int(ctrl.sum())
    if n_c == 0:
        raise ValidationError("no control rows: the whitener is fitted on controls.",
                              "mark the control samples (is_control=True).")
    d = len(np.arange(x.shape[1])[columns]) if columns is not None else int(x.shape[1])

    def blocks():
        for a, b, blk in row_chunks(x, chunk_size, columns):
            yield blk[ctrl[a:b]]

    wh = ControlWhitener(whiten=whiten, shrinkage=shrinkage)
    if n_c <= d:    # few controls: gathered, they are no larger than the d x d covariance
        return wh.fit(np.concatenate(list(blocks()), axis=0))
    return wh.fit_blocks(blocks())


def _encode_block(model, whitener, block: np.ndarray):
    """Codes (CSR) of one raw block, and its sums for the R^2: SSE, column sums, squares."""
    xw = whitener.transform(block)
    codes = model.transform(xw)
    recon = codes @ model.components_.astype(np.float64) + model.bias_.astype(np.float64)
    xw64 = xw.astype(np.float64)
    return (codes, float(((xw64 - recon) ** 2).sum()), xw64.sum(axis=0),
            (xw64 ** 2).sum(axis=0))


def _encode_remote(model, whitener, x, a: int, b: int, columns):
    return _encode_block(model, whitener, _read(x, a, b, columns))


@contextlib.contextmanager
def _client(scheduler):
    from distributed import Client

    if isinstance(scheduler, Client):
        yield scheduler
        return
    try:
        client = Client(scheduler, timeout="20s")
    except (OSError, TimeoutError) as exc:
        raise ValidationError(
            f"could not reach a dask scheduler at {scheduler!r} ({exc}).",
            "start one (`dask scheduler`, then `dask worker ADDRESS`) and give its address, "
            "e.g. tcp://127.0.0.1:8786, or leave out --scheduler to encode locally.") from exc
    try:
        yield client
    finally:
        client.close()


def _is_zarr(x) -> bool:
    return type(x).__module__.startswith("zarr")


def encode_chunked(model, whitener, x, *, chunk_size: int = CHUNK_ROWS, columns=None,
                   scheduler=None) -> tuple:
    """Sparse codes of every row of ``x`` with a fitted whitener and dictionary, by chunks.

    Parameters
    ----------
    model : SparseDictionary
        A fitted :class:`~workbench.models.dictionary.SparseDictionary` (ICFL, TopK SAE).
    whitener : ControlWhitener
        The fitted :class:`~workbench.models.dictionary.ControlWhitener`.
    x : array_like
        Raw samples x features, any row-sliceable array (:func:`row_chunks`).
    chunk_size : int
        Rows per chunk (per task with ``scheduler``).
    columns : array_like, optional
        The input columns the model uses, in its feature order (indices or mask).
    scheduler : str or distributed.Client, optional
        A ``dask.distributed`` scheduler address or ``Client``; None encodes here.

    Returns
    -------
    codes : scipy.sparse.csr_matrix
        Samples x concepts, float32; equal to ``model.transform(whitener.transform(x))``.
    stats : dict
        ``r2`` (reconstruction R^2 of all whitened rows, 1 - SSE / SST around the column
        means), ``n`` rows, ``n_chunks`` and ``chunk_size``.
    """
    import scipy.sparse as sp

    step = check_chunk_size(chunk_size)
    n = int(x.shape[0])
    bounds = [(a, min(a + step, n)) for a in range(0, n, step)]
    if scheduler is None:
        parts = [_encode_block(model, whitener, blk) for _, _, blk in
                 row_chunks(x, step, columns)]
    else:
        with _client(scheduler) as client:
            remote_model, remote_wh = client.scatter([model, whitener], broadcast=True)
            if _is_zarr(x):
                futures = [client.submit(_encode_remote, remote_model, remote_wh, x, a, b,
                                         columns, pure=False) for a, b in bounds]
            else:
                futures = [client.submit(_encode_block, remote_model, remote_wh,
                                         _read(x, a, b, columns), pure=False)
                           for a, b in bounds]
            parts = client.gather(futures)
    if not parts:
        raise ValidationError("there are no rows to encode.", "give a non-empty profile table.")
    codes = sp.vstack([p[0] for p in parts], format="csr").astype(np.float32)
    sse = sum(p[1] for p in parts)
    s1 = np.sum([p[2] for p in parts], axis=0)
    s2 = np.sum([p[3] for p in parts], axis=0)
    sst = float((s2 - s1 ** 2 / n).sum())
    stats = {"r2": 1.0 - sse / max(sst, 1e-30), "n": n, "n_chunks": len(bounds),
             "chunk_size": step}
    return codes, stats
