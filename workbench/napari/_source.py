"""A Study as the napari plugin sees it: what can be browsed, and the layers for a choice.

:class:`StudySource` opens a Study once, keeps its image store and crop table, lists the
perturbations, pairs and concepts it can show, and builds napari layer data for one of
them (see :mod:`workbench.napari._crops` for the layout). Everything is read through the
Study's declared artefacts: crops from ``images``, concepts and their exemplars from
``concepts``, the per-crop codes from ``profiles.obsm[profiles_key]`` as the concepts step
names them, pairs in the order of ``interactions``. It imports no Qt, so the reader, the
dock widget and the command line share it, and tests can check the layers without a
viewer.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.errors import MissingArtefactError, StudyNotFoundError, UnknownGeneError
from workbench.napari import _crops

#: Crops per condition block unless told otherwise.
N_CROPS = 9


class StudySource:
    """What the plugin reads from one Study.

    Parameters
    ----------
    path : str or os.PathLike
        The ``NAME.study`` folder. Opening fails with a
        :class:`~workbench.errors.WorkbenchError` whose message says what is wrong (not a
        Study, corrupt, ...) and what to do.
    """

    def __init__(self, path: str | Path):
        from workbench.data.study import Study

        self.path = Path(path)
        self.study = Study.open(self.path)

    # ------------------------------------------------------------------ contents
    @property
    def has_images(self) -> bool:
        return self.study.has("images")

    @property
    def has_fields(self) -> bool:
        return self.study.has("fields")

    def require_images(self) -> None:
        """Raise a MissingArtefactError that says how to give this Study images."""
        if not self.has_images:
            extra = " It holds whole fields; open the Study itself to see them." \
                if self.has_fields else ""
            raise MissingArtefactError(
                f"Study {self.path.name} has no 'images' artefact, so there are no crops to "
                f"show.{extra}",
                "import images first (`workbench import images FOLDER --out STUDY`), or "
                "build the demo Study with images (`workbench demo`).",
            )

    @cached_property
    def store(self):
        self.require_images()
        return self.study.read("images")

    @cached_property
    def obs(self) -> pd.DataFrame:
        return self.store.obs

    @cached_property
    def contrast(self) -> list[tuple[float, float]]:
        return _crops.contrast_from_controls(self.store, self.obs)

    def perturbations(self) -> list[str]:
        """The perturbations with crops (controls left out), singles before doubles.

        Returns
        -------
        list of str
            The names; empty without images.
        """
        return _crops.perturbation_names(self.obs) if self.has_images else []

    def pairs(self) -> list[str]:
        """Pairs with crops for the double and both singles; pairs named by the
        ``interactions`` table come first when it exists.

        Returns
        -------
        list of str
            The pairs, ``"A+B"``; empty without images.
        """
        if not self.has_images:
            return []
        found = _crops.pair_names(self.obs)
        ranked = self._ranked_pairs()
        key = {frozenset(_crops.gene_set(p)): p for p in found}
        first = [key.pop(frozenset(_crops.gene_set(p))) for p in ranked
                 if frozenset(_crops.gene_set(p)) in key]
        return first + list(key.values())

    def _ranked_pairs(self) -> list[str]:
        """Pairs in the order of the ``interactions`` table (its ``pair`` column)."""
        if not self.study.has("interactions"):
            return []
        pairs = self.study.read("interactions")["pair"].astype(str)
        return pairs.drop_duplicates().tolist()

    # ------------------------------------------------------------------ concepts
    @property
    def has_concepts(self) -> bool:
        return self.study.has("concepts")

    @cached_property
    def concepts(self):
        """The ``concepts`` AnnData (one row per concept), as the concepts step wrote it."""
        self.study.require("concepts", why="the concept view shows its exemplars")
        return self.study.read("concepts")

    @cached_property
    def profiles(self):
        """The ``profiles`` AnnData, which holds the per-crop concept codes."""
        self.study.require("profiles", why="it holds the concept codes of every crop")
        return self.study.read("profiles")

    def concept_names(self) -> list[str]:
        """Concept labels (the ``concepts`` artefact's row names); empty before
        ``workbench concepts`` has run.

        Returns
        -------
        list of str
            The concept labels, in the artefact's row order.
        """
        if not self.has_concepts:
            return []
        return self.concepts.obs_names.astype(str).tolist()

    def activation_key(self) -> str:
        """The ``profiles.obsm`` key of the per-crop codes, as the concepts step names it
        (``concepts.uns["workbench"]["profiles_key"]``).

        Returns
        -------
        str
            The key.
        """
        from workbench.data.artefacts import uns_entry

        return str(uns_entry("concepts", self.concepts, ("profiles_key",)))

    def _concept_index(self, concept: str | int) -> int:
        names = self.concepts.obs_names.astype(str).tolist()  # a clear error without them
        concept = str(concept)
        if concept in names:
            return names.index(concept)
        if concept.isdigit() and int(concept) < len(names):
            return int(concept)
        raise UnknownGeneError(
            f"concept {concept!r} is not in Study {self.path.name}"
            f"{_crops._suggest(concept, names)}; it has {len(names)} concepts.",
            "pick a concept listed in the browser (or by `workbench info STUDY`).",
        )

    def _profile_rows_to_positions(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Image-store rows of ``profiles`` rows, and which of ``rows`` have a crop."""
        ids = self.profiles.obs_names.astype(str)[np.asarray(rows, dtype=int)]
        pos = pd.Index(self.obs.index.astype(str)).get_indexer(ids)
        return pos[pos >= 0], pos >= 0

    def concept_activations(self, concept: str | int) -> tuple[np.ndarray, np.ndarray, str]:
        """Activations of one concept over the crops, their image-store rows, and its name.

        The codes are ``profiles.obsm[profiles_key]`` (dense, or CSR for large screens),
        one row per profile; profiles without a crop in the image store are left out.

        Parameters
        ----------
        concept : str or int
            The concept's label, or its row number.

        Returns
        -------
        activations : numpy.ndarray
            The concept's activation on each crop kept.
        positions : numpy.ndarray
            Their rows in the image store, aligned with ``activations``.
        name : str
            The concept's label.

        Raises
        ------
        MissingArtefactError
            When ``profiles`` no longer holds the codes the concepts step wrote.
        """
        k = self._concept_index(concept)
        key = self.activation_key()
        if key not in self.profiles.obsm:
            raise MissingArtefactError(
                f"Study {self.path.name}: the concepts artefact names profiles.obsm[{key!r}] "
                "for its codes, but profiles has no such matrix (profiles were rewritten "
                "after the concepts step).",
                "run `workbench concepts STUDY` again.",
            )
        codes = self.profiles.obsm[key]
        if hasattr(codes, "tocsc"):  # CSR codes
            acts = np.asarray(codes.tocsc()[:, [k]].toarray(), dtype=float).ravel()
        else:
            acts = np.asarray(codes[:, k], dtype=float)
        pos, keep = self._profile_rows_to_positions(np.arange(len(acts)))
        return acts[keep], pos, self.concept_names()[k]

    def concept_exemplars(self, concept: str | int) -> np.ndarray:
        """Image-store rows of the exemplars the concepts step chose for a concept (row of
        ``concepts.obsm["exemplar_top_index"]``: profile rows, largest activation first,
        -1 for none), in its order.

        Parameters
        ----------
        concept : str or int
            The concept's label, or its row number.

        Returns
        -------
        numpy.ndarray
            Image-store rows, largest activation first.

        Raises
        ------
        MissingArtefactError
            When the concepts artefact stores no exemplars.
        """
        k = self._concept_index(concept)
        if "exemplar_top_index" not in self.concepts.obsm:
            raise MissingArtefactError(
                f"Study {self.path.name}: the concepts artefact has no "
                "obsm['exemplar_top_index'] (the exemplars of each concept).",
                "run `workbench concepts STUDY` again with this version of the workbench.",
            )
        rows = np.asarray(self.concepts.obsm["exemplar_top_index"][k], dtype=int)
        return self._profile_rows_to_positions(rows[rows >= 0])[0]

    # ------------------------------------------------------------------ layers
    def conditions(self, kind: str, value: str, n: int = N_CROPS, seed: int = 0):
        """The condition blocks for ``kind`` in {"perturbation", "pair", "concept"}.

        Parameters
        ----------
        kind : str
            ``"perturbation"``, ``"pair"`` or ``"concept"``.
        value : str
            The perturbation, the pair ``"A+B"``, or the concept.
        n : int
            Crops per block (at most 8 per quantile for a concept).
        seed : int
            Seed of the choice of crops.

        Returns
        -------
        list of Condition
            The blocks, left to right; for a concept the last block holds the exemplars the
            concepts step chose.

        Raises
        ------
        ValueError
            For another ``kind``.
        """
        if kind == "perturbation":
            return _crops.perturbation_conditions(self.obs, value, n=n, seed=seed)
        if kind == "pair":
            return _crops.pair_conditions(self.obs, value, n=n, seed=seed)
        if kind == "concept":
            acts, pos, name = self.concept_activations(value)
            k = max(1, min(n, 8))
            conds = _crops.concept_conditions(acts, pos, n=k)
            # the top block shows the exemplars the dashboards show: the step's own
            conds[-1] = _crops.Condition("top", self.concept_exemplars(name)[:k],
                                         "exemplars of the concepts step")
            return conds
        raise ValueError(f"unknown selection kind {kind!r}")

    def layers(self, kind: str, value: str, n: int = N_CROPS, seed: int = 0) -> list[tuple]:
        """napari layer data for one selection (a comparison grid, one layer per channel).

        Parameters
        ----------
        kind : str
            ``"perturbation"``, ``"pair"`` or ``"concept"``.
        value : str
            What was chosen (see :meth:`conditions`).
        n : int
            Crops per block.
        seed : int
            Seed of the choice of crops.

        Returns
        -------
        list of tuple
            ``(data, kwargs, layer_type)`` napari layer data tuples.
        """
        conds = self.conditions(kind, value, n=n, seed=seed)
        label = f"{kind} {value}"
        if kind == "concept":
            label = f"concept {self.concept_names()[self._concept_index(value)]}"
        return _crops.crop_layers(self.store, conds, label=label, study_path=str(self.path),
                                  contrast=self.contrast)

    def overview_layers(self, n_conditions: int = 5, n: int = 4) -> list[tuple]:
        """What opening the Study shows: controls and the first perturbations, a few crops
        each, side by side.

        Parameters
        ----------
        n_conditions : int
            Most blocks, the control block included.
        n : int
            Crops per block.

        Returns
        -------
        list of tuple
            ``(data, kwargs, layer_type)`` napari layer data tuples.
        """
        conds = []
        ctrl = np.flatnonzero(_crops.control_mask(self.obs))
        if ctrl.size:
            conds.append(_crops.Condition("control", _crops.choose(ctrl, n), f"{ctrl.size} crops"))
        pert = self.obs["perturbation"].astype(str).to_numpy()
        for name in self.perturbations()[: max(0, n_conditions - len(conds))]:
            hit = np.flatnonzero(pert == name)
            conds.append(_crops.Condition(name, _crops.choose(hit, n), f"{hit.size} crops"))
        return _crops.crop_layers(self.store, conds, label=self.study.title,
                                  study_path=str(self.path), contrast=self.contrast)

    def field_layers(self) -> list[tuple]:
        """Whole fields and their masks, from a ``fields`` artefact.

        Returns
        -------
        list of tuple
            ``(data, kwargs, layer_type)`` napari layer data tuples (pixels read lazily).
        """
        from workbench.napari import _fields

        return _fields.study_field_layers(self)

    def open_layers(self) -> list[tuple]:
        """Layers for opening the Study as a file: fields when it has them, else crops.

        Returns
        -------
        list of tuple
            ``(data, kwargs, layer_type)`` napari layer data tuples.

        Raises
        ------
        MissingArtefactError
            When the Study holds neither fields nor images.
        """
        if self.has_fields:
            return self.field_layers()
        self.require_images()
        return self.overview_layers()


def open_source(path: str | Path) -> StudySource:
    """Open a Study for the plugin; a folder that is not a Study raises a clear error.

    Parameters
    ----------
    path : str or pathlib.Path
        The ``NAME.study`` folder.

    Returns
    -------
    StudySource
        The plugin's read side of the Study.

    Raises
    ------
    StudyNotFoundError
        When the folder has no ``study.json``.
    """
    path = Path(path)
    if path.is_dir() and not (path / "study.json").is_file():
        raise StudyNotFoundError(
            f"{path.name} is not a Study: it has no study.json.",
            "open a NAME.study folder made by `workbench demo` or `workbench import`, or a "
            "folder of TIFF fields.",
        )
    return StudySource(path)
