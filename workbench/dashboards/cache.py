"""A small read cache keyed on Study id and artefact version (STYLE item 9).

Dashboards read the same artefacts for every session and every click. Keying on object
identity (what ``pn.cache`` does for an AnnData) returns stale results after a step
rewrites an artefact, so here the key is ``study.cache_key(*artefacts)``: the Study id
plus the version of each artefact the value was computed from. Cached values are treated
as read-only by every caller: sessions share them, but never mutate them, so no mutable
state is shared between sessions.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

MAX_ENTRIES = 128
_CACHE: OrderedDict[tuple, Any] = OrderedDict()
_LOCK = threading.RLock()


def cached(study, artefacts: Sequence[str], label: str, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(study, *args)``, remembered under ``(label, study.cache_key(*artefacts), args)``.

    Parameters
    ----------
    study : Study
        The Study ``fn`` reads.
    artefacts : sequence of str
        The artefacts the result depends on; a new version of one of them is a new key.
    label : str
        Names the computation in the key.
    fn : callable
        Called as ``fn(study, *args)`` when the key is not cached.
    *args
        Further arguments of ``fn``; part of the key, so they must be hashable.

    Returns
    -------
    object
        The (shared, not to be mutated) result; the least recently used entries are evicted
        past ``MAX_ENTRIES``.
    """
    key = (label, study.cache_key(*artefacts), args)
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    value = fn(study, *args)
    with _LOCK:
        _CACHE[key] = value
        while len(_CACHE) > MAX_ENTRIES:
            _CACHE.popitem(last=False)
    return value


def clear() -> None:
    """Forget every cached result.

    """
    with _LOCK:
        _CACHE.clear()


def size() -> int:
    """The number of results in the cache.

    Returns
    -------
    int
        How many entries it holds.
    """
    return len(_CACHE)


class CachedReads:
    """A Study whose ``read``, ``read_obs`` and ``read_uns`` are remembered per artefact
    version (everything else goes to the Study). Summaries that read many artefacts (the
    gene card, the overview) use it so that choosing another gene reads nothing from disk
    again. What it returns is shared: callers must not mutate it.

    Parameters
    ----------
    study : Study
        The Study to read through.
    """

    def __init__(self, study):
        self._study = study

    def __getattr__(self, name):
        return getattr(self._study, name)

    def read(self, name: str):
        """:meth:`Study.read`, remembered per artefact version.

        Parameters
        ----------
        name : str
            The artefact's name.

        Returns
        -------
        object
            The artefact (shared; do not mutate it).
        """
        return cached(self._study, [name], "read", lambda s, n: s.read(n), name)

    def read_obs(self, name: str):
        """:meth:`Study.read_obs`, remembered per artefact version.

        Parameters
        ----------
        name : str
            An AnnData artefact's name.

        Returns
        -------
        pandas.DataFrame
            Its ``obs`` (shared; do not mutate it).
        """
        return cached(self._study, [name], "read_obs", lambda s, n: s.read_obs(n), name)

    def read_uns(self, name: str, *keys: str):
        """:meth:`Study.read_uns`, remembered per artefact version.

        Parameters
        ----------
        name : str
            An AnnData artefact's name.
        *keys : str
            The key path under ``uns["workbench"]``.

        Returns
        -------
        object
            The stored value (shared; do not mutate it).
        """
        return cached(self._study, [name], "read_uns", lambda s, n, *k: s.read_uns(n, *k),
                      name, *keys)
