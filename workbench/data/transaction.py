"""Write transactions of a Study: stage, swap into place, rewrite ``study.json`` last.

A :class:`Transaction` is what :meth:`workbench.data.study.Study.step` yields. Artefacts are
written under ``.staging/<id>/new/``; :meth:`Transaction.commit` takes the Study's lock,
writes a journal, moves each current artefact aside and the staged one into place (renames,
atomic on one file system), and then rewrites ``study.json`` (temporary file, then
:func:`os.replace`): that rewrite is the commit point. :func:`recover` runs when a Study is
opened and rolls back a swap that a crash interrupted before the commit point.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
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

from workbench.data.schema import validate_matrix, validate_screen_obs
from workbench.errors import ValidationError

if TYPE_CHECKING:
    from workbench.data.study import Study

STUDY_FILE = "study.json"
STAGING = ".staging"
KINDS = {"anndata": ".zarr", "table": ".parquet", "array": ".zarr", "images": ".zarr",
         "json": ".json", "file": ""}
#: Artefacts whose ``obs`` must follow the screen contract of :mod:`workbench.data.schema`.
SCREEN_ARTEFACTS = ("profiles",)


@contextlib.contextmanager
def quiet_zarr():
    """Silence zarr's notices about its future defaults (the Study pins its own formats)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="zarr v3 autosharding")
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        yield


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _version() -> str:
    from workbench import __version__

    return __version__


def checksum(path: str | os.PathLike) -> str:
    """SHA-256 over a file, or over every file of a directory (sorted relative paths)."""
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


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


class Transaction:
    """Artefacts staged by one step; made visible all at once by :meth:`commit`."""

    def __init__(self, study: Study, tool: str, params: dict, seed: int | None, inputs: list):
        self.study = study
        self.tool = tool
        self.params = params
        self.seed = seed
        self.inputs = inputs
        self.txid = f"{_dt.datetime.now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        self.dir = study.path / STAGING / self.txid
        (self.dir / "new").mkdir(parents=True)
        self.started = _now()
        self.staged: dict[str, dict[str, Any]] = {}
        self.removed: list[str] = []
        self.meta_updates: dict[str, Any] = {}
        self.notes: dict[str, Any] = {}

    # -- staging
    def stage_path(self, name: str, kind: str, filename: str | None = None) -> Path:
        """A path under staging to write artefact ``name`` into yourself (streaming writes)."""
        if kind not in KINDS:
            raise ValueError(f"unknown artefact kind {kind!r}; use one of {sorted(KINDS)}")
        if not name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"artefact name {name!r} must be letters, digits, - or _")
        filename = filename or f"{name}{KINDS[kind]}"
        p = self.dir / "new" / filename
        _remove(p)
        self.staged[name] = {"kind": kind, "path": filename}
        return p

    def describe(self, name: str, **info: Any) -> None:
        """Attach small facts (shapes, column names) shown by ``workbench info``."""
        self.staged[name].setdefault("shape_info", {}).update(info)

    def write_anndata(self, name: str, adata, *, screen: bool | None = None,
                      description: str | None = None) -> Path:
        """Stage an AnnData as Zarr; screen tables are checked against the contract first."""
        import anndata as ad

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
        p = self.stage_path(name, "anndata")
        ad.settings.zarr_write_format = 3
        with quiet_zarr():
            adata.write_zarr(p)
        self.describe(name, n_obs=int(adata.n_obs), n_vars=int(adata.n_vars),
                      obsm=sorted(adata.obsm.keys()), layers=sorted(adata.layers.keys()))
        if description:
            self.describe(name, description=description)
        return p

    def write_table(self, name: str, df: pd.DataFrame, *, description: str | None = None) -> Path:
        """Stage a long table as Parquet."""
        if not isinstance(df, pd.DataFrame):
            raise ValidationError(f"{name}: expected a pandas DataFrame, got {type(df).__name__}.")
        p = self.stage_path(name, "table")
        df.to_parquet(p)
        self.describe(name, n_rows=int(len(df)), columns=[str(c) for c in df.columns][:30])
        if description:
            self.describe(name, description=description)
        return p

    def write_array(self, name: str, arr, *, chunks=None, attrs: dict | None = None) -> Path:
        """Stage an n-d array as a Zarr array with optional attributes."""
        import zarr

        arr = np.asarray(arr)
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
        p = self.stage_path(name, "json")
        p.write_text(json.dumps(data, indent=2, default=_json_default))
        return p

    def write_file(self, name: str, source: str | os.PathLike, filename: str) -> Path:
        """Stage a copy of a plain file (e.g. a relationship annotation CSV)."""
        p = self.stage_path(name, "file", filename)
        shutil.copyfile(source, p)
        return p

    def write_images(self, name: str, crops, obs: pd.DataFrame, channel_names, **kw) -> Path:
        """Stage an image store; see :func:`workbench.data.images.write_image_store`."""
        from workbench.data.images import write_image_store

        p = self.stage_path(name, "images")
        with quiet_zarr():
            info = write_image_store(p, crops, obs, channel_names, **kw)
        self.describe(name, **info)
        return p

    def remove(self, name: str) -> None:
        """Drop an artefact from the Study when this transaction commits."""
        self.study.require(name)
        self.removed.append(name)

    def set_meta(self, key: str, value: Any) -> None:
        """Set a top-level ``study.json`` field (not artefacts or provenance)."""
        if key in ("artefacts", "provenance", "schema_version", "study_id"):
            raise ValueError(f"{key!r} is managed by the Study itself")
        self.meta_updates[key] = value

    def note(self, **facts: Any) -> None:
        """Record facts about the run (metrics, timings) in this step's provenance entry."""
        self.notes.update(facts)

    # -- finishing
    def discard(self) -> None:
        _remove(self.dir)
        _cleanup_staging_root(self.study.path)

    def commit(self) -> None:
        study = self.study
        root = study.path
        with _lock(root):
            from workbench.data.study import _load_meta

            meta = _load_meta(root)  # the latest, in case another writer committed
            journal = {"txid": self.txid, "items": []}
            (self.dir / "old").mkdir(exist_ok=True)
            versions = {}
            for name, entry in self.staged.items():
                old = meta["artefacts"].get(name)
                journal["items"].append({"name": name, "path": entry["path"],
                                         "old_path": old["path"] if old else None})
                versions[name] = (old["version"] + 1) if old else 1
            for name in self.removed:
                old = meta["artefacts"][name]
                journal["items"].append({"name": name, "path": None, "old_path": old["path"]})
            _write_json_atomic(self.dir / "journal.json", journal)
            # swap: move what is there now aside, then the staged artefact into place
            for item in journal["items"]:
                if item["old_path"]:
                    cur = root / item["old_path"]
                    if cur.exists():
                        _swap(cur, self.dir / "old" / item["old_path"])
                if item["path"]:
                    _swap(self.dir / "new" / item["path"], root / item["path"])
            # study.json last: the commit point
            inputs = {n: meta["artefacts"].get(n, {}).get("sha256") for n in self.inputs}
            outputs = {}
            for name, entry in self.staged.items():
                digest = checksum(root / entry["path"])
                meta["artefacts"][name] = {
                    **entry, "version": versions[name], "sha256": digest,
                    "step": self.tool, "written": _now(),
                }
                outputs[name] = digest
            for name in self.removed:
                meta["artefacts"].pop(name, None)
            meta["provenance"].append({
                "tool": self.tool, "params": self.params, "seed": self.seed,
                "workbench_version": _version(), "inputs": inputs, "outputs": outputs,
                "removed": self.removed, "started": self.started, "finished": _now(),
                "transaction": self.txid, **({"notes": self.notes} if self.notes else {}),
            })
            meta.update(self.meta_updates)
            meta["last_transaction"] = self.txid
            _write_json_atomic(root / STUDY_FILE, meta)
            _remove(self.dir)
            _cleanup_staging_root(root)
        study.meta = meta


@contextlib.contextmanager
def _lock(root: Path):
    with open(root / ".lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _cleanup_staging_root(root: Path) -> None:
    st = root / STAGING
    if st.is_dir() and not any(st.iterdir()):
        st.rmdir()


def recover(root: Path) -> None:
    """Finish or roll back transactions that a crash interrupted (see module docstring)."""
    st = root / STAGING
    if not st.is_dir():
        return
    with _lock(root):
        try:
            last = json.loads((root / STUDY_FILE).read_text()).get("last_transaction")
        except (json.JSONDecodeError, OSError):
            last = None
        for tx in sorted(st.iterdir()):
            journal = tx / "journal.json"
            if journal.is_file() and tx.name != last:
                items = json.loads(journal.read_text())["items"]
                for item in reversed(items):
                    if item["path"] and (root / item["path"]).exists() \
                            and not (tx / "new" / item["path"]).exists():
                        _remove(root / item["path"])  # the new one had been swapped in
                    if item["old_path"] and (tx / "old" / item["old_path"]).exists():
                        os.replace(tx / "old" / item["old_path"], root / item["old_path"])
            _remove(tx)
        _cleanup_staging_root(root)
