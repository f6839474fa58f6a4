"""Write transactions of a Study: stage, check, swap into place, rewrite ``study.json`` last.

A :class:`Transaction` is what :meth:`workbench.data.study.Study.step` yields. Artefacts are
written under ``.staging/<id>/new/`` (the folder is owned by this process through a lock, see
:mod:`workbench.data._store`) and checked against their declared schema
(:mod:`workbench.data.artefacts`). :meth:`Transaction.commit` then takes the Study's lock,
refuses if an artefact the step read or writes changed since the step started (optimistic
concurrency on artefact versions), writes a journal, moves each staged artefact to the path
of its new generation (renames, atomic on one file system) and each removed one aside, and
rewrites ``study.json`` (temporary file, then :func:`os.replace`): that rewrite is the commit
point. A swap that fails part way is put back at once; one cut short by a dead process is
put back by :func:`~workbench.data._store.recover` the next time the Study is opened.

Generations: a rewritten artefact's new files go to a path of their own
(:func:`generation_path`: ``grn.zarr``, then ``grn.v2.zarr``, ...), and the generation it
replaces stays on disk as the entry's ``previous`` until the next commit of that artefact
removes it. A reader that opened the Study before the commit (a served page, a notebook,
a lazy Zarr array) therefore keeps reading one whole generation, never the new files under
the old version's name; only a reader two commits behind finds its generation gone, and is
told so (:class:`~workbench.errors.StudyChangedError`) when it reads through
:meth:`~workbench.data.study.Study.read`. A lazy Zarr array kept across two rewrites is not
told: Zarr reads a missing chunk as its fill value. Re-open arrays with ``study.read``
rather than keeping them (the dashboards do).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import shutil
import uuid
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from workbench.data._store import (
    OWNER_LOCK,
    RESERVED,
    STAGING,
    STUDY_FILE,
    OwnerLock,
    _roll_back,
    cleanup_staging_root,
    inside,
    remove,
    study_lock,
    writer_lock,
)
from workbench.data._meta import KINDS, _version, load_meta as _load_meta  # noqa: F401
from workbench.data._store import recover as _recover
from workbench.data.schema import validate_matrix, validate_screen_obs
from workbench.errors import StudyConflictError, StudyCorruptError, ValidationError

if TYPE_CHECKING:
    from workbench.data.study import Study

#: Artefacts whose ``obs`` must follow the screen contract of :mod:`workbench.data.schema`.
SCREEN_ARTEFACTS = ("profiles",)


@contextlib.contextmanager
def quiet_zarr():
    """Silence zarr's notices about its future defaults (the Study pins its own formats).

    Yields
    ------
    None
        While the notices are filtered.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="zarr v3 autosharding")
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        yield


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def checksum(path: str | os.PathLike) -> str:
    """SHA-256 over a file, or over every file of a directory (sorted relative paths).

    Parameters
    ----------
    path : str or os.PathLike
        A file or a directory.

    Returns
    -------
    str
        The hex digest.
    """
    path = Path(path)
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if path.is_dir():
            h.update(f.relative_to(path).as_posix().encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=2, default=_json_default)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def _swap(src: Path, dst: Path) -> None:
    """Move one artefact (file or folder) into place; a rename, atomic on one filesystem."""
    os.replace(src, dst)


def generation_path(filename: str, version: int, taken: set, txid: str) -> str:
    """The path of generation ``version`` of an artefact staged as ``filename``.

    The first generation keeps the plain name (``grn.zarr``); later ones carry their
    version (``grn.v4.zarr``), so that a new generation never replaces the files of the one
    a reader may still be reading. A name that a generation the Study still names already
    uses (an unusual ``file`` name) gets the transaction id as well.

    Parameters
    ----------
    filename : str
        The staged file name (``grn.zarr``).
    version : int
        The new generation's version.
    taken : set of str
        Paths of the generations the Study still names (the current and the previous).
    txid : str
        The committing transaction's id.

    Returns
    -------
    str
        The path, relative to the Study folder.
    """
    stem, dot, suffix = filename.partition(".")
    path = filename if version <= 1 else f"{stem}.v{version}{dot}{suffix}"
    if path in taken:
        path = f"{stem}.v{version}-{txid[-8:]}{dot}{suffix}"
    return path


def expire_generations(root: Path, paths: list) -> None:
    """Remove generations no entry of ``study.json`` names any more (after a commit).

    Parameters
    ----------
    root : pathlib.Path
        The Study folder.
    paths : list of str
        The generations' paths, relative to it (each checked to stay inside it).
    """
    for rel in paths:
        remove(inside(root, rel, what="the path of a previous generation"))


_remove = remove
_cleanup_staging_root = cleanup_staging_root
_lock = study_lock


def _new_txid() -> str:
    return f"{_dt.datetime.now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


class Transaction:
    """Artefacts staged by one step; made visible all at once by :meth:`commit`.

    The artefact versions the Study object held when the step began are the versions the
    step read: provenance records their checksums, and the commit is refused if one of these
    inputs changed since, or if an artefact the step writes was committed by another step
    while this one ran. Re-running a step on a Study object that is merely out of date
    replaces the outputs it does not read.

    Parameters
    ----------
    study : Study
        The Study the step reads through; the versions it holds are the step's inputs.
    tool : str
        The step's name, recorded in provenance.
    params : dict
        The step's parameters, recorded in provenance.
    seed : int or None
        The step's seed, recorded in provenance; None for a step without randomness.
    inputs : list
        Names of the artefacts the step reads (their checksums go into provenance).
    outputs : list or None
        Names of the artefacts it will write: their writer locks are taken now, so that a
        second step writing one of them fails at once. None takes them when staged.
    """

    def __init__(self, study: Study, tool: str, params: dict, seed: int | None, inputs: list,
                 outputs: list | None = None):
        self.study = study
        self.tool = tool
        self.params = params
        self.seed = seed
        self.inputs = list(inputs)
        self.txid = _new_txid()
        self.started = _now()

        def versions(meta):
            return {name: (int(e.get("version", 0)), e.get("sha256"))
                    for name, e in meta["artefacts"].items()}

        # what the step read: the versions of the Study object it reads through
        self.base = versions(study.meta)
        # what is on disk now: an output written meanwhile by another step is not overwritten
        self.at_start = versions(_load_meta(study.path))
        self.staged: dict[str, dict[str, Any]] = {}
        self.removed: list[str] = []
        self.meta_updates: dict[str, Any] = {}
        self.notes: dict[str, Any] = {}
        self._writer_locks: dict[str, Any] = {}
        self._owner = None
        root = study.path
        self.dir = root / STAGING / self.txid
        with study_lock(root):  # recovery cannot see a half-made staging folder
            st = root / STAGING
            if st.is_symlink():
                raise StudyCorruptError(f"{st} is a link.", f"remove the link {st}.")
            (self.dir / "new").mkdir(parents=True)
            self._owner = OwnerLock(self.dir / OWNER_LOCK, self._holder())
        try:
            for name in outputs or []:
                self._claim(name)
        except BaseException:
            self.discard()
            raise

    def _holder(self) -> dict:
        return {"tool": self.tool, "pid": os.getpid(), "started": self.started,
                "transaction": self.txid}

    def _claim(self, name: str) -> None:
        if name not in self._writer_locks:
            self._writer_locks[name] = writer_lock(self.study.path, name, self._holder())

    # -- staging
    def stage_path(self, name: str, kind: str, filename: str | None = None) -> Path:
        """A path under staging to write artefact ``name`` into yourself (streaming writes).

        Parameters
        ----------
        name : str
            The artefact's name (letters, digits, ``-`` and ``_``).
        kind : str
            Its kind (``"anndata"``, ``"table"``, ``"array"``, ``"images"``, ``"json"``,
            ``"file"``).
        filename : str or None
            Its file name in the Study; None uses ``name`` and the kind's suffix.

        Returns
        -------
        pathlib.Path
            The staging path (emptied), to write into.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown artefact kind {kind!r}; use one of {sorted(KINDS)}")
        if not name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"artefact name {name!r} must be letters, digits, - or _")
        filename = filename or f"{name}{KINDS[kind]}"
        if "/" in filename or "\\" in filename or filename in RESERVED \
                or filename.startswith(".") or filename in ("..", ""):
            raise ValueError(f"artefact file name {filename!r} must be a plain name")
        self._claim(name)
        p = self.dir / "new" / filename
        _remove(p)
        self.staged[name] = {"kind": kind, "path": filename}
        return p

    def describe(self, name: str, **info: Any) -> None:
        """Attach small facts (shapes, column names) shown by ``workbench info``.

        Parameters
        ----------
        name : str
            A staged artefact's name.
        **info
            The facts, stored with the artefact's entry in ``study.json``.
        """
        self.staged[name].setdefault("shape_info", {}).update(info)

    def write_anndata(self, name: str, adata, *, screen: bool | None = None,
                      description: str | None = None) -> Path:
        """Stage an AnnData as Zarr, after checking it against the artefact's schema.

        Parameters
        ----------
        name : str
            The artefact's name.
        adata : anndata.AnnData
            The data.
        screen : bool or None
            Check ``obs`` against the screen contract; None does so for the screen artefacts.
        description : str or None
            One line shown by ``workbench info``.

        Returns
        -------
        pathlib.Path
            The staging path written.

        Raises
        ------
        ValidationError
            When columns differ only in case, the screen table or a matrix is invalid, or the
            schema is not met.
        """
        import anndata as ad

        from workbench.data.artefacts import check_anndata

        screen = name in SCREEN_ARTEFACTS if screen is None else screen
        for frame, label in ((adata.obs, "obs"), (adata.var, "var")):
            lowered = pd.Index([str(c).lower() for c in frame.columns])
            dups = sorted({str(c) for c, d in zip(frame.columns, lowered.duplicated(keep=False))
                           if d})
            if dups:
                raise ValidationError(
                    f"{name}.{label} has columns that differ only in case: {dups}; such an "
                    "AnnData is written to Zarr but cannot be read back.",
                    "drop or rename one of each pair before writing.")
        if screen:
            validate_screen_obs(adata.obs, self.study.control_label, where=f"{name}.obs")
        if adata.n_vars:
            validate_matrix(adata.X, where=f"{name}.X")
        for key, val in adata.obsm.items():
            if isinstance(val, np.ndarray):
                validate_matrix(val, where=f"{name}.obsm[{key!r}]")
        check_anndata(name, adata, writer=self.tool)
        p = self.stage_path(name, "anndata")
        with quiet_zarr(), ad.settings.override(zarr_write_format=3):
            adata.write_zarr(p)
        self.describe(name, n_obs=int(adata.n_obs), n_vars=int(adata.n_vars),
                      obsm=sorted(adata.obsm.keys()), layers=sorted(adata.layers.keys()))
        if description:
            self.describe(name, description=description)
        return p

    def write_table(self, name: str, df: pd.DataFrame, *, description: str | None = None) -> Path:
        """Stage a long table as Parquet, after checking it against the artefact's schema.

        Parameters
        ----------
        name : str
            The artefact's name.
        df : pandas.DataFrame
            The table.
        description : str or None
            One line shown by ``workbench info``.

        Returns
        -------
        pathlib.Path
            The staging path written.
        """
        from workbench.data.artefacts import check_table

        if not isinstance(df, pd.DataFrame):
            raise ValidationError(f"{name}: expected a pandas DataFrame, got {type(df).__name__}.")
        check_table(name, df, writer=self.tool)
        p = self.stage_path(name, "table")
        df.to_parquet(p)
        self.describe(name, n_rows=int(len(df)), columns=[str(c) for c in df.columns][:30])
        if description:
            self.describe(name, description=description)
        return p

    def write_array(self, name: str, arr, *, chunks=None, attrs: dict | None = None) -> Path:
        """Stage an n-d array as a Zarr array with optional attributes.

        Parameters
        ----------
        name : str
            The artefact's name.
        arr : array-like
            The array.
        chunks : tuple of int or None
            Zarr chunk shape; None lets Zarr choose.
        attrs : dict or None
            Attributes stored with the array (JSON-able; numpy values converted).

        Returns
        -------
        pathlib.Path
            The staging path written.
        """
        import zarr

        from workbench.data.artefacts import check_array

        arr = np.asarray(arr)
        check_array(name, arr, attrs or {}, writer=self.tool)
        p = self.stage_path(name, "array")
        with quiet_zarr():
            z = zarr.create_array(store=str(p), shape=arr.shape, dtype=arr.dtype,
                                  chunks=chunks or "auto")
            z[...] = arr
        if attrs:
            z.attrs.update(json.loads(json.dumps(attrs, default=_json_default)))
        self.describe(name, shape=list(arr.shape), dtype=str(arr.dtype))
        return p

    def write_json(self, name: str, data: dict) -> Path:
        """Stage a JSON document, after checking it against the artefact's schema.

        Parameters
        ----------
        name : str
            The artefact's name.
        data : dict
            The document (numpy values converted).

        Returns
        -------
        pathlib.Path
            The staging path written.
        """
        from workbench.data.artefacts import check_json

        check_json(name, data, writer=self.tool)
        p = self.stage_path(name, "json")
        p.write_text(json.dumps(data, indent=2, default=_json_default))
        return p

    def write_file(self, name: str, source: str | os.PathLike, filename: str) -> Path:
        """Stage a copy of a plain file (e.g. a relationship annotation CSV).

        Parameters
        ----------
        name : str
            The artefact's name.
        source : str or os.PathLike
            The file to copy.
        filename : str
            Its file name in the Study.

        Returns
        -------
        pathlib.Path
            The staging path written.
        """
        p = self.stage_path(name, "file", filename)
        shutil.copyfile(source, p)
        return p

    def write_images(self, name: str, crops, obs: pd.DataFrame, channel_names, **kw) -> Path:
        """Stage an image store; see :func:`workbench.data.images.write_image_store`.

        Parameters
        ----------
        name : str
            The artefact's name.
        crops : array-like or iterable of array-like
            The crops, ``(n, C, H, W)``, or batches of them.
        obs : pandas.DataFrame
            One row per crop.
        channel_names : sequence of str
            One name per channel.
        **kw
            Passed to :func:`~workbench.data.images.write_image_store` (``masks``,
            ``pixel_size_um``, ``channel_colors``, ``chunk_size``, ``dtype``).

        Returns
        -------
        pathlib.Path
            The staging path written.
        """
        from workbench.data.images import write_image_store

        p = self.stage_path(name, "images")
        with quiet_zarr():
            info = write_image_store(p, crops, obs, channel_names, **kw)
        self.describe(name, **info)
        return p

    def remove(self, name: str) -> None:
        """Drop an artefact from the Study when this transaction commits.

        Parameters
        ----------
        name : str
            The artefact's name; the Study must hold it.
        """
        self.study.require(name)
        self._claim(name)
        self.removed.append(name)

    def set_meta(self, key: str, value: Any) -> None:
        """Set a top-level ``study.json`` field (not artefacts or provenance).

        Parameters
        ----------
        key : str
            The field (for example ``control_label`` or ``title``).
        value : object
            Its new value (JSON-able).
        """
        if key in ("artefacts", "provenance", "schema_version", "study_id", "last_transaction",
                   "retired_versions"):
            raise ValueError(f"{key!r} is managed by the Study itself")
        self.meta_updates[key] = value

    def note(self, **facts: Any) -> None:
        """Record facts about the run (metrics, timings) in this step's provenance entry."""
        self.notes.update(facts)

    # -- finishing
    def _release(self) -> None:
        """Drop this process's locks (what the kernel does when a process dies)."""
        for lock in self._writer_locks.values():
            lock.release()
        self._writer_locks.clear()
        if self._owner is not None:
            self._owner.release()
            self._owner = None

    def discard(self) -> None:
        """Forget everything staged; the Study stays exactly as it was."""
        try:
            _remove(self.dir)
            with study_lock(self.study.path):  # never while another step makes its folder
                _cleanup_staging_root(self.study.path)
        finally:
            self._release()

    def _check_conflicts(self, meta: dict) -> None:
        now = {n: int(e.get("version", 0)) for n, e in meta["artefacts"].items()}
        for name in dict.fromkeys([*self.inputs, *self.staged, *self.removed]):
            base = self.base if name in self.inputs else self.at_start
            read = base.get(name, (0, None))[0]
            if now.get(name, 0) != read:
                entry = meta["artefacts"].get(name, {})
                by = f" by step {entry.get('step')!r} at {entry.get('written')}" if entry else ""
                role = "read" if name in self.inputs else "writes"
                raise StudyConflictError(
                    f"artefact {name!r}, which step {self.tool!r} {role}, changed while it ran "
                    f"(version {read} when the step started, now version {now.get(name, 0)}"
                    f"{by}). Nothing was written, so that other result is kept.",
                    "run the step again: it will start from the current version (in Python, "
                    "call study.refresh() first).")

    def commit(self) -> None:
        """Swap the staged artefacts in and append the provenance entry, all at once.

        Under the Study lock: refuse if an input or an output changed since the step began,
        journal the swap, move the artefacts into place (rolling back on failure), then write
        ``study.json``. :meth:`Study.step` calls it when the step's block ends without error.
        """
        study = self.study
        root = study.path

        # checksums of the staged artefacts (folder checksums use relative paths, so they
        # equal those of the artefacts once moved into place), before any lock is taken
        digests = {name: checksum(self.dir / "new" / e["path"]) for name, e in self.staged.items()}
        try:
            with study_lock(root):
                meta = _load_meta(root)  # the latest, in case another writer committed
                self._check_conflicts(meta)
                journal = {"txid": self.txid, "items": []}
                (self.dir / "old").mkdir(exist_ok=True)
                versions, paths, previous = {}, {}, {}
                retired = meta.get("retired_versions", {})
                expire = journal["expire"] = []
                for name, entry in self.staged.items():
                    old = meta["artefacts"].get(name)
                    last = int(old["version"]) if old else int(retired.get(name, 0))
                    versions[name] = last + 1
                    taken = {old["path"], (old.get("previous") or {}).get("path")} if old \
                        else set()
                    paths[name] = generation_path(entry["path"], versions[name], taken,
                                                  self.txid)
                    journal["items"].append({"name": name, "path": paths[name],
                                             "staged": entry["path"], "old_path": None})
                    if old:  # the current generation stays readable as the previous one
                        previous[name] = {"path": old["path"], "version": int(old["version"])}
                        if old.get("previous"):
                            expire.append(old["previous"]["path"])
                for name in self.removed:
                    old = meta["artefacts"][name]
                    journal["items"].append({"name": name, "path": None,
                                             "old_path": old["path"]})
                    if old.get("previous"):
                        expire.append(old["previous"]["path"])
                for item in journal["items"]:  # every target inside the Study
                    for key in ("path", "old_path"):
                        if item[key]:
                            inside(root, item[key], what=f"the path of artefact {item['name']!r}")
                for rel in expire:
                    inside(root, rel, what="the path of a previous generation")
                _write_json_atomic(self.dir / "journal.json", journal)
                try:
                    self._swap_in(root, journal["items"])
                except BaseException:
                    _roll_back(root, self.dir, journal["items"])
                    raise
                inputs = {n: self.base.get(n, (0, None))[1] for n in self.inputs}
                for name, entry in self.staged.items():
                    meta["artefacts"][name] = {
                        **entry, "path": paths[name], "version": versions[name],
                        "sha256": digests[name], "step": self.tool, "written": _now(),
                        **({"previous": previous[name]} if name in previous else {}),
                    }
                    meta.get("retired_versions", {}).pop(name, None)
                for name in self.removed:
                    gone = meta["artefacts"].pop(name, None)
                    if gone:  # a later artefact of that name continues its versions
                        meta.setdefault("retired_versions", {})[name] = int(gone["version"])
                if not meta.get("retired_versions"):
                    meta.pop("retired_versions", None)
                meta["provenance"].append({
                    "tool": self.tool, "params": self.params, "seed": self.seed,
                    "workbench_version": _version(), "inputs": inputs,
                    "input_versions": {n: self.base.get(n, (0, None))[0] for n in self.inputs},
                    "outputs": digests, "removed": self.removed, "started": self.started,
                    "finished": _now(), "transaction": self.txid,
                    **({"notes": self.notes} if self.notes else {}),
                })
                meta.update(self.meta_updates)
                meta["last_transaction"] = self.txid
                try:
                    _write_json_atomic(root / STUDY_FILE, meta)
                except BaseException:
                    _roll_back(root, self.dir, journal["items"])
                    raise
                expire_generations(root, expire)
                _remove(self.dir)
                _cleanup_staging_root(root)
        except BaseException:
            self.discard()
            raise
        self._release()
        study.meta = meta

    def _swap_in(self, root: Path, items: list) -> None:
        """Move each removed artefact aside, then each staged one to its generation's path
        (a path no generation the Study names uses: the current one stays where it is)."""
        for item in items:
            if item["old_path"]:
                cur = root / item["old_path"]
                if cur.exists() or cur.is_symlink():
                    _swap(cur, self.dir / "old" / item["old_path"])
            if item["path"]:
                dst = root / item["path"]
                _remove(dst)  # a leftover of a step that died before its commit
                _swap(self.dir / "new" / item.get("staged", item["path"]), dst)


def recover(root: Path) -> list[str]:
    """Roll back the transactions whose owner process died; see
    :func:`workbench.data._store.recover`.

    Parameters
    ----------
    root : pathlib.Path
        The Study folder.

    Returns
    -------
    list of str
        The ids of the transactions rolled back or cleaned up.
    """
    return _recover(root)
