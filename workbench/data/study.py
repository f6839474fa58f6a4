"""The Study: one folder that holds an experiment and everything computed from it.

A Study is a directory (``NAME.study/``) whose ``study.json`` lists its artefacts (AnnData on
Zarr, Parquet tables, Zarr arrays and image stores, JSON documents) and a provenance log with
one entry per step. Every artefact is in an open format: a biologist can read
``profiles.zarr`` with :func:`anndata.read_zarr` or ``interactions.parquet`` with pandas,
without the workbench.

Writes are transactions. A step stages its artefacts under ``.staging/``, then swaps them
into place and rewrites ``study.json`` last (temporary file, then :func:`os.replace`). A crash
or interrupt before the swap leaves nothing behind; a crash during the swap is rolled back
the next time the Study is opened, using the journal the transaction left. Either way the
Study reads as it was before the step, or as it is after it, never in between.

Example
-------
>>> study = Study.create("screen.study", title="my screen", control_label="DMSO")
>>> with study.step("import", params={"source": "plate.csv"}) as tx:
...     tx.write_anndata("profiles", adata, screen=True)
>>> Study.open("screen.study").read("profiles")
"""

from __future__ import annotations

import contextlib
import warnings
import datetime as _dt
import fcntl
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.data.schema import validate_matrix, validate_screen_obs
from workbench.errors import (
    MissingArtefactError,
    SchemaVersionError,
    StudyCorruptError,
    StudyNotFoundError,
    ValidationError,
    WorkbenchError,
)


@contextlib.contextmanager
def quiet_zarr():
    """Silence zarr's notices about its future defaults (the Study pins its own formats)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="zarr v3 autosharding")
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        yield

SCHEMA_VERSION = 1
STUDY_FILE = "study.json"
STAGING = ".staging"
KINDS = {"anndata": ".zarr", "table": ".parquet", "array": ".zarr", "images": ".zarr",
         "json": ".json", "file": ""}
#: Artefacts whose ``obs`` must follow the screen contract of :mod:`workbench.data.schema`.
SCREEN_ARTEFACTS = ("profiles",)

#: Which step makes which artefact: used to say what to run when one is missing.
MAKERS = {
    "images": "`workbench import images ...` or `workbench demo`",
    "profiles": "`workbench embed STUDY` (images) or `workbench import profiles ...`",
    "perturbations": "`workbench embed STUDY` (it aggregates profiles to perturbations)",
    "concepts": "`workbench concepts STUDY`",
    "interactions": "`workbench interactions STUDY`",
    "pair_selection": "`workbench plan-pairs STUDY --budget N`",
    "grn": "`workbench grn STUDY`",
    "velocity": "`workbench import velocity FILE.h5ad --out STUDY`",
    "ground_truth": "`workbench demo` (only simulated Studies have ground truth)",
}


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


class Study:
    """An experiment folder: artefacts, their provenance, and safe reads and writes.

    Use :meth:`create` or :meth:`open` rather than the constructor. Reading is by artefact
    name (:meth:`read`, :meth:`read_obs`); writing goes through :meth:`step`, which records
    provenance and swaps artefacts in atomically.
    """

    def __init__(self, path: Path, meta: dict[str, Any]):
        self.path = Path(path)
        self.meta = meta

    # ------------------------------------------------------------------ create / open
    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        *,
        title: str | None = None,
        control_label: str = "control",
        overwrite: bool = False,
    ) -> Study:
        """Create an empty Study at ``path`` (refuses to touch a non-empty folder unless
        ``overwrite`` and the folder is itself a Study)."""
        path = Path(path)
        if path.exists() and any(path.iterdir()):
            if not overwrite:
                raise WorkbenchError(
                    f"{path} already exists and is not empty.",
                    "choose another path, or pass overwrite=True (--overwrite) to replace "
                    "an existing Study.",
                )
            if not (path / STUDY_FILE).exists():
                raise WorkbenchError(
                    f"{path} is not a Study, so it will not be overwritten.",
                    "give a new or empty folder.",
                )
            _remove(path)
        path.mkdir(parents=True, exist_ok=True)
        meta = {
            "schema_version": SCHEMA_VERSION,
            "study_id": uuid.uuid4().hex,
            "title": title or path.stem,
            "created": _now(),
            "workbench_version": _version(),
            "control_label": control_label,
            "artefacts": {},
            "provenance": [],
            "last_transaction": None,
        }
        _write_json_atomic(path / STUDY_FILE, meta)
        return cls(path, meta)

    @classmethod
    def open(cls, path: str | os.PathLike, *, validate: bool = True) -> Study:
        """Open and check a Study; roll back any write that a crash left half done."""
        path = Path(path)
        if not path.exists():
            raise StudyNotFoundError(
                f"{path} does not exist.",
                "check the path, or build a Study first (`workbench demo`, "
                "`workbench import ...`).",
            )
        if not (path / STUDY_FILE).is_file():
            raise StudyNotFoundError(
                f"{path} is not a Study: it has no {STUDY_FILE}.",
                "open the NAME.study folder itself, or build one with `workbench demo` or "
                "`workbench import ...`.",
            )
        _recover(path)
        meta = _load_meta(path)
        study = cls(path, meta)
        if validate:
            study.validate(deep=False)
        return study

    # ------------------------------------------------------------------ properties
    @property
    def id(self) -> str:
        return self.meta["study_id"]

    @property
    def title(self) -> str:
        return self.meta["title"]

    @property
    def control_label(self) -> str:
        return self.meta["control_label"]

    @property
    def artefacts(self) -> dict[str, dict[str, Any]]:
        return dict(self.meta["artefacts"])

    @property
    def provenance(self) -> list[dict[str, Any]]:
        return list(self.meta["provenance"])

    def has(self, name: str) -> bool:
        return name in self.meta["artefacts"]

    def version_of(self, name: str) -> int:
        """Artefact version: bumps on every write; caches key on (study id, name, version)."""
        return int(self.meta["artefacts"][name]["version"]) if self.has(name) else 0

    def cache_key(self, *names: str) -> tuple:
        return (self.id, *((n, self.version_of(n)) for n in names))

    def artefact_path(self, name: str) -> Path:
        self.require(name)
        return self.path / self.meta["artefacts"][name]["path"]

    def require(self, name: str, why: str | None = None) -> None:
        """Raise :class:`MissingArtefactError` naming the step that makes ``name``."""
        if not self.has(name):
            need = f" ({why})" if why else ""
            raise MissingArtefactError(
                f"Study {self.path.name} has no {name!r} artefact{need}.",
                f"run {MAKERS.get(name, 'the step that writes it')} first.",
            )

    def refresh(self) -> Study:
        """Re-read ``study.json`` (another process may have written)."""
        self.meta = _load_meta(self.path)
        return self

    # ------------------------------------------------------------------ reading
    def read(self, name: str, *, backed: bool = False):
        """Read an artefact by name: AnnData, DataFrame, zarr array, ImageStore or dict."""
        entry = self._entry(name)
        p = self.path / entry["path"]
        kind = entry["kind"]
        try:
            if kind == "anndata":
                import anndata as ad

                with quiet_zarr():
                    return ad.read_zarr(p)
            if kind == "table":
                return pd.read_parquet(p)
            if kind == "array":
                import zarr

                return zarr.open_array(p, mode="r")
            if kind == "images":
                from workbench.data.images import ImageStore

                return ImageStore(p)
            if kind == "json":
                return json.loads(p.read_text())
            return p
        except WorkbenchError:
            raise
        except Exception as exc:  # corrupted or truncated files
            raise self._corrupt(name, exc) from exc

    def read_obs(self, name: str) -> pd.DataFrame:
        """Only the ``obs`` table of an AnnData artefact (cheap: no matrices are loaded)."""
        entry = self._entry(name)
        if entry["kind"] != "anndata":
            raise WorkbenchError(f"{name!r} is a {entry['kind']}, not an AnnData artefact.")
        try:
            import zarr
            from anndata.io import read_elem

            return read_elem(zarr.open_group(self.path / entry["path"], mode="r")["obs"])
        except Exception as exc:
            raise self._corrupt(name, exc) from exc

    def _entry(self, name: str) -> dict[str, Any]:
        self.require(name)
        return self.meta["artefacts"][name]

    def _corrupt(self, name: str, exc: Exception) -> StudyCorruptError:
        entry = self.meta["artefacts"].get(name, {})
        return StudyCorruptError(
            f"artefact {name!r} ({entry.get('path')}) in {self.path} cannot be read: "
            f"{type(exc).__name__}: {exc}",
            f"it may be truncated or corrupted; re-run the step that wrote it "
            f"({entry.get('step', 'see `workbench info`')}), or restore it from a backup.",
        )

    # ------------------------------------------------------------------ checks
    def validate(self, deep: bool = True) -> Study:
        """Check the Study. Light: artefacts exist and open. Deep: screen tables follow the
        contract and matrices are finite. Raises a :class:`WorkbenchError` subclass."""
        for name, entry in self.meta["artefacts"].items():
            p = self.path / entry["path"]
            if not p.exists():
                raise StudyCorruptError(
                    f"{STUDY_FILE} lists artefact {name!r} at {entry['path']}, but it is missing.",
                    f"re-run {MAKERS.get(name, 'the step that writes it')}, or restore the file.",
                )
            if entry["kind"] in ("anndata", "array", "images"):
                try:
                    import zarr

                    zarr.open(p, mode="r")
                except Exception as exc:
                    raise self._corrupt(name, exc) from exc
        if deep:
            for name, entry in self.meta["artefacts"].items():
                if entry["kind"] != "anndata":
                    continue
                adata = self.read(name)
                if name in SCREEN_ARTEFACTS:
                    validate_screen_obs(adata.obs, self.control_label, where=f"{name}.obs")
                if adata.n_vars:
                    validate_matrix(adata.X, where=f"{name}.X")
                for key, val in adata.obsm.items():
                    if hasattr(val, "shape") and not isinstance(val, pd.DataFrame):
                        validate_matrix(val, where=f"{name}.obsm[{key!r}]")
        return self

    # ------------------------------------------------------------------ writing
    @contextlib.contextmanager
    def step(
        self,
        tool: str,
        *,
        params: dict[str, Any] | None = None,
        seed: int | None = None,
        inputs: list[str] | None = None,
    ) -> Iterator[Transaction]:
        """Open a write transaction for one step; commit on success, discard on error."""
        for name in inputs or []:
            self.require(name, why=f"the {tool!r} step reads it")
        tx = Transaction(self, tool, params or {}, seed, inputs or [])
        try:
            yield tx
        except BaseException:
            tx.discard()
            raise
        tx.commit()

    def summary(self) -> dict[str, Any]:
        """What the Study holds: artefacts with shapes, ground truth, last steps."""
        out = {"path": str(self.path), "title": self.title, "study_id": self.id,
               "control_label": self.control_label, "artefacts": {}, "steps": []}
        for name, entry in self.meta["artefacts"].items():
            info = {"kind": entry["kind"], "path": entry["path"], "version": entry["version"],
                    "step": entry.get("step")}
            info.update(entry.get("shape_info", {}))
            out["artefacts"][name] = info
        for prov in self.meta["provenance"]:
            out["steps"].append({k: prov.get(k) for k in ("tool", "finished", "seed", "outputs")})
        return out

    def __repr__(self) -> str:
        names = ", ".join(self.meta["artefacts"]) or "no artefacts"
        return f"<Study {self.title!r} at {self.path} ({names})>"


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


# ---------------------------------------------------------------------- helpers
def _load_meta(path: Path) -> dict[str, Any]:
    f = path / STUDY_FILE
    try:
        meta = json.loads(f.read_text())
    except json.JSONDecodeError as exc:
        raise StudyCorruptError(
            f"{f} is not valid JSON ({exc.msg} at line {exc.lineno}).",
            "restore study.json from a backup; the artefacts themselves are untouched.",
        ) from exc
    if not isinstance(meta, dict) or "schema_version" not in meta:
        raise StudyCorruptError(f"{f} has no schema_version: it was not written by workbench.",
                                "open a folder made by `workbench demo` or `workbench import`.")
    if int(meta["schema_version"]) > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{path} uses Study schema version {meta['schema_version']}, newer than the "
            f"{SCHEMA_VERSION} this workbench ({_version()}) reads.",
            "upgrade the workbench (pip install -U workbench) to open it.",
        )
    missing = {"artefacts", "provenance", "control_label", "study_id"} - set(meta)
    if missing:
        raise StudyCorruptError(f"{f} lacks the field(s) {sorted(missing)}.",
                                "restore study.json from a backup.")
    return meta


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


def _recover(root: Path) -> None:
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


def create_study(path: str | os.PathLike, **kw) -> Study:
    """Create an empty Study; see :meth:`Study.create`."""
    return Study.create(path, **kw)


def open_study(path: str | os.PathLike, **kw) -> Study:
    """Open and validate a Study; see :meth:`Study.open`."""
    return Study.open(path, **kw)
