"""Artefact generations: a rewrite never touches the files a reader opened before it.

A Study object (a served page, a notebook) that read ``study.json`` before another process
committed a step keeps describing the old generation. These tests check that it then reads
that generation whole (eagerly and through a lazy Zarr array), never the new files under
the old version's name (the cache key), that only the current and the previous generation
stay on disk, and that a reader two commits behind is told what changed.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from workbench.data import transaction as study_module
from workbench.data.study import STAGING, Study
from workbench.errors import StudyChangedError, StudyCorruptError


def _write(study: Study, value: float) -> None:
    with study.step("grn", params={"value": value}) as tx:
        tx.write_array("grn_samples", np.full((4, 3, 3), value),
                       attrs={"orientation": "j->i", "genes": ["A", "B", "C"]})
        tx.write_table("results", pd.DataFrame({"pair": ["A+B"], "p": [value / 10]}))


@pytest.fixture()
def study(tmp_path):
    s = Study.create(tmp_path / "g.study", control_label="ctrl")
    _write(s, 1.0)
    return s


def _artefact_files(study: Study) -> set[str]:
    return {p.name for p in study.path.iterdir() if not p.name.startswith(".")} - {"study.json"}


def test_a_reader_opened_before_a_commit_reads_its_own_generation_whole(study):
    reader = Study.open(study.path)  # e.g. a page built before the step
    lazy = reader.read("grn_samples")  # a lazy Zarr array, read chunk by chunk later
    key = reader.cache_key("grn_samples", "results")
    _write(Study.open(study.path), 2.0)  # another process commits a new generation
    # the old object, its cache key unchanged, reads the old generation: no mixing
    assert reader.cache_key("grn_samples", "results") == key
    assert float(np.asarray(reader.read("grn_samples")).max()) == 1.0
    assert reader.read("results")["p"].tolist() == [0.1]
    assert float(np.asarray(lazy[:]).max()) == 1.0
    # a fresh object (or a refresh) sees the new one
    fresh = Study.open(study.path)
    assert fresh.version_of("grn_samples") == 2
    assert float(np.asarray(fresh.read("grn_samples")).max()) == 2.0
    assert fresh.read("results")["p"].tolist() == [0.2]
    assert float(np.asarray(reader.refresh().read("grn_samples")).max()) == 2.0


def test_only_the_current_and_the_previous_generation_stay_on_disk(study):
    for v in (2.0, 3.0, 4.0):
        _write(Study.open(study.path), v)
    s = Study.open(study.path)
    entry = s.artefacts["grn_samples"]
    assert entry["version"] == 4 and entry["path"] == "grn_samples.v4.zarr"
    assert entry["previous"] == {"path": "grn_samples.v3.zarr", "version": 3}
    assert _artefact_files(s) == {"grn_samples.v4.zarr", "grn_samples.v3.zarr",
                                  "results.v4.parquet", "results.v3.parquet"}
    s.validate()


def test_a_reader_two_commits_behind_is_told_what_changed(study):
    reader = Study.open(study.path)
    _write(Study.open(study.path), 2.0)
    _write(Study.open(study.path), 3.0)
    with pytest.raises(StudyChangedError, match=r"'grn_samples'.*version 3.*step 'grn'") as e:
        reader.read("grn_samples")
    assert "refresh" in e.value.fix
    with pytest.raises(StudyChangedError):
        reader.read("results")
    # a missing file of the current generation is still reported as damage, not change
    fresh = Study.open(study.path)
    (fresh.path / fresh.artefacts["results"]["path"]).unlink()
    with pytest.raises(StudyCorruptError):
        fresh.read("results")


def test_versions_continue_after_a_removal(study):
    """A cache keyed on (study, name, version) must not return the removed generation."""
    old_key = study.cache_key("results")
    with study.step("drop") as tx:
        tx.remove("results")
    assert not (study.path / "results.parquet").exists()
    with study.step("again") as tx:
        tx.write_table("results", pd.DataFrame({"pair": ["C+D"], "p": [0.5]}))
    s = Study.open(study.path)
    assert s.cache_key("results") != old_key and s.version_of("results") == 2
    assert s.read("results")["pair"].tolist() == ["C+D"]
    assert "retired_versions" not in json.loads((s.path / "study.json").read_text())


def test_a_process_that_dies_after_its_commit_point_leaves_no_stale_generation(
        study, monkeypatch):
    _write(Study.open(study.path), 2.0)

    def die(root, paths):
        raise SystemExit("killed after study.json was written")

    monkeypatch.setattr(study_module, "expire_generations", die)
    s = Study.open(study.path)
    with pytest.raises(SystemExit):
        with s.step("grn") as tx:
            tx.write_array("grn_samples", np.full((4, 3, 3), 3.0),
                           attrs={"orientation": "j->i", "genes": ["A", "B", "C"]})
            monkeypatch.setattr(tx, "discard", tx._release)  # a dead process cleans nothing
    monkeypatch.undo()
    assert (study.path / "grn_samples.zarr").exists()  # generation 1 is still there
    reopened = Study.open(study.path)  # recovery finishes the commit
    assert reopened.version_of("grn_samples") == 3
    assert float(np.asarray(reopened.read("grn_samples")).max()) == 3.0
    assert not (study.path / "grn_samples.zarr").exists()
    assert not (study.path / STAGING).exists()


def test_a_previous_path_outside_the_study_is_refused(study, tmp_path):
    meta = json.loads((study.path / "study.json").read_text())
    meta["artefacts"]["results"]["previous"] = {"path": "../outside.parquet", "version": 1}
    (study.path / "study.json").write_text(json.dumps(meta))
    (tmp_path / "outside.parquet").write_text("keep me")
    with pytest.raises(StudyCorruptError, match="previous path"):
        Study.open(study.path)
    assert (tmp_path / "outside.parquet").read_text() == "keep me"


def test_a_handle_names_what_other_processes_changed_on_disk(study):
    """``changes_on_disk`` compares this handle's versions with study.json on disk: a
    rewrite, an addition and a removal by another handle are each named, with the step
    for what is on disk and None for what is gone; the handle itself is not reloaded
    (fails when it compares against its own meta, or reloads it)."""
    reader = Study.open(study.path)
    stamp = reader.meta_stamp()
    assert stamp is not None and reader.changes_on_disk() == {}
    other = Study.open(study.path)
    with other.step("rerun") as tx:
        tx.write_table("results", pd.DataFrame({"pair": ["A+B"], "p": [0.9]}))
        tx.write_table("extra", pd.DataFrame({"x": [1]}))
        tx.remove("grn_samples")
    assert reader.meta_stamp() != stamp
    changed = reader.changes_on_disk()
    assert list(changed) == ["extra", "grn_samples", "results"]
    assert changed["grn_samples"] is None
    assert changed["results"]["version"] == 2 and changed["results"]["step"] == "rerun"
    assert changed["extra"]["step"] == "rerun"
    assert reader.version_of("results") == 1 and reader.has("grn_samples")  # not reloaded
    assert reader.refresh().changes_on_disk() == {}
    (study.path / "study.json").write_text("{not json")
    with pytest.raises(StudyCorruptError):
        reader.changes_on_disk()
