"""Every artefact the real steps write follows its declared schema, and each declared
required key is really checked (remove it and the error names it)."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from workbench.data.artefacts import ARTEFACTS, check_artefact
from workbench.data.study import Study
from workbench.errors import ValidationError


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory):
    """A tiny demo Study built by the real steps (simulate, embed, concepts, ...)."""
    path = tmp_path_factory.mktemp("schemas") / "tiny.study"
    from workbench.cli import main

    assert main(["demo", "--size", "tiny", "--out", str(path), "--no-serve"]) == 0
    return Study.open(path)


def test_every_artefact_of_the_demo_validates(tiny_demo):
    tiny_demo.validate(deep=True)
    declared = set(ARTEFACTS) & set(tiny_demo.artefacts)
    assert {"profiles", "perturbations", "concepts", "interactions", "pair_selection",
            "grn", "grn_samples", "velocity", "images"} <= declared


def _required(spec):
    for group in ("obs", "var", "obsm", "layers", "varp", "obsp", "uns", "columns",
                  "attrs", "json_keys"):
        for key in getattr(spec, group):
            if key.required and not any(c in key.name for c in "*+[("):
                yield group, key


def _drop(obj, group, key):
    if group in ("obs", "var"):
        getattr(obj, group).drop(columns=key, inplace=True)
    elif group in ("obsm", "layers", "varp", "obsp"):
        del getattr(obj, group)[key]
    elif group == "uns":
        parts = key.split("/")
        d = obj.uns["workbench"]
        for p in parts[:-1]:
            d = d[p]
        del d[parts[-1]]
    elif group == "columns":
        obj.drop(columns=key, inplace=True)
    elif group == "json_keys":
        del obj[key]


def _cases():
    for name, spec in ARTEFACTS.items():
        for group, key in _required(spec):
            if group != "attrs":
                yield pytest.param(name, group, key.name, id=f"{name}.{group}.{key.name}")


def _file_copy(obj, group, key, tmp_path, spec):
    """A copy of a folder artefact whose manifest lacks ``key``."""
    import json
    import shutil

    dst = tmp_path / "copy"
    shutil.copytree(obj, dst)
    doc = json.loads((dst / spec.manifest).read_text())
    del doc[key]
    (dst / spec.manifest).write_text(json.dumps(doc))
    return dst


@pytest.mark.parametrize("name,group,key", list(_cases()))
def test_removing_a_required_key_is_caught_and_named(tiny_demo, name, group, key, tmp_path):
    if not tiny_demo.has(name):
        pytest.skip(f"the tiny demo has no {name!r}")
    obj = tiny_demo.read(name)
    check_artefact(name, obj)  # as written: fine
    if ARTEFACTS[name].kind == "file":
        obj = _file_copy(obj, group, key, tmp_path, ARTEFACTS[name])
    else:
        obj = obj.copy() if hasattr(obj, "copy") and not isinstance(obj, dict) \
            else copy.deepcopy(obj)
        _drop(obj, group, key)
    with pytest.raises(ValidationError, match=rf"(?s){name}.*{key.split('/')[-1]}.*re-run"):
        check_artefact(name, obj)


def test_a_folder_artefact_without_its_manifest_is_named(tiny_demo, tmp_path):
    import shutil

    if not tiny_demo.has("concept_model"):
        pytest.skip("the tiny demo has no 'concept_model'")
    dst = tmp_path / "model"
    shutil.copytree(tiny_demo.read("concept_model"), dst)
    (dst / "model.json").unlink()
    with pytest.raises(ValidationError, match=r"(?s)concept_model.*model\.json"):
        check_artefact("concept_model", dst)


def test_wrong_dtypes_and_shapes_are_named(tiny_demo):
    prof = tiny_demo.read("profiles")
    bad = prof.copy()
    bad.obs["is_control"] = bad.obs["is_control"].astype(int)
    with pytest.raises(ValidationError, match="is_control.*bool"):
        check_artefact("profiles", bad)
    from workbench.data.artefacts import check_array

    samples = tiny_demo.read("grn_samples")
    genes = list(samples.attrs["genes"])
    with pytest.raises(ValidationError, match=f"samples x {len(genes)} x {len(genes)}"):
        check_array("grn_samples", np.zeros((4, len(genes), len(genes) - 1), np.uint8),
                    {"genes": genes})
    with pytest.raises(ValidationError, match="3 dimensions"):
        check_array("grn_samples", np.zeros((len(genes), len(genes)), np.uint8), {"genes": genes})
    table = tiny_demo.read("interactions")
    with pytest.raises(ValidationError, match="'p'.*number"):
        check_artefact("interactions", table.assign(p="small"))


def test_a_step_cannot_write_an_artefact_that_breaks_its_schema(tiny_demo, tmp_path):
    s = Study.create(tmp_path / "w.study")
    with pytest.raises(ValidationError, match="'interactions'.*no column 'gene_a'"):
        with s.step("interactions") as tx:
            tx.write_table("interactions", pd.DataFrame({"pair": ["A+B"], "p": [0.1]}))
    assert not Study.open(s.path).has("interactions")


def test_real_data_imports_validate(shared_data, tmp_path):
    from workbench.data import readers

    out = tmp_path / "real.study"
    lincs = shared_data / "lincs_cellpainting_profiles/SQ00015054_normalized_feature_select.csv.gz"
    readers.import_profiles(lincs, out)
    readers.import_relationships(shared_data / "efaar_benchmark_annotations/SIGNOR.txt.gz", out)
    readers.import_gi(shared_data / "norman2019_perturbseq_gi", out)
    study = Study.open(out).validate(deep=True)  # raises on any schema mismatch
    assert {"profiles", "relationships", "gi_scores"} <= set(study.artefacts)
    readers.import_velocity(shared_data / "rna_velocity_small/pancreas_veloviz_739cells.h5ad",
                            tmp_path / "vel.study")
    Study.open(tmp_path / "vel.study").validate(deep=True)
    dp = shared_data / "lincs_cellpainting_profiles/deepprofiler_SQ00014812_A01_site5_efficientnet.npz"
    readers.import_profiles(dp, tmp_path / "dp.study", control="DMSO")
    Study.open(tmp_path / "dp.study").validate(deep=True)
