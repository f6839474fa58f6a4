"""The Study: one folder that holds an experiment and everything computed from it.

A Study is a directory (``NAME.study/``) whose ``study.json`` lists its artefacts (AnnData on
Zarr, Parquet tables, Zarr arrays and image stores, JSON documents) and a provenance log with
one entry per step. Every artefact is in an open format: a biologist can read
``profiles.zarr`` with :func:`anndata.read_zarr` or ``interactions.parquet`` with pandas,
without the workbench.

Writes are transactions. A step stages its artefacts under ``.staging/``, then moves them
to the paths of their new generation (``grn.zarr``, then ``grn.v2.zarr``; the generation
replaced stays readable until the next rewrite) and rewrites ``study.json`` last
(temporary file, then :func:`os.replace`). A crash or interrupt before the swap leaves
nothing behind; a crash during the swap is rolled back the next time the Study is opened,
using the journal the transaction left. Either way the Study reads as it was before the
step, or as it is after it, never in between.

Example
-------
>>> study = Study.create("screen.study", title="my screen", control_label="DMSO")
>>> with study.step("import", params={"source": "plate.csv"}) as tx:
...     tx.write_anndata("profiles", adata, screen=True)
>>> Study.open("screen.study").read("profiles")
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.data.schema import validate_matrix, validate_screen_obs
from workbench.data._store import inside, study_lock
from workbench.data._meta import KINDS, SCHEMA_VERSION, load_meta as _load_meta  # noqa: F401
from workbench.data.transaction import (  # noqa: F401  (re-exported for callers)
    SCREEN_ARTEFACTS,
    STAGING,
    STUDY_FILE,
    Transaction,
    _now,
    _remove,
    _version,
    _write_json_atomic,
    checksum,
    quiet_zarr,
    recover,
)
from workbench.errors import (
    MissingArtefactError,
    StudyChangedError,
    StudyCorruptError,
    StudyNotFoundError,
    WorkbenchError,
)


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
    "design_plan": "`workbench design screen|hits|knockout STUDY ...`",
    "grn_samples": "`workbench grn STUDY`",
    "phenotype_search": "`workbench find STUDY --exemplar CROP_ID`",
}


class Study:
    """An experiment folder: artefacts, their provenance, and safe reads and writes.

    Use :meth:`create` or :meth:`open` rather than the constructor. Reading is by artefact
    name (:meth:`read`, :meth:`read_obs`); writing goes through :meth:`step`, which records
    provenance and swaps artefacts in atomically.

    Parameters
    ----------
    path : pathlib.Path
        The ``NAME.study`` folder.
    meta : dict
        The parsed ``study.json`` (schema version, artefacts, provenance, control label).
    """

    def __init__(self, path: Path, meta: dict[str, Any]):
        self.path = Path(path)
        self.meta = meta
        self._in_snapshot = False

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
        ``overwrite`` and the folder is itself a Study).

        Parameters
        ----------
        path : str or os.PathLike
            The folder to create (parents included).
        title : str or None
            The Study's title; None uses the folder's name without its suffix.
        control_label : str
            The perturbation label of control samples.
        overwrite : bool
            Replace the folder when it is an existing Study.

        Returns
        -------
        Study
            The new, empty Study.
        """
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
        """Open and check a Study; roll back any write that a crash left half done.

        Parameters
        ----------
        path : str or os.PathLike
            The ``NAME.study`` folder.
        validate : bool
            Run the light check of :meth:`validate` (artefacts exist and open).

        Returns
        -------
        Study
            The opened Study.

        Raises
        ------
        StudyNotFoundError
            When the folder does not exist or has no ``study.json``.
        """
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
        recover(path)
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
        """Whether the Study holds artefact ``name``.

        Parameters
        ----------
        name : str
            The artefact's name.

        Returns
        -------
        bool
            True when ``study.json`` lists it.
        """
        return name in self.meta["artefacts"]

    def version_of(self, name: str) -> int:
        """Artefact version: bumps on every write; caches key on (study id, name, version).

        Parameters
        ----------
        name : str
            The artefact's name.

        Returns
        -------
        int
            Its version; 0 when the Study does not hold it.
        """
        return int(self.meta["artefacts"][name]["version"]) if self.has(name) else 0

    def meta_stamp(self) -> tuple[int, int] | None:
        """A cheap token of ``study.json`` on disk now: it changes when any step commits.

        Only the file's status is read, so a page may call it every few seconds; compare
        two stamps, then call :meth:`changes_on_disk` when they differ.

        Returns
        -------
        tuple of int or None
            ``(modification time in ns, size)``; None when the file cannot be read.
        """
        try:
            st = os.stat(self.path / STUDY_FILE)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def changes_on_disk(self) -> dict[str, dict[str, Any] | None]:
        """The artefacts that other processes wrote, added or removed since this handle
        opened the Study (or last reloaded it).

        This handle keeps describing, and reading, the generation it opened (see
        :mod:`workbench.data.transaction`); this compares its versions with those in
        ``study.json`` on disk now. Nothing is reloaded.

        Returns
        -------
        dict
            ``{name: entry on disk}`` for each artefact whose version differs, in name
            order; the entry (with ``version``, ``step``, ``written``) is None for an
            artefact removed on disk.

        Raises
        ------
        StudyCorruptError
            When ``study.json`` on disk is damaged.
        SchemaVersionError
            When a newer workbench rewrote it.
        """
        now = _load_meta(self.path)["artefacts"]
        mine = self.meta["artefacts"]
        return {n: now.get(n) for n in sorted(set(now) | set(mine))
                if (now.get(n) or {}).get("version") != (mine.get(n) or {}).get("version")}

    def cache_key(self, *names: str) -> tuple:
        """A key that changes whenever one of the artefacts ``names`` is written again.

        Parameters
        ----------
        *names : str
            The artefacts a cached result depends on.

        Returns
        -------
        tuple
            The Study id and ``(name, version)`` per artefact.
        """
        return (self.id, *((n, self.version_of(n)) for n in names))

    def artefact_path(self, name: str) -> Path:
        """Where artefact ``name`` lies, checked to stay inside the Study.

        Parameters
        ----------
        name : str
            The artefact's name.

        Returns
        -------
        pathlib.Path
            Its file or folder.

        Raises
        ------
        MissingArtefactError
            When the Study does not hold it.
        """
        self.require(name)
        return inside(self.path, self.meta["artefacts"][name]["path"],
                      what=f"the path of artefact {name!r}")

    def require(self, name: str, why: str | None = None) -> None:
        """Raise :class:`MissingArtefactError` naming the step that makes ``name``.

        Parameters
        ----------
        name : str
            The artefact's name.
        why : str or None
            Why it is needed, added to the message; None for no reason.
        """
        if not self.has(name):
            need = f" ({why})" if why else ""
            raise MissingArtefactError(
                f"Study {self.path.name} has no {name!r} artefact{need}.",
                f"run {MAKERS.get(name, 'the step that writes it')} first.",
            )

    def refresh(self) -> Study:
        """Re-read ``study.json`` (another process may have written).

        Returns
        -------
        Study
            This Study, its metadata re-read.
        """
        self.meta = _load_meta(self.path)
        return self

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Study]:
        """Read several artefacts as of one moment: no commit lands while the block runs.

        Each :meth:`read` on its own returns a whole artefact, never a half-written one,
        but two reads in a row may straddle a step that another process commits between
        them (the first read the old generation, the second the new). Inside this block
        the Study's shared lock is held (a commit's swap waits for it) and ``study.json``
        is re-read at its start, so every read in the block sees the same generation and
        :attr:`meta` describes it. Keep the block short, and run no step in it (a step's
        commit would wait for the lock the block holds; it is refused).

        Yields
        ------
        Study
            This Study, its metadata re-read under the lock.
        """
        if self._in_snapshot:  # nested: the outer block holds the lock
            yield self
            return
        with study_lock(self.path, shared=True):
            self.meta = _load_meta(self.path)
            self._in_snapshot = True
            try:
                yield self
            finally:
                self._in_snapshot = False

    # ------------------------------------------------------------------ reading
    def read(self, name: str):
        """Read an artefact by name: AnnData, DataFrame, zarr array, ImageStore or dict.

        Parameters
        ----------
        name : str
            The artefact's name.

        Returns
        -------
        object
            By kind: an AnnData (``anndata``), a DataFrame (``table``), a read-only Zarr array
            (``array``), an :class:`~workbench.data.images.ImageStore` (``images``), a dict
            (``json``), or the path of a ``file`` artefact.

        Raises
        ------
        MissingArtefactError
            When the Study does not hold it.
        StudyCorruptError
            When its files cannot be read.
        """
        entry = self._entry(name)
        p = self.artefact_path(name)
        kind = entry["kind"]
        try:
            with study_lock(self.path, shared=True):
                self._check_generation(name, p)
                return self._read_kind(name, kind, p)
        except WorkbenchError:
            raise
        except Exception as exc:  # corrupted or truncated files
            raise self._corrupt(name, exc) from exc

    def _check_generation(self, name: str, p: Path) -> None:
        """Under the shared lock: the generation :attr:`meta` names must still be on disk.

        A rewritten artefact's previous generation is kept until the next rewrite, so an
        out-of-date Study object still reads a whole, consistent generation; two rewrites
        behind, its files are gone and this says so (rather than "corrupt")."""
        if p.exists() or p.is_symlink():
            return
        try:
            now = _load_meta(self.path)["artefacts"].get(name)
        except WorkbenchError:
            return
        if now is None or int(now.get("version", 0)) != self.version_of(name):
            have = self.version_of(name)
            by = f" by step {now.get('step')!r} at {now.get('written')}" if now else ""
            raise StudyChangedError(
                f"artefact {name!r} of {self.path.name} is now "
                f"{'version ' + str(now.get('version')) if now else 'removed'}{by}; this "
                f"Study object still describes version {have}, whose files were removed "
                "when a newer generation replaced the previous one.",
                "reload the page (served dashboards) or call study.refresh() and read again.")

    def _read_kind(self, name: str, kind: str, p: Path):
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

    def read_uns(self, name: str, *keys: str):
        """One entry of an AnnData artefact's ``uns["workbench"]``, by its declared key path.

        ``study.read_uns("grn", "cycles")`` returns what the schema of ``grn`` declares under
        ``cycles``; a key the schema does not declare, or one the artefact lacks, is an error
        that names the step that writes it.

        Parameters
        ----------
        name : str
            An AnnData artefact's name.
        *keys : str
            The key path under ``uns["workbench"]``.

        Returns
        -------
        object
            The stored value.
        """
        from workbench.data.artefacts import uns_entry

        return uns_entry(name, self.read(name), keys)

    def read_obs(self, name: str) -> pd.DataFrame:
        """Only the ``obs`` table of an AnnData artefact (cheap: no matrices are loaded).

        Parameters
        ----------
        name : str
            An AnnData artefact's name.

        Returns
        -------
        pandas.DataFrame
            Its ``obs``.
        """
        entry = self._entry(name)
        if entry["kind"] != "anndata":
            raise WorkbenchError(f"{name!r} is a {entry['kind']}, not an AnnData artefact.")
        try:
            import zarr
            from anndata.io import read_elem

            with study_lock(self.path, shared=True):
                p = self.artefact_path(name)
                self._check_generation(name, p)
                return read_elem(zarr.open_group(p, mode="r")["obs"])
        except WorkbenchError:
            raise
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
        contract and matrices are finite. Raises a :class:`WorkbenchError` subclass.

        Parameters
        ----------
        deep : bool
            Also read every artefact and check it against its schema.

        Returns
        -------
        Study
            This Study, when it is valid.
        """
        for name, entry in self.meta["artefacts"].items():
            p = self.artefact_path(name)
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
            from workbench.data.artefacts import check_artefact

            for name, entry in self.meta["artefacts"].items():
                if entry["kind"] in ("table", "array", "json", "file"):
                    check_artefact(name, self.read(name), writer=entry.get("step"))
                if entry["kind"] != "anndata":
                    continue
                adata = self.read(name)
                check_artefact(name, adata, writer=entry.get("step"))
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
        outputs: list[str] | None = None,
    ) -> Iterator[Transaction]:
        """Open a write transaction for one step; commit on success, discard on error.

        ``inputs`` are the artefacts the step read (their checksums as read go into the
        provenance, and the commit is refused if one of them changed meanwhile);
        ``outputs``, when known up front, are locked at once so that a second writer of the
        same artefact is told right away (:class:`StudyBusyError`) rather than at its end.
        Other processes may open and read the Study while the step runs.

        Parameters
        ----------
        tool : str
            The step's name, recorded in provenance.
        params : dict or None
            The step's parameters, recorded in provenance.
        seed : int or None
            The step's seed, recorded in provenance.
        inputs : list of str or None
            The artefacts the step reads; each must exist.
        outputs : list of str or None
            The artefacts it will write, locked at once; None locks each when staged.

        Yields
        ------
        Transaction
            Stage artefacts on it; they appear together when the block ends without error.
        """
        if getattr(self, "_in_snapshot", False):
            raise WorkbenchError(f"the {tool!r} step cannot start inside study.snapshot(): "
                                 "its commit would wait for the lock the block holds.",
                                 "run the step after the block ends.")
        for name in inputs or []:
            self.require(name, why=f"the {tool!r} step reads it")
        tx = Transaction(self, tool, params or {}, seed, inputs or [], outputs)
        try:
            yield tx
        except BaseException:
            tx.discard()
            raise
        tx.commit()

    def summary(self) -> dict[str, Any]:
        """What the Study holds: artefacts with shapes, ground truth, last steps.

        Returns
        -------
        dict
            ``path``, ``title``, ``study_id``, ``control_label``, ``artefacts`` (name to kind,
            path, version, writing step and shape facts) and ``steps`` (tool, finish time, seed
            and outputs of each).
        """
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


def create_study(path: str | os.PathLike, **kw) -> Study:
    """Create an empty Study; see :meth:`Study.create`.

    Parameters
    ----------
    path : str or os.PathLike
        The folder to create.
    **kw
        Passed to :meth:`Study.create`: ``title``, ``control_label``, ``overwrite``.

    Returns
    -------
    Study
        The new, empty Study.
    """
    return Study.create(path, **kw)


def open_study(path: str | os.PathLike, **kw) -> Study:
    """Open and validate a Study; see :meth:`Study.open`.

    Parameters
    ----------
    path : str or os.PathLike
        The ``NAME.study`` folder.
    **kw
        Passed to :meth:`Study.open`: ``validate``.

    Returns
    -------
    Study
        The opened Study.
    """
    return Study.open(path, **kw)
