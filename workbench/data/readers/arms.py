"""Chromosome-arm tables for the arm correction of CRISPR gene maps."""

from __future__ import annotations

import pandas as pd

from workbench.errors import ValidationError


def read_arm_table(path) -> tuple[dict, set]:
    """``(arms, unexpressed)`` for :func:`~workbench.tools.normalize.arm_centering` from a
    CSV with columns ``gene``, ``arm`` and ``expressed``.

    Parameters
    ----------
    path : str or path
        The table; ``expressed`` holds true/false (or 1/0, yes/no).

    Returns
    -------
    tuple of (dict, set)
        Gene -> arm, and the genes marked unexpressed.
    """
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise ValidationError(f"cannot read the arm table {str(path)!r}: {exc}",
                              "give a CSV file with columns gene, arm, expressed.") from exc
    missing = [c for c in ("gene", "arm", "expressed") if c not in table.columns]
    if missing:
        raise ValidationError(f"the arm table lacks the column(s) {missing}; it has "
                              f"{list(table.columns)[:8]}.",
                              "give columns gene, arm (e.g. 1p) and expressed (true/false).")
    words = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
    expressed = table["expressed"].astype(str).str.strip().str.lower().map(words)
    bad = table.loc[expressed.isna(), "expressed"].astype(str).unique()[:5]
    if len(bad):
        raise ValidationError(f"the arm table's expressed column has values {list(bad)}.",
                              "use true/false (or 1/0, yes/no).")
    genes = table["gene"].astype(str).to_numpy()
    arms = dict(zip(genes, table["arm"].astype(str)))
    return arms, set(genes[~expressed.to_numpy(bool)])
