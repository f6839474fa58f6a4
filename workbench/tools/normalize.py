"""Normalisation on controls (TVN), aggregation to perturbations, and cosine maps.

The idea: plates and batches shift every profile a little, and the only samples whose
biology we know to be "nothing happened" are the controls. So every normaliser here is
*fitted on controls only* and then applied to all samples (Ando et al. 2017, "Improving
phenotypic measurements in high-content imaging screens", the Typical Variation
Normalisation; Celik et al. 2024, "Building, benchmarking, and exploring perturbative maps",
PLoS Comput Biol, the EFAAR pipeline):

1. centre and scale each feature on the controls (per batch by default, so that an offset
   of a whole batch is removed; ``batch_center=False`` gives EFAAR's global version);
2. rotate onto the principal axes of the controls and divide each axis by its control
   standard deviation: controls now have identity covariance (a whitening). When controls
   are fewer than features, the control covariance is rank deficient, so a ridge ``reg``
   is added to its eigenvalues instead of dropping the unseen directions;
3. optionally, per batch, multiply by ``(C_b + reg I)^(-1/2)`` where ``C_b`` is that batch's
   control covariance (the "CORAL" step of EFAAR), which aligns batch-specific spreads.

Then profiles are averaged per perturbation (controls dropped) and compared by cosine.
Only numpy here; every function takes arrays and returns arrays.
"""

from __future__ import annotations

import numpy as np

from workbench.errors import ValidationError


def _as_float(X) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValidationError(f"profiles have shape {X.shape}; expected (samples, features).")
    return X


def _check_controls(is_control, n: int, min_count: int = 2, where: str = "") -> np.ndarray:
    mask = np.asarray(is_control, dtype=bool)
    if mask.shape != (n,):
        raise ValidationError(f"is_control has {mask.size} values for {n} profiles.")
    if mask.sum() < min_count:
        raise ValidationError(
            f"only {int(mask.sum())} control profile(s){where}; normalisation on controls "
            f"needs at least {min_count}.",
            "mark more control samples (is_control=True), or merge batches so that each has "
            "controls.")
    return mask


class TVN:
    """Typical Variation Normalisation fitted on controls (see the module docstring).

    Parameters
    ----------
    batch_center : bool
        Centre/scale each batch on its own controls (needs ``batch`` in fit/transform).
    coral : bool
        Add the per-batch covariance alignment after the whitening.
    reg : float or None
        Ridge added to the control-covariance eigenvalues. ``None``: half the mean eigenvalue
        when controls are fewer than twice the feature count, else ``1e-6`` times the largest.
    coral_reg : float
        Ridge added to each batch's control covariance in the CORAL step.
    """

    def __init__(self, batch_center: bool = True, coral: bool = False, reg: float | None = None,
                 coral_reg: float = 0.5):
        self.batch_center = batch_center
        self.coral = coral
        self.reg = reg
        self.coral_reg = coral_reg

    def _centre_scale(self, X, batch, fit: bool, is_control=None):
        if not self.batch_center or batch is None:
            if fit:
                c = X[is_control]
                self.mean_ = {None: c.mean(0)}
                self.std_ = {None: _safe_std(c)}
            return (X - self.mean_[None]) / self.std_[None]
        batch = np.asarray(batch).astype(str)
        out = np.empty_like(X)
        if fit:
            self.mean_, self.std_ = {}, {}
            glob_std = _safe_std(X[is_control])
            for b in np.unique(batch):
                c = X[(batch == b) & is_control]
                if len(c) == 0:
                    raise ValidationError(
                        f"batch {str(b)!r} has no controls, so it cannot be centred on them.",
                        "add its control samples, merge it into a batch with controls, or "
                        "normalise with batch_center=False.")
                self.mean_[b] = c.mean(0)
                self.std_[b] = _safe_std(c) if len(c) >= 3 else glob_std
        for b in np.unique(batch):
            if b not in self.mean_:
                raise ValidationError(f"batch {str(b)!r} was not seen when the normaliser was "
                                      "fitted.", "fit it on data that includes this batch.")
            m = batch == b
            out[m] = (X[m] - self.mean_[b]) / self.std_[b]
        return out

    def fit(self, X, is_control, batch=None) -> TVN:
        """Fit the normaliser on the controls of ``X``.

        Parameters
        ----------
        X : array_like
            ``(samples, features)`` profiles.
        is_control : array_like of bool
            Which samples are controls (at least two; each batch needs some when batch
            centring).
        batch : array_like, optional
            Batch label per sample.

        Returns
        -------
        TVN
            ``self``, with ``center_``, ``components_``, ``scale_``, ``reg_`` (and ``coral_``).
        """
        X = _as_float(X)
        ctrl = _check_controls(is_control, len(X))
        Z = self._centre_scale(X, batch, True, ctrl)
        C = Z[ctrl]
        self.center_ = C.mean(0)
        cov = np.cov(C - self.center_, rowvar=False).reshape(X.shape[1], X.shape[1])
        ev, vec = np.linalg.eigh(cov)
        ev, vec = ev[::-1].clip(min=0), vec[:, ::-1]
        reg = self.reg
        if reg is None:
            reg = 0.5 * float(ev.mean()) if ctrl.sum() < 2 * X.shape[1] else 1e-6 * float(ev.max())
        self.reg_ = float(reg)
        self.components_ = vec
        self.scale_ = np.sqrt(ev + self.reg_ + 1e-12)
        if self.coral:
            if batch is None:
                raise ValidationError("the CORAL step aligns batches, but no batch was given.",
                                      "pass the batch labels, or coral=False.")
            W = self._whiten(Z)
            batch = np.asarray(batch).astype(str)
            self.coral_ = {}
            for b in np.unique(batch):
                c = W[(batch == b) & ctrl]
                cb = np.cov(c, rowvar=False) if len(c) > 1 else np.zeros((W.shape[1],) * 2)
                e, v = np.linalg.eigh(cb + self.coral_reg * np.eye(W.shape[1]))
                self.coral_[b] = (v / np.sqrt(e)) @ v.T
        self.n_features_in_ = X.shape[1]
        return self

    def _whiten(self, Z):
        return ((Z - self.center_) @ self.components_) / self.scale_

    def transform(self, X, batch=None) -> np.ndarray:
        """Apply the fitted normaliser to any profiles of the seen batches.

        Parameters
        ----------
        X : array_like
            ``(samples, features)`` profiles.
        batch : array_like, optional
            Batch label per sample (needed when fitted with batches).

        Returns
        -------
        numpy.ndarray
            ``(samples, features)`` float32.
        """
        X = _as_float(X)
        if X.shape[1] != self.n_features_in_:
            raise ValidationError(f"profiles have {X.shape[1]} features; the normaliser was "
                                  f"fitted on {self.n_features_in_}.")
        W = self._whiten(self._centre_scale(X, batch, False))
        if self.coral:
            batch = np.asarray(batch).astype(str)
            out = np.empty_like(W)
            for b in np.unique(batch):
                m = batch == b
                out[m] = W[m] @ self.coral_[b]
            W = out
        return W.astype(np.float32)

    def fit_transform(self, X, is_control, batch=None) -> np.ndarray:
        """:meth:`fit` on the controls, then :meth:`transform` of every profile.

        Parameters
        ----------
        X : array_like
            ``(samples, features)`` profiles.
        is_control : array_like of bool
            Which samples are controls.
        batch : array_like, optional
            Batch label per sample.

        Returns
        -------
        numpy.ndarray
            ``(samples, features)`` float32.
        """
        return self.fit(X, is_control, batch).transform(X, batch)


def _safe_std(C: np.ndarray) -> np.ndarray:
    s = C.std(0, ddof=1) if len(C) > 1 else np.ones(C.shape[1])
    floor = max(float(np.median(s)) * 1e-3, 1e-8)
    return np.where(s > floor, s, 1.0)


def tvn(X, is_control, batch=None, **kw) -> np.ndarray:
    """Fit :class:`TVN` on the controls of ``X`` and return all profiles normalised.

    Parameters
    ----------
    X : array_like
        ``(samples, features)`` profiles.
    is_control : array_like of bool
        Which samples are controls (at least two).
    batch : array_like, optional
        Batch label per sample.
    **kw
        Options of :class:`TVN`.

    Returns
    -------
    numpy.ndarray
        ``(samples, features)`` float32.
    """
    return TVN(**kw).fit_transform(X, is_control, batch)


def standardize_on_controls(X, is_control, batch=None) -> np.ndarray:
    """Only step 1 of TVN (centre/scale on controls, per batch when given).

    Parameters
    ----------
    X : array_like
        ``(samples, features)`` profiles.
    is_control : array_like of bool
        Which samples are controls (at least two).
    batch : array_like, optional
        Batch label per sample; ``None``: centre and scale on all controls at once.

    Returns
    -------
    numpy.ndarray
        ``(samples, features)`` float32.
    """
    t = TVN(batch_center=batch is not None)
    X = _as_float(X)
    ctrl = _check_controls(is_control, len(X))
    return t._centre_scale(X, batch, True, ctrl).astype(np.float32)


def aggregate(X, keys, *, how: str = "mean", drop=()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One profile per key (mean or median); returns ``(keys, profiles, counts)``.

    Parameters
    ----------
    X : array_like
        ``(samples, features)`` profiles.
    keys : array_like
        The group of each sample (compared as strings).
    how : str
        ``"mean"`` or ``"median"``.
    drop : sequence
        Keys left out (e.g. the control label).

    Returns
    -------
    keys : numpy.ndarray
        The sorted unique keys kept.
    profiles : numpy.ndarray
        ``(len(keys), features)`` float32.
    counts : numpy.ndarray
        Samples per key.
    """
    X = np.asarray(X, dtype=np.float64)
    keys = np.asarray(keys).astype(str)
    uniq, inv, counts = np.unique(keys, return_inverse=True, return_counts=True)
    if how == "mean":
        out = np.zeros((len(uniq), X.shape[1]))
        np.add.at(out, inv, X)
        out /= counts[:, None]
    elif how == "median":
        out = np.stack([np.median(X[inv == i], 0) for i in range(len(uniq))])
    else:
        raise ValidationError(f"unknown aggregation {how!r}.", "use 'mean' or 'median'.")
    keep = ~np.isin(uniq, [str(d) for d in drop])
    return uniq[keep], out[keep].astype(np.float32), counts[keep]


def cosine_matrix(A, B=None) -> np.ndarray:
    """Cosine similarity between the rows of ``A`` (and ``B``); zero rows give 0.

    Parameters
    ----------
    A : array_like
        ``(n, d)`` rows.
    B : array_like, optional
        ``(m, d)`` rows; ``None``: ``A`` against itself.

    Returns
    -------
    numpy.ndarray
        ``(n, m)`` (or ``(n, n)``) float32.
    """
    def unit(M):
        M = np.asarray(M, dtype=np.float64)
        n = np.linalg.norm(M, axis=1, keepdims=True)
        return M / np.where(n > 0, n, 1.0)

    a = unit(A)
    return (a @ (a if B is None else unit(B)).T).astype(np.float32)


#: Aggregation levels from the finest to the coarsest, and the obs columns that key each.
LEVELS = {"crop": (), "cell": ("plate", "well", "cell_id"), "well": ("plate", "well"),
          "perturbation": ("perturbation",)}


def aggregate_obs(obs, level: str, *, dose_key: str | None = None, keep=None):
    """Group keys of ``obs`` rows at ``level`` (crop -> cell -> well -> perturbation).

    Parameters
    ----------
    obs : pandas.DataFrame
        One row per crop, with the columns of :data:`LEVELS` for ``level``.
    level : str
        A key of :data:`LEVELS`.
    dose_key : str, optional
        An obs column (e.g. ``dose``) that splits a perturbation by dose at the perturbation
        level.
    keep : array_like of bool, optional
        Rows to keep (e.g. the QC mask); ``None``: all.

    Returns
    -------
    codes : numpy.ndarray
        ``codes[i]`` is the group of row ``i`` (-1 when the row is filtered out by ``keep``);
        groups are numbered in order of first appearance.
    group_obs : pandas.DataFrame
        One row per group with the columns that are constant within every group and
        ``n_crops``.
    """
    import pandas as pd

    if level not in LEVELS:
        raise ValidationError(f"unknown aggregation level {level!r}.", f"use one of {list(LEVELS)}.")
    cols = list(LEVELS[level]) + ([dose_key] if dose_key and level == "perturbation" else [])
    missing = [c for c in cols if c not in obs.columns]
    if missing:
        raise ValidationError(f"aggregating to the {level} level needs obs column(s) {missing}.",
                              "add them to the screen table, or choose another level.")
    keep = np.ones(len(obs), bool) if keep is None else np.asarray(keep, bool)
    if not keep.any():
        raise ValidationError("the QC filter removed every sample.", "loosen the QC thresholds.")
    if not cols:
        codes = np.where(keep, np.cumsum(keep) - 1, -1)
        out = obs[keep].copy()
        out["n_crops"] = 1
        return codes, out
    key = obs[cols].astype(str).agg("|".join, axis=1).to_numpy()
    uniq, first = np.unique(key[keep], return_index=True)
    order = np.argsort(first)            # groups in order of first appearance
    uniq = uniq[order]
    lookup = {k: i for i, k in enumerate(uniq)}
    codes = np.array([lookup[k] if m else -1 for k, m in zip(key, keep)])
    sub = obs[keep].assign(_g=codes[keep])
    constant = [c for c in obs.columns if sub.groupby("_g", observed=True)[c].nunique(dropna=False)
                .max() <= 1]
    out = sub.drop_duplicates("_g").set_index("_g").sort_index()[constant]
    out.index = pd.Index(uniq, name=None).str.replace("|", "_", regex=False)
    out["n_crops"] = np.bincount(codes[keep], minlength=len(uniq)).astype(int)
    return codes, out


def aggregate_rows(X, codes, n_groups: int, how: str = "mean") -> np.ndarray:
    """Mean or median of the rows of ``X`` (any trailing shape) per group code (-1 dropped).

    Parameters
    ----------
    X : array_like
        ``(n, ...)`` rows.
    codes : array_like of int
        Group of each row (:func:`aggregate_obs`); -1 rows are dropped.
    n_groups : int
        Number of groups.
    how : str
        ``"mean"`` or ``"median"``.

    Returns
    -------
    numpy.ndarray
        ``(n_groups, ...)`` float32.
    """
    X = np.asarray(X)
    codes = np.asarray(codes)
    out = np.zeros((n_groups, *X.shape[1:]), dtype=np.float64)
    if how == "mean":
        keep = codes >= 0
        np.add.at(out, codes[keep], X[keep])
        out /= np.bincount(codes[keep], minlength=n_groups).reshape(-1, *[1] * (X.ndim - 1))
    elif how == "median":
        for g in range(n_groups):
            out[g] = np.median(X[codes == g], 0)
    else:
        raise ValidationError(f"unknown aggregation {how!r}.", "use 'mean' or 'median'.")
    return out.astype(np.float32)


def qc_mask(obs, intensity=None, *, max_intensity_z: float | None = None,
            exclude_column: str | None = None) -> tuple[np.ndarray, dict]:
    """Rows that pass QC: not flagged in ``exclude_column`` (e.g. crops with no cell) and,
    given per-crop mean ``intensity``, within ``max_intensity_z`` robust z-scores (median
    and MAD) of it.

    Parameters
    ----------
    obs : pandas.DataFrame
        One row per crop.
    intensity : array_like of float, optional
        Mean intensity per crop.
    max_intensity_z : float, optional
        Largest robust z-score kept; ``None``: no intensity filter.
    exclude_column : str, optional
        A boolean obs column whose true rows are dropped.

    Returns
    -------
    mask : numpy.ndarray of bool
        The rows kept.
    report : dict
        ``n_in``, ``n_kept`` and the counts removed by each filter.
    """
    keep = np.ones(len(obs), bool)
    report = {"n_in": int(len(obs))}
    if exclude_column:
        if exclude_column not in obs.columns:
            raise ValidationError(f"QC column {exclude_column!r} is not in the screen table.",
                                  f"choose one of {list(obs.columns)[:12]}.")
        flag = obs[exclude_column].astype(bool).to_numpy()
        keep &= ~flag
        report["excluded_by_column"] = int(flag.sum())
    if max_intensity_z is not None and intensity is not None:
        v = np.asarray(intensity, dtype=np.float64)
        mad = 1.4826 * np.median(np.abs(v - np.median(v))) or 1.0
        z = np.abs(v - np.median(v)) / mad
        report["excluded_by_intensity"] = int(np.sum(keep & (z > max_intensity_z)))
        keep &= z <= max_intensity_z
    report["n_kept"] = int(keep.sum())
    return keep, report


def arm_centering(P, genes, arms: dict, unexpressed, *, min_genes: int = 20) -> tuple[np.ndarray, dict]:
    """Chromosome-arm correction of a CRISPR gene map (Lazar et al. 2024, Nat Genet,
    "High-resolution genome-wide mapping of chromosome-arm-scale truncations induced by
    CRISPR-Cas9 editing"; EFAAR's ``proxbias`` arm centring).

    Cutting a gene can truncate its chromosome arm, so genes of one arm look alike. For
    every arm with more than ``min_genes`` *unexpressed* genes (whose knockout should do
    nothing but the truncation), their mean profile is subtracted from every gene of that
    arm. Genes with no arm, or on arms with too few unexpressed genes, are left as they are.

    Parameters
    ----------
    P : array_like
        ``(genes, features)`` gene map.
    genes : array_like of str
        The gene of each row.
    arms : dict of str to str
        Gene -> arm (e.g. ``"1p"``).
    unexpressed : collection of str
        The unexpressed genes.
    min_genes : int
        An arm is centred only with more unexpressed genes than this.

    Returns
    -------
    corrected : numpy.ndarray
        The corrected map, float32.
    used : dict of str to int
        ``{arm: n_unexpressed}`` for the arms that were centred.
    """
    P = np.asarray(P, dtype=np.float64).copy()
    genes = np.asarray(genes).astype(str)
    arm_of = np.array([str(arms.get(g, "")) for g in genes])
    off = np.isin(genes, [str(g) for g in unexpressed])
    used = {}
    for arm in sorted(set(arm_of) - {""}):
        on = arm_of == arm
        k = int(np.sum(on & off))
        if k > min_genes:
            P[on] -= P[on & off].mean(0)
            used[arm] = k
    return P.astype(np.float32), used


def normalized(X, is_control, batch=None, *, tvn: bool = True, **kw) -> np.ndarray:
    """TVN of ``X`` on its controls, or (``tvn=False``) the raw features as float32.

    Parameters
    ----------
    X : array_like
        ``(samples, features)`` profiles.
    is_control : array_like of bool
        Which samples are controls.
    batch : array_like, optional
        Batch label per sample; ``None`` turns batch centring off (and CORAL needs it).
    tvn : bool
        Normalise; ``False`` returns ``X`` as float32.
    **kw
        Options of :class:`TVN`.

    Returns
    -------
    numpy.ndarray
        ``(samples, features)`` float32.
    """
    if not tvn:
        return np.asarray(X, dtype=np.float32)
    kw = {"batch_center": batch is not None, **kw}
    if not kw["batch_center"]:
        batch = None if not kw.get("coral") else batch
    return TVN(**kw).fit_transform(X, is_control, batch)
