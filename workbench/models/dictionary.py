"""Sparse dictionaries over embeddings: the shared training loop, control whitening, metrics.

A dictionary learner writes each sample ``x`` as a bias plus a sparse combination of unit-norm
directions ("atoms", "concepts"): ``x ~ b + sum_m z_m w_m`` with few nonzero ``z_m``. Two
learners share the loop in :class:`SparseDictionary`:

* :class:`~workbench.models.icfl.ICFL` (Donhauser et al., "Towards scientific discovery with
  dictionary learning: extracting biological concepts from microscopy foundation models",
  ICML 2025, arXiv:2412.16247): codes come from a batched greedy pursuit with the dictionary
  held fixed, and the dictionary then takes a gradient step with the codes held fixed.
* :class:`~workbench.models.topk_sae.TopKSAE` (Gao et al., "Scaling and evaluating sparse
  autoencoders", 2024): a learned linear encoder keeps its ``k`` largest pre-activations.

Both follow scikit-learn's estimator discipline: the constructor stores hyper-parameters,
:meth:`SparseDictionary.fit` sets ``components_`` (atoms as rows, ``n_atoms x n_features``),
``bias_``, ``usage_``, ``loss_history_`` and ``n_steps_``; :meth:`SparseDictionary.transform`
returns a SciPy CSR matrix of codes.

:class:`ControlWhitener` implements the pre-processing of Donhauser et al. (section 4):
subtract the control mean, whiten with the covariance of the controls only, scale to unit
norm. Nuisance directions that vary among unperturbed samples are shrunk; directions in which
perturbations differ from controls stand out.

This module imports torch; it imports no anndata, Panel or napari.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from workbench.models._checkpoint import deferred_interrupt, load_checkpoint, save_checkpoint
from workbench.models._device import make_generator, resolve_device, to_numpy


# ---------------------------------------------------------------------------- whitening
class ControlWhitener:
    """Centre on controls, whiten with the control covariance, scale to unit norm.

    The whitening is the symmetric (ZCA) form ``T(x) = V diag((lam + delta)^-1/2) V^T (x - mu)
    + (I - V V^T)(x - mu) / sqrt(delta)``, where ``mu`` is the control mean and ``V, lam`` the
    eigenvectors and eigenvalues of the control covariance. ``delta = shrinkage * mean(lam)``
    regularises it: screens often have fewer control samples than features (24 DMSO wells
    against 454 CellProfiler features on a LINCS plate, 158 cells against 6400 DeepProfiler
    dimensions), so the covariance is singular and directions the controls never visit must not
    be blown up. Because the ZCA form rotates back, the whitened space keeps the input's
    coordinates, and :meth:`inverse_direction` maps an atom back to input features.

    Parameters
    ----------
    whiten : bool
        False keeps only control centring and unit norm (the "no whitening" ablation).
    shrinkage : float
        Ridge ``delta`` added to every eigenvalue, as a fraction of the mean control
        eigenvalue; larger values whiten less.
    unit_norm : bool
        Scale every transformed sample to unit L2 norm.

    Attributes
    ----------
    mean_ : ndarray (d,)
        The control mean.
    components_ : ndarray (r, d)
        Eigenvectors of the control covariance with nonzero eigenvalues (none when
        ``whiten`` is False).
    eigenvalues_ : ndarray (r,)
        Their eigenvalues.
    delta_ : float
        The ridge actually added.
    n_controls_ : int
        Control rows the whitener was fitted on.
    """

    def __init__(self, whiten: bool = True, shrinkage: float = 0.1, unit_norm: bool = True):
        self.whiten = whiten
        self.shrinkage = shrinkage
        self.unit_norm = unit_norm

    def fit(self, controls: np.ndarray) -> ControlWhitener:
        """Fit the control mean and the eigen-decomposition of the control covariance.

        A thin SVD of the centred controls, so that no ``d x d`` matrix is formed when there
        are fewer controls than features.

        Parameters
        ----------
        controls : ndarray
            ``(n_controls, d)`` control samples, in the coordinates later given to
            :meth:`transform`.

        Returns
        -------
        ControlWhitener
            ``self``, fitted.
        """
        c = np.asarray(controls, dtype=np.float64)
        self.mean_ = c.mean(axis=0)
        self.n_controls_ = c.shape[0]
        d = c.shape[1]
        if not self.whiten:
            self.components_ = np.zeros((0, d))
            self.eigenvalues_ = np.zeros(0)
            self.delta_ = 1.0
            return self
        cc = c - self.mean_
        # thin SVD of the centred controls: n_c x d, never a d x d matrix
        _, s, vt = np.linalg.svd(cc, full_matrices=False)
        lam = s**2 / max(c.shape[0] - 1, 1)
        total = float(lam.sum()) / d  # mean eigenvalue over all d directions
        keep = lam > 1e-10 * max(float(lam.max(initial=0.0)), 1e-30)
        self.components_ = vt[keep]
        self.eigenvalues_ = lam[keep]
        self.delta_ = max(self.shrinkage * total, 1e-12)
        return self

    def fit_blocks(self, blocks) -> ControlWhitener:
        """Fit on control rows that arrive in blocks, with memory bounded by ``d x d``.

        The streaming form of :meth:`fit` for screens whose controls do not fit in memory
        (or are read from chunked Zarr): each block's mean and centred scatter matrix are
        merged into running ones with the pairwise update of Chan, Golub and LeVeque
        ("Algorithms for computing the sample variance", The American Statistician 37, 1983),
        which avoids the cancellation of summing raw squares. The eigen-decomposition of the
        merged covariance then gives the same whitener as :meth:`fit`'s SVD (to float
        tolerance). Memory: one ``d x d`` float64 matrix and one block.

        Parameters
        ----------
        blocks : iterable of ndarray
            An iterable of ``(rows, d)`` arrays of control samples (any row count, empty
            blocks allowed).

        Returns
        -------
        ControlWhitener
            ``self``, fitted.
        """
        n, mean, scatter, d = 0, None, None, None
        for block in blocks:
            b = np.asarray(block, dtype=np.float64)
            if b.ndim != 2:
                raise ValueError(f"blocks must be 2-D (rows x features), got shape {b.shape}")
            if d is None:
                d = b.shape[1]
                mean, scatter = np.zeros(d), np.zeros((d, d))
            elif b.shape[1] != d:
                raise ValueError(f"a block has {b.shape[1]} features; the first had {d}")
            nb = b.shape[0]
            if nb == 0:
                continue
            mb = b.mean(axis=0)
            cb = b - mb
            delta = mb - mean
            tot = n + nb
            if self.whiten:
                scatter += cb.T @ cb + np.outer(delta, delta) * (n * nb / tot)
            mean += delta * (nb / tot)
            n = tot
        if n == 0:
            raise ValueError("no control rows in the blocks: the whitener needs controls")
        self.mean_ = mean
        self.n_controls_ = n
        if not self.whiten:
            self.components_ = np.zeros((0, d))
            self.eigenvalues_ = np.zeros(0)
            self.delta_ = 1.0
            return self
        lam, vec = np.linalg.eigh(scatter / max(n - 1, 1))
        lam, vec = lam[::-1], vec[:, ::-1]
        total = float(lam.clip(min=0).sum()) / d
        # at most n - 1 directions carry variance; the rest of eigh's output is round-off
        keep = lam > 1e-10 * max(float(lam.max(initial=0.0)), 1e-30)
        keep[max(n - 1, 0):] = False
        self.components_ = np.ascontiguousarray(vec[:, keep].T)
        self.eigenvalues_ = lam[keep]
        self.delta_ = max(self.shrinkage * total, 1e-12)
        return self

    def _scales(self) -> tuple[np.ndarray, float]:
        base = 1.0 / math.sqrt(self.delta_)
        return 1.0 / np.sqrt(self.eigenvalues_ + self.delta_) - base, base

    def transform(self, x: np.ndarray, *, chunk: int = 32768) -> np.ndarray:
        """Whitened, unit-norm float32 rows of ``x``, computed ``chunk`` rows at a time.

        Memory beyond the float32 output stays at a few ``chunk x d`` float64 blocks, so a
        screen of a million profiles is never copied whole in float64.

        Parameters
        ----------
        x : ndarray
            ``(n, d)`` samples in the coordinates the whitener was fitted on.
        chunk : int
            Rows transformed at a time (memory only; the result does not depend on it).

        Returns
        -------
        ndarray
            ``(n, d)`` float32 whitened rows (unit norm when ``unit_norm``).
        """
        x = np.asarray(x)
        out = np.empty(x.shape, dtype=np.float32)
        step = max(int(chunk), 1)
        for s in range(0, x.shape[0], step):
            out[s:s + step] = self._transform_block(x[s:s + step])
        return out

    def _transform_block(self, x: np.ndarray) -> np.ndarray:
        xc = np.asarray(x, dtype=np.float64) - self.mean_
        if self.whiten:
            extra, base = self._scales()
            proj = xc @ self.components_.T
            xc = xc * base + (proj * extra) @ self.components_
        if self.unit_norm:
            norm = np.linalg.norm(xc, axis=1, keepdims=True)
            xc = xc / np.maximum(norm, 1e-12)
        return xc.astype(np.float32)

    def state_arrays(self) -> tuple[dict[str, np.ndarray], dict]:
        """The fitted whitener as arrays (float32) and settings: what a saved model holds.

        Returns
        -------
        arrays : dict of str to ndarray
            ``"mean"``, ``"components"`` and ``"eigenvalues"``, float32.
        settings : dict
            The constructor's settings plus the fitted ``"delta"`` and ``"n_controls"``.
        """
        arrays = {"mean": self.mean_.astype(np.float32),
                  "components": np.ascontiguousarray(self.components_, dtype=np.float32),
                  "eigenvalues": self.eigenvalues_.astype(np.float32)}
        settings = {"whiten": bool(self.whiten), "shrinkage": float(self.shrinkage),
                    "unit_norm": bool(self.unit_norm), "delta": float(self.delta_),
                    "n_controls": int(self.n_controls_)}
        return arrays, settings

    @classmethod
    def from_state(cls, arrays: dict, settings: dict) -> ControlWhitener:
        """Rebuild a fitted whitener from :meth:`state_arrays` output.

        Parameters
        ----------
        arrays : dict of str to ndarray
            The first value :meth:`state_arrays` returns.
        settings : dict
            The second value :meth:`state_arrays` returns.

        Returns
        -------
        ControlWhitener
            A fitted whitener that transforms as the saved one did.
        """
        wh = cls(whiten=bool(settings["whiten"]), shrinkage=float(settings["shrinkage"]),
                 unit_norm=bool(settings["unit_norm"]))
        wh.mean_ = np.asarray(arrays["mean"], dtype=np.float64)
        wh.components_ = np.asarray(arrays["components"], dtype=np.float64)
        wh.eigenvalues_ = np.asarray(arrays["eigenvalues"], dtype=np.float64)
        wh.delta_ = float(settings["delta"])
        wh.n_controls_ = int(settings["n_controls"])
        return wh

    def inverse_direction(self, directions: np.ndarray) -> np.ndarray:
        """Map directions of the whitened space back to input coordinates (unit norm rows).

        The inverse of the whitening's linear part, applied to directions (no centring):
        how an atom learned on whitened profiles reads in the input features.

        Parameters
        ----------
        directions : ndarray
            ``(k, d)`` directions in the whitened space (e.g. a dictionary's atoms).

        Returns
        -------
        ndarray
            ``(k, d)`` float32 unit-norm directions in the input coordinates.
        """
        w = np.asarray(directions, dtype=np.float64)
        if self.whiten:
            inv_extra = np.sqrt(self.eigenvalues_ + self.delta_) - math.sqrt(self.delta_)
            proj = w @ self.components_.T
            w = w * math.sqrt(self.delta_) + (proj * inv_extra) @ self.components_
        norm = np.linalg.norm(w, axis=1, keepdims=True)
        return (w / np.maximum(norm, 1e-12)).astype(np.float32)


# ---------------------------------------------------------------------------- metrics
def atom_recovery(learned: np.ndarray, planted: np.ndarray, threshold: float = 0.9,
                  signed: bool = False) -> tuple[float, np.ndarray]:
    """Fraction of planted atoms (rows) matched by a learned atom with cosine above threshold.

    Parameters
    ----------
    learned : ndarray
        ``(M, d)`` learned atoms (any norm).
    planted : ndarray
        ``(K, d)`` the true atoms (any norm).
    threshold : float
        Cosine a match must exceed.
    signed : bool
        Compare signed cosines; False (default) takes absolute cosines, so that an atom
        and its negative match.

    Returns
    -------
    fraction : float
        Share of planted atoms matched.
    best : ndarray
        ``(K,)`` each planted atom's best cosine (absolute unless ``signed``).
    """
    a = np.asarray(learned, dtype=np.float64)
    b = np.asarray(planted, dtype=np.float64)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    cos = b @ a.T
    best = (cos if signed else np.abs(cos)).max(axis=1)
    return float((best > threshold).mean()), best


def dead_fraction(codes) -> float:
    """Fraction of atoms (columns) that are zero on every sample of ``codes``.

    Parameters
    ----------
    codes : ndarray or scipy.sparse matrix
        ``(n, M)`` codes, samples by atoms.

    Returns
    -------
    float
        Share of the ``M`` atoms never used.
    """
    if sp.issparse(codes):
        used = np.asarray((codes != 0).sum(axis=0)).ravel()
    else:
        used = (np.asarray(codes) != 0).sum(axis=0)
    return float((used == 0).mean())


def r2_score(x: np.ndarray, x_hat: np.ndarray) -> float:
    """1 - SSE / total sum of squares around the column means (as scikit-learn's bench).

    Parameters
    ----------
    x : ndarray
        ``(n, d)`` data.
    x_hat : ndarray
        ``(n, d)`` its reconstruction.

    Returns
    -------
    float
        The R^2, 1 for a perfect reconstruction, 0 for the column means, negative when
        worse.
    """
    x = np.asarray(x, dtype=np.float64)
    sse = float(((x - np.asarray(x_hat, dtype=np.float64)) ** 2).sum())
    sst = float(((x - x.mean(axis=0)) ** 2).sum())
    return 1.0 - sse / max(sst, 1e-30)


# ---------------------------------------------------------------------------- shared loop
class SparseDictionary:
    """Base class: the minibatch loop, resampling, checkpoints and sparse transforms.

    Sub-classes define the torch module (``_build``), the encoder (``_encode``: a batch to
    ``(indices, values)`` of shape ``(B, k)``) and the training loss (``_loss``). Atoms are
    kept at unit norm after every step. Every ``resample_every`` steps atoms that duplicate
    another (cosine above ``duplicate_threshold``) or were never selected since the last check
    are re-initialised to the residual of a badly reconstructed sample (or a random direction
    with ``resample="random"``, the reset of Donhauser et al.), and their optimiser state is
    cleared.

    Parameters
    ----------
    n_atoms : int
        Dictionary size ``M``.
    batch_size : int
        Minibatch size (samples per optimiser step).
    max_steps : int
        Number of optimiser (Adam) steps.
    lr : float
        Adam learning rate.
    resample_every : int
        Steps between checks for duplicated and unused atoms; resampling stops after 80%
        of the steps.
    duplicate_threshold : float
        Cosine above which an atom counts as a duplicate of another.
    resample : str
        Source of a re-initialised atom: ``"residual"`` (the residual of a badly
        reconstructed sample) or ``"random"`` (a random direction).
    init : str
        ``"data"``: atoms start at random samples; ``"random"``: PyTorch's linear-layer
        init.
    fit_bias : bool
        Learn the pre-bias ``b`` (starts at the data mean); False keeps ``b = 0``.
    checkpoint_every : int
        Steps between checkpoints when :meth:`fit` is given a checkpoint path.
    device : str
        ``"auto"`` (CUDA, MPS, CPU) or a torch device name.
    seed : int, optional
        Seed of the model's own generator (initialisation, batches, resampling); ``None``
        draws a fresh one.
    progress : bool
        Show a tqdm progress bar while fitting.
    """

    kind = "dictionary"

    def __init__(self, n_atoms: int = 512, *, batch_size: int = 1024, max_steps: int = 2000,
                 lr: float = 1e-3, resample_every: int = 100, duplicate_threshold: float = 0.9,
                 resample: str = "residual", init: str = "data", fit_bias: bool = True,
                 checkpoint_every: int = 500, device: str = "auto", seed: int | None = 0,
                 progress: bool = True):
        self.n_atoms = n_atoms
        self.batch_size = batch_size
        self.max_steps = max_steps
        self.lr = lr
        self.resample_every = resample_every
        self.duplicate_threshold = duplicate_threshold
        self.resample = resample
        self.init = init
        self.fit_bias = fit_bias
        self.checkpoint_every = checkpoint_every
        self.device = device
        self.seed = seed
        self.progress = progress

    # -- to be provided by sub-classes
    def _build(self, n_features: int, x_init: torch.Tensor, gen: torch.Generator):
        raise NotImplementedError

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _loss(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    @property
    def sparsity(self) -> int:
        raise NotImplementedError

    # -- helpers shared by sub-classes
    def _decode(self, idx: torch.Tensor, val: torch.Tensor) -> torch.Tensor:
        """``b + sum_j val_j * atom[idx_j]``: gathered rows, so gradients reach used atoms."""
        # embedding's backward accumulates row gradients faster than indexing's index_put
        rows = torch.nn.functional.embedding(idx, self.module_.atoms)
        out = torch.einsum("bk,bkd->bd", val, rows)
        return out + self.module_.bias

    def _check_x(self, x) -> torch.Tensor:
        if sp.issparse(x):
            x = x.toarray()
        arr = to_numpy(x).astype(np.float32, copy=False)
        if arr.ndim != 2:
            raise ValueError(f"expected a 2-D array (samples x features), got shape {arr.shape}")
        if not np.isfinite(arr).all():
            raise ValueError("input holds NaN or infinite values")
        if hasattr(self, "n_features_") and arr.shape[1] != self.n_features_:
            raise ValueError(f"input has {arr.shape[1]} features; the dictionary was fitted "
                             f"on {self.n_features_}")
        return torch.from_numpy(np.ascontiguousarray(arr))

    # -- fitting
    def fit(self, x, y=None, *, checkpoint: str | os.PathLike | None = None,
            resume: bool = True, callback: Callable[[int, SparseDictionary], bool] | None = None,
            callback_every: int = 100) -> SparseDictionary:
        """Learn the dictionary from ``x`` (samples x features).

        Parameters
        ----------
        x : array_like
            ``(n, d)`` training samples (float32 is used).
        y : None
            Ignored; present for scikit-learn compatibility.
        checkpoint : str or os.PathLike, optional
            A file to save to every ``checkpoint_every`` steps (and on KeyboardInterrupt).
        resume : bool
            With a ``checkpoint`` that exists, load it and continue training where it
            stopped, bit for bit.
        callback : callable, optional
            ``callback(step, self)`` runs every ``callback_every`` steps (with
            ``components_`` up to date) and stops training when it returns True.
        callback_every : int
            Steps between calls of ``callback``.

        Returns
        -------
        SparseDictionary
            ``self``, fitted (``components_``, ``bias_``, ``usage_``, ``loss_history_``,
            ``n_steps_``).
        """
        from tqdm.auto import tqdm

        xt = self._check_x(x)
        n, d = xt.shape
        if n < 1:
            raise ValueError("no samples to fit")
        self.device_ = resolve_device(self.device)
        gen = make_generator(self.seed)   # its own generator: global RNGs stay untouched
        self.n_features_ = d
        big = xt.numel() * 4 > 2**31
        x_dev = xt if big else xt.to(self.device_)
        init_idx = torch.randint(0, n, (self.n_atoms,), generator=gen)
        self.module_ = self._build(d, xt[init_idx].to(self.device_), gen).to(self.device_)
        if self.fit_bias:
            self.module_.bias.data.copy_(xt.mean(0).to(self.device_))
        opt = torch.optim.Adam(self.module_.parameters(), lr=self.lr)
        usage = torch.zeros(self.n_atoms, device=self.device_)
        window = torch.zeros(self.n_atoms, device=self.device_)
        self.loss_history_ = []
        self.n_resampled_ = 0
        start = 0
        modules = {"model": self.module_, "optim": opt}
        if checkpoint is not None and resume and Path(checkpoint).is_file():
            state = load_checkpoint(checkpoint, modules=modules, generators={"batch": gen},
                                    map_location=self.device_, global_rng=False)
            start = state["step"]
            extra = state["extra"]
            self.loss_history_ = list(extra.get("loss_history", []))
            self.n_resampled_ = int(extra.get("n_resampled", 0))
            usage = torch.as_tensor(np.asarray(extra["usage"]), device=self.device_).float()
            window = torch.as_tensor(np.asarray(extra["window"]), device=self.device_).float()

        def save(step, gen_state):
            if checkpoint is not None:
                save_checkpoint(checkpoint, step=step, modules=modules,
                                generator_states={"batch": gen_state}, global_rng=False,
                                extra={"loss_history": self.loss_history_,
                                       "n_resampled": self.n_resampled_,
                                       "usage": to_numpy(usage).tolist(),
                                       "window": to_numpy(window).tolist()})

        bar = tqdm(total=self.max_steps, initial=start, disable=not self.progress,
                   desc=f"{self.kind} fit", leave=False)
        completed = start
        at_step = gen.get_state()   # generator state after ``completed`` steps
        try:
            for step in range(start, self.max_steps):
                idx = torch.randint(0, n, (min(self.batch_size, n),), generator=gen)
                xb = x_dev[idx].to(self.device_, non_blocking=True)
                opt.zero_grad(set_to_none=True)
                loss, used = self._loss(xb)
                loss.backward()
                done = step + 1
                with deferred_interrupt():   # a step lands whole or not at all
                    opt.step()
                    self._normalise()
                    counts = torch.bincount(used.reshape(-1), minlength=self.n_atoms).float()
                    usage += counts
                    window += counts
                    self.loss_history_.append(float(loss.detach()))
                    if (self.resample_every and done % self.resample_every == 0
                            and done <= 0.8 * self.max_steps):
                        self._resample(window, xb, opt, gen)
                        window.zero_()
                    completed = done
                    at_step = gen.get_state()
                bar.update(1)
                if checkpoint is not None and done % self.checkpoint_every == 0:
                    save(done, at_step)
                if callback is not None and done % callback_every == 0:
                    self._publish(usage, done)
                    if callback(done, self):
                        break
        except KeyboardInterrupt:
            save(completed, at_step)
            bar.close()
            raise
        bar.close()
        self._publish(usage, completed)
        if checkpoint is not None:
            save(completed, at_step)
        return self

    def _publish(self, usage: torch.Tensor, steps: int) -> None:
        self.components_ = to_numpy(self.module_.atoms).astype(np.float32)
        self.bias_ = to_numpy(self.module_.bias).astype(np.float32)
        total = float(usage.sum())
        self.usage_ = to_numpy(usage / max(total / max(self.sparsity, 1), 1.0))
        self.n_steps_ = int(steps)

    @torch.no_grad()
    def _normalise(self) -> None:
        atoms = self.module_.atoms
        atoms.div_(atoms.norm(dim=1, keepdim=True).clamp_min(1e-8))

    @torch.no_grad()
    def _resample(self, window: torch.Tensor, xb: torch.Tensor, opt, gen) -> None:
        atoms = self.module_.atoms
        m = atoms.shape[0]
        reset = torch.zeros(m, dtype=torch.bool, device=atoms.device)
        chunk = 2048
        for s in range(0, m, chunk):  # duplicates: reset the later atom of each close pair
            cos = atoms[s:s + chunk] @ atoms.T
            if self._abs_duplicates:
                cos = cos.abs()
            rows = torch.arange(s, min(s + chunk, m), device=atoms.device)
            cos[torch.arange(len(rows)), rows] = -2.0
            later = torch.arange(m, device=atoms.device)[None, :] > rows[:, None]
            dup = ((cos > self.duplicate_threshold) & later.logical_not()).any(dim=1)
            reset[rows[dup]] = True
        reset |= window == 0
        which = torch.nonzero(reset).ravel()
        if which.numel() == 0:
            return
        if self.resample == "random":
            new = torch.randn(which.numel(), atoms.shape[1], generator=gen).to(atoms.device)
        else:  # residuals of the worst-reconstructed samples of this batch
            idx, val = self._encode(xb)
            resid = xb - self._decode(idx, val)
            err = resid.pow(2).sum(1)
            pick = torch.multinomial((err + 1e-12).cpu(), which.numel(),
                                     replacement=which.numel() > len(err), generator=gen)
            new = resid[pick.to(atoms.device)]
            new = new + 0.01 * new.norm(dim=1, keepdim=True).mean() * torch.randn(
                new.shape, generator=gen).to(atoms.device) / math.sqrt(atoms.shape[1])
        atoms[which] = new / new.norm(dim=1, keepdim=True).clamp_min(1e-8)
        self._after_resample(which)
        for group in opt.param_groups:
            for p in group["params"]:
                state = opt.state.get(p, {})
                if p is atoms or self._rows_follow_atoms(p):
                    for key in ("exp_avg", "exp_avg_sq"):
                        if key in state:
                            state[key][which] = 0
        self.n_resampled_ += int(which.numel())

    _abs_duplicates = True

    def _after_resample(self, which: torch.Tensor) -> None:
        """Hook: e.g. the TopK encoder copies the new atoms into its rows."""

    def _rows_follow_atoms(self, p: torch.Tensor) -> bool:
        return False

    # -- saving and loading
    def get_params(self) -> dict:
        """The constructor's settings (scikit-learn style), enough to rebuild the model.

        Returns
        -------
        dict
            Every constructor parameter of the class and its bases, by name.
        """
        import inspect

        names: list[str] = []
        for klass in type(self).__mro__:
            if "__init__" in klass.__dict__ and klass is not object:
                names += [p for p in inspect.signature(klass.__init__).parameters
                          if p not in ("self", "kwargs")]
        return {n: getattr(self, n) for n in dict.fromkeys(names) if hasattr(self, n)}

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The fitted parameters (atoms, bias, and the encoder of an autoencoder), float32.

        Returns
        -------
        dict of str to ndarray
            The torch module's state, by parameter name (``"atoms"``, ``"bias"``, ...).
        """
        self._ready()
        return {k: to_numpy(v).astype(np.float32) for k, v in self.module_.state_dict().items()}

    @classmethod
    def from_state(cls, params: dict, arrays: dict, *, device: str = "auto") -> SparseDictionary:
        """A fitted dictionary rebuilt from :meth:`get_params` and :meth:`state_arrays`.

        Parameters
        ----------
        params : dict
            The constructor's settings, as :meth:`get_params` returns them.
        arrays : dict of str to ndarray
            The fitted parameters, as :meth:`state_arrays` returns them.
        device : str
            Device to load onto (replaces the saved setting).

        Returns
        -------
        SparseDictionary
            A fitted model of this class that encodes as the saved one did (its training
            history is not kept).
        """
        params = dict(params)
        params["device"] = device
        model = cls(**params)
        n_atoms, d = np.shape(arrays["atoms"])
        if n_atoms != model.n_atoms:
            raise ValueError(f"saved atoms have {n_atoms} rows; the settings say {model.n_atoms}")
        model.device_ = resolve_device(device)
        model.n_features_ = int(d)
        gen = make_generator(0)
        model.module_ = model._build(d, torch.zeros(n_atoms, d), gen)
        model.module_.load_state_dict({k: torch.from_numpy(np.asarray(v, dtype=np.float32))
                                       for k, v in arrays.items()})
        model.module_.to(model.device_)
        model.components_ = np.asarray(arrays["atoms"], dtype=np.float32)
        model.bias_ = np.asarray(arrays["bias"], dtype=np.float32)
        model.n_steps_ = 0
        model.loss_history_ = []
        model.n_resampled_ = 0
        return model

    # -- using a fitted dictionary
    def _batches(self, x, batch_size: int | None):
        xt = self._check_x(x)
        bs = batch_size or max(self.batch_size, 1)
        for s in range(0, xt.shape[0], bs):
            yield s, xt[s:s + bs].to(self.device_)

    def _ready(self) -> None:
        if not hasattr(self, "module_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(x) first")

    @torch.no_grad()
    def transform(self, x, *, batch_size: int | None = None, dense: bool = False):
        """Sparse codes of ``x``: a CSR matrix (samples x atoms), or dense with ``dense``.

        Parameters
        ----------
        x : array_like
            ``(n, d)`` samples with the features the dictionary was fitted on.
        batch_size : int, optional
            Samples encoded at a time; ``None`` uses the training ``batch_size``.
        dense : bool
            Return a dense array instead of a sparse matrix.

        Returns
        -------
        scipy.sparse.csr_matrix or ndarray
            ``(n, n_atoms)`` float32 codes.
        """
        self._ready()
        rows, cols, vals = [], [], []
        n = 0
        for s, xb in self._batches(x, batch_size):
            idx, val = self._encode(xb)
            b = xb.shape[0]
            rows.append(np.repeat(np.arange(s, s + b), idx.shape[1]))
            cols.append(to_numpy(idx).ravel())
            vals.append(to_numpy(val).astype(np.float32).ravel())
            n = s + b
        codes = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                              shape=(n, self.n_atoms)).tocsr()
        codes.sum_duplicates()
        codes.eliminate_zeros()
        return codes.toarray() if dense else codes

    @torch.no_grad()
    def reconstruct(self, x, *, batch_size: int | None = None) -> np.ndarray:
        """``b + codes @ components_`` for every sample of ``x``.

        Parameters
        ----------
        x : array_like
            ``(n, d)`` samples.
        batch_size : int, optional
            Samples at a time; ``None`` uses the training ``batch_size``.

        Returns
        -------
        ndarray
            ``(n, d)`` float32 reconstructions.
        """
        self._ready()
        out = []
        for _, xb in self._batches(x, batch_size):
            out.append(to_numpy(self._decode(*self._encode(xb))))
        return np.concatenate(out).astype(np.float32)

    def score(self, x) -> float:
        """Reconstruction R^2 of ``x`` (1 - SSE / SST around the column means).

        Parameters
        ----------
        x : array_like
            ``(n, d)`` samples.

        Returns
        -------
        float
            The R^2 of :func:`r2_score`.
        """
        return r2_score(self._check_x(x).numpy(), self.reconstruct(x))


__all__ = ["ControlWhitener", "SparseDictionary", "atom_recovery", "dead_fraction", "r2_score"]
