"""The matrix a screen's analysis steps read: ``profiles.X``, an ``obsm`` entry, or the demo truth.

The interaction tests and the pair planner both read their samples through
:func:`load_profiles`, so a Study without profiles, or an ``obsm`` key that is not there, gets
the same clear error from either step.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.errors import MissingArtefactError, ValidationError

__all__ = ["load_profiles"]


def load_profiles(study, use: str | None = None) -> tuple[np.ndarray, pd.DataFrame, str]:
    """Matrix and obs of the samples: ``profiles.X`` (or ``obsm[use]``).

    ``use="latent"`` reads the simulator's true cell states (``images.obs["latent_*"]``)
    instead: a truth check for the demo world only, recorded as such in provenance. A Study
    without ``profiles`` is refused with the step to run (``workbench embed``).

    Parameters
    ----------
    study : Study
        The Study to read.
    use : str, optional
        ``None`` or ``"X"``: ``profiles.X``; an ``obsm`` key of ``profiles``; or
        ``"latent"``: the simulator's latent states.

    Returns
    -------
    X : numpy.ndarray
        ``(n, d)`` float32.
    obs : pandas.DataFrame
        A copy of the samples' metadata.
    source : str
        Where ``X`` came from, for provenance.
    """
    if use == "latent":
        study.require("images", why="use='latent' reads the simulator's latent states")
        obs = study.read("images").obs.copy()
        cols = [c for c in obs.columns if c.startswith("latent_")]
        if not cols:
            raise ValidationError("images.obs holds no latent_* columns: only a simulated demo "
                                  "Study has true latent states.",
                                  "run `workbench embed STUDY` and test the profiles instead.")
        return obs[cols].to_numpy(np.float32), obs, "images.obs[latent_*] (demo truth check)"
    if not study.has("profiles"):
        raise MissingArtefactError(
            "the Study has no 'profiles': the interaction step tests embedded profiles.",
            "run `workbench embed STUDY` first (or import profiles with `workbench import`).")
    adata = study.read("profiles")
    if use in (None, "X"):
        X, src = adata.X, "profiles.X"
    elif use in adata.obsm:
        X, src = adata.obsm[use], f"profiles.obsm[{use!r}]"
    else:
        raise ValidationError(f"profiles has no obsm[{use!r}] (it has {sorted(adata.obsm)}).",
                              "pass use='X' or one of the listed keys.")
    X = np.asarray(X.toarray() if hasattr(X, "toarray") else X, np.float32)
    return X, adata.obs.copy(), src
