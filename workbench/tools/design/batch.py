"""The batch every planner of the design layer proposes."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

__all__ = ["Batch"]


@dataclass
class Batch:
    """A proposed batch, as every planner of the design layer returns it.

    Parameters
    ----------
    kind : str
        The planner that proposed it (``"screen"``, ``"hits"``, ``"knockout"``, ...).
    policy : str
        The policy the planner used.
    table : pandas.DataFrame
        One row per proposed candidate: ``candidate``, ``rank``, ``score``, ``reason``.
    info : dict
        The planner's summary (for a screen: the certified bound and whether to stop); empty
        by default.
    """

    kind: str
    policy: str
    table: pd.DataFrame
    info: dict = field(default_factory=dict)

    @property
    def candidates(self) -> list[str]:
        return self.table["candidate"].tolist()
