"""A Study as the napari plugin sees it: what can be browsed, and the layers for a choice.

:class:`StudySource` opens a Study once, keeps its image store and crop table, lists the
perturbations, pairs and concepts it can show, and builds napari layer data for one of
them (see :mod:`workbench.napari._crops` for the layout). It imports no Qt, so the reader,
the dock widget and the command line share it, and tests can check the layers without a
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
    path
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
        return _crops.perturbation_names(self.obs) if self.has_images else []

    def pairs(self) -> list[str]:
        """Pairs with crops for the double and both singles; pairs named by the
        ``interactions`` table come first when it exists."""
        if not self.has_images:
            return []
        found = _crops.pair_names(self.obs)
        ranked = self._ranked_pairs()
        key = {frozenset(_crops.gene_set(p)): p for p in found}
        first = [key.pop(frozenset(_crops.gene_set(p))) for p in ranked
                 if frozenset(_crops.gene_set(p)) in key]
        return first + list(key.values())

    def _ranked_pairs(self) -> list[str]:
        if not self.study.has("interactions"):
            return []
        try:
            df = self.study.read("interactions")
        except Exception:  # a table we cannot rank by is not worth failing the browser
            return []
        for col in ("pair", "genes", "perturbation"):
            if col in df.columns:
                return df[col].astype(str).tolist()
        if {"gene_a", "gene_b"} <= set(df.columns):
            return (df["gene_a"].astype(str) + "+" + df["gene_b"].astype(str)).tolist()
        return []

    # ------------------------------------------------------------------ concepts
    def concept_names(self) -> list[str]:
        """Concept labels: the ``concepts`` artefact's names, else ``0..K-1`` from the
        per-crop activations in ``profiles``."""
        acts = self._activation_key()
        if self.study.has("concepts"):
            try:
                names = self.study.read_obs("concepts").index.astype(str).tolist()
                if names:
                    return names
            except Exception:
                pass
        if acts is None:
            return []
        return [str(i) for i in range(self._profiles_obsm_shape(acts)[1])]

    def _activation_key(self) -> str | None:
        """The ``profiles.obsm`` key of the per-crop concept codes: the one the concepts step
        names in ``uns["workbench"]["profiles_key"]``, else the first ``concepts_*``."""
        if not self.study.has("profiles"):
            return None
        import zarr

        group = zarr.open_group(self.study.artefact_path("profiles"), mode="r")
        keys = sorted(group["obsm"].keys()) if "obsm" in group else []
        named = self._concepts_uns.get("profiles_key")
        if named in keys:
            return named
        keys = [k for k in keys if k.startswith("concepts")]
        return keys[0] if keys else None

    def _profiles_obsm_shape(self, key: str) -> tuple[int, ...]:
        import zarr

        node = zarr.open_group(self.study.artefact_path("profiles"), mode="r")["obsm"][key]
        shape = node.shape if isinstance(node, zarr.Array) else node.attrs.get("shape")
        return tuple(int(x) for x in shape)

    @cached_property
    def _concepts_uns(self) -> dict:
        if not self.study.has("concepts"):
            return {}
        try:
            import zarr
            from anndata.io import read_elem

            group = zarr.open_group(self.study.artefact_path("concepts"), mode="r")
            uns = read_elem(group["uns"]["workbench"]) if "uns" in group \
                and "workbench" in group["uns"] else {}
        except Exception:  # an unreadable annotation should not block the crops
            return {}
        return uns if isinstance(uns, dict) else {}

    def concept_activations(self, concept: str | int) -> tuple[np.ndarray, np.ndarray, str]:
        """Activations of one concept over the crops, their image-store rows, and its name."""
        key = self._activation_key()
        names = self.concept_names()
        if key is None:
            raise MissingArtefactError(
                f"Study {self.path.name} has no concept activations per crop "
                "(profiles.obsm['concepts_*']).",
                "run `workbench concepts STUDY` first.",
            )
        concept = str(concept)
        if concept in names:
            k = names.index(concept)
        elif concept.isdigit() and int(concept) < len(names):
            k = int(concept)
        else:
            raise UnknownGeneError(
                f"concept {concept!r} is not in Study {self.path.name}"
                f"{_crops._suggest(concept, names)}; it has {len(names)} concepts.",
                "pick a concept listed in the browser (or by `workbench info STUDY`).",
            )
        import zarr
        from anndata.io import read_elem

        group = zarr.open_group(self.study.artefact_path("profiles"), mode="r")
        codes = group["obsm"][key]
        if isinstance(codes, zarr.Array):
            acts = np.asarray(codes[:, k], dtype=float)
        else:  # sparse codes (CSR) for large screens
            acts = np.asarray(read_elem(codes)[:, [k]].toarray(), dtype=float).ravel()
        crop_ids = read_elem(group["obs"]).index.astype(str)
        pos = pd.Index(self.obs.index.astype(str)).get_indexer(crop_ids)
        keep = pos >= 0
        return acts[keep], pos[keep], names[k]

    def concept_exemplars(self, name: str) -> np.ndarray:
        """Image-store rows of the exemplars the concepts step chose for concept ``name``
        (``concepts.uns["workbench"]["exemplars"]``), in its order; empty when none."""
        ex = self._concepts_uns.get("exemplars") or {}
        ids = [str(i) for i in np.atleast_1d(ex.get(name, []))]
        pos = pd.Index(self.obs.index.astype(str)).get_indexer(ids) if ids else np.array([])
        return np.asarray(pos, dtype=int)[np.asarray(pos) >= 0] if len(ids) else \
            np.zeros(0, int)

    # ------------------------------------------------------------------ layers
    def conditions(self, kind: str, value: str, n: int = N_CROPS, seed: int = 0):
        """The condition blocks for ``kind`` in {"perturbation", "pair", "concept"}."""
        if kind == "perturbation":
            return _crops.perturbation_conditions(self.obs, value, n=n, seed=seed)
        if kind == "pair":
            return _crops.pair_conditions(self.obs, value, n=n, seed=seed)
        if kind == "concept":
            acts, pos, name = self.concept_activations(value)
            k = max(1, min(n, 8))
            conds = _crops.concept_conditions(acts, pos, n=k)
            stored = self.concept_exemplars(name)[:k]
            if stored.size:  # the top block shows what the dashboards show
                conds[-1] = _crops.Condition("top", stored, "exemplars of the concepts step")
            return conds
        raise ValueError(f"unknown selection kind {kind!r}")

    def layers(self, kind: str, value: str, n: int = N_CROPS, seed: int = 0) -> list[tuple]:
        """napari layer data for one selection (a comparison grid, one layer per channel)."""
        conds = self.conditions(kind, value, n=n, seed=seed)
        label = f"{kind} {value}"
        if kind == "concept":
            label = f"concept {self.concept_activations(value)[2]}"
        return _crops.crop_layers(self.store, conds, label=label, study_path=str(self.path),
                                  contrast=self.contrast)

    def overview_layers(self, n_conditions: int = 5, n: int = 4) -> list[tuple]:
        """What opening the Study shows: controls and the first perturbations, a few crops
        each, side by side."""
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
        """Whole fields and their masks, from a ``fields`` artefact."""
        from workbench.napari import _fields

        return _fields.study_field_layers(self)

    def open_layers(self) -> list[tuple]:
        """Layers for opening the Study as a file: fields when it has them, else crops."""
        if self.has_fields:
            return self.field_layers()
        self.require_images()
        return self.overview_layers()


def open_source(path: str | Path) -> StudySource:
    """Open a Study for the plugin; a folder that is not a Study raises a clear error."""
    path = Path(path)
    if path.is_dir() and not (path / "study.json").is_file():
        raise StudyNotFoundError(
            f"{path.name} is not a Study: it has no study.json.",
            "open a NAME.study folder made by `workbench demo` or `workbench import`, or a "
            "folder of TIFF fields.",
        )
    return StudySource(path)
