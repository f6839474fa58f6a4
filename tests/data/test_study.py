"""The Study store: create, open, read, atomic writes, provenance, recovery."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from workbench.data import transaction as study_module
from workbench.data.study import STAGING, Study, checksum
from workbench.errors import MissingArtefactError, WorkbenchError

from .conftest import screen_adata, snapshot


def test_round_trip_of_every_artefact_kind(tmp_path):
    s = Study.create(tmp_path / "x.study", control_label="ctrl")
    adata = screen_adata()
    obs = adata.obs
    crops = np.random.default_rng(0).random((len(obs), 5, 8, 8)).astype("float32")
    with s.step("import", params={"k": 1}, seed=3) as tx:
        tx.write_anndata("profiles", adata)
        tx.write_table("results", pd.DataFrame({"pair": ["A+B"], "q": [0.01]}))
        tx.write_array("grn_samples", np.eye(3)[None].repeat(4, 0),
                       attrs={"orientation": "j->i", "genes": ["A", "B", "C"]})
        tx.write_json("ground_truth", {"genes": ["A", "B"]})
        tx.write_images("images", crops, obs, ["DNA", "ER", "RNA", "AGP", "Mito"])
    s2 = Study.open(s.path)
    assert s2.id == s.id and s2.control_label == "ctrl"
    back = s2.read("profiles")
    np.testing.assert_allclose(back.X, adata.X)
    np.testing.assert_allclose(back.obsm["X_emb_b1"], adata.obsm["X_emb_b1"])
    assert list(s2.read_obs("profiles").columns[:5]) == list(obs.columns[:5])
    assert s2.read("results")["q"].tolist() == [0.01]
    z = s2.read("grn_samples")
    assert z.shape == (4, 3, 3) and z.attrs["orientation"] == "j->i"
    assert s2.read("ground_truth") == {"genes": ["A", "B"]}
    store = s2.read("images")
    assert store.channel_names == ["DNA", "ER", "RNA", "AGP", "Mito"]
    np.testing.assert_allclose(store.get(["cell3", "cell0"]), crops[[3, 0]])
    np.testing.assert_allclose(store.crops[5].compute(), crops[5])
    # provenance records the step, its parameters, seed, version and output checksums
    (prov,) = s2.provenance
    assert prov["tool"] == "import" and prov["params"] == {"k": 1} and prov["seed"] == 3
    assert prov["outputs"]["profiles"] == checksum(s2.path / "profiles.zarr")
    assert prov["workbench_version"]
    s2.validate(deep=True)


def test_versions_bump_and_inputs_are_checksummed(study):
    before = study.artefacts["profiles"]["sha256"]
    with study.step("normalise", params={}, inputs=["profiles"]) as tx:
        tx.write_anndata("profiles", screen_adata(seed=5))
    assert study.version_of("profiles") == 2
    assert study.provenance[-1]["inputs"] == {"profiles": before}
    assert study.artefacts["profiles"]["sha256"] != before
    assert study.cache_key("profiles") == (study.id, ("profiles", 2))


def test_failed_step_leaves_the_study_unchanged(study):
    before = snapshot(study.path)
    with pytest.raises(RuntimeError):
        with study.step("broken") as tx:
            tx.write_anndata("profiles", screen_adata(seed=9))
            tx.write_table("new_table", pd.DataFrame({"a": [1]}))
            raise RuntimeError("boom")
    assert snapshot(study.path) == before
    assert not (study.path / STAGING).exists()


def test_keyboard_interrupt_during_a_step_leaves_the_study_unchanged(study):
    before = snapshot(study.path)
    with pytest.raises(KeyboardInterrupt):
        with study.step("interrupted") as tx:
            tx.write_table("results", pd.DataFrame({"pair": ["X"], "p": [1.0]}))
            raise KeyboardInterrupt
    assert snapshot(study.path) == before


def test_crash_in_the_middle_of_a_commit_is_rolled_back_on_open(study, monkeypatch):
    """A process that dies after swapping one artefact but before study.json is rewritten:
    it neither rolls back nor cleans up, and the kernel drops its locks."""
    before = snapshot(study.path)
    real_swap, real_roll_back = study_module._swap, study_module._roll_back
    calls = {"n": 0}

    def dying_swap(src, dst):
        calls["n"] += 1
        if calls["n"] == 2:  # the first new generation in place, the second not: power cut
            raise SystemExit("power cut")
        return real_swap(src, dst)

    monkeypatch.setattr(study_module, "_swap", dying_swap)
    monkeypatch.setattr(study_module, "_roll_back", lambda *a, **k: None)
    with pytest.raises(SystemExit):
        with study.step("half") as tx:
            tx.write_anndata("profiles", screen_adata(seed=7))
            tx.write_table("results", pd.DataFrame({"pair": ["Z"], "p": [0.0]}))
            # a dead process cleans nothing up; only its locks go
            monkeypatch.setattr(tx, "discard", tx._release)
    monkeypatch.setattr(study_module, "_swap", real_swap)
    monkeypatch.setattr(study_module, "_roll_back", real_roll_back)
    assert (study.path / STAGING).exists()  # the crash left its journal behind
    assert snapshot(study.path) != before  # and a half-done swap
    reopened = Study.open(study.path)
    assert snapshot(study.path) == before
    np.testing.assert_allclose(reopened.read("profiles").X, screen_adata().X)


def test_a_swap_that_fails_in_a_live_process_is_put_back_at_once(study, monkeypatch):
    before = snapshot(study.path)
    real_swap = study_module._swap
    calls = {"n": 0}

    def failing_swap(src, dst):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        return real_swap(src, dst)

    monkeypatch.setattr(study_module, "_swap", failing_swap)
    with pytest.raises(OSError, match="No space"):
        with study.step("half") as tx:
            tx.write_anndata("profiles", screen_adata(seed=7))
            tx.write_table("results", pd.DataFrame({"pair": ["Z"], "p": [0.0]}))
    assert snapshot(study.path) == before
    assert not (study.path / STAGING).exists()


def test_missing_artefact_names_the_step_to_run(study):
    with pytest.raises(MissingArtefactError, match="workbench concepts"):
        study.read("concepts")
    with pytest.raises(MissingArtefactError, match="grn"):
        with study.step("x", inputs=["grn"]):
            pass


def test_create_refuses_to_clobber(tmp_path, study):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "precious.txt").write_text("keep me")
    with pytest.raises(WorkbenchError, match="not empty"):
        Study.create(tmp_path / "other")
    with pytest.raises(WorkbenchError, match="not a Study"):
        Study.create(tmp_path / "other", overwrite=True)
    assert (tmp_path / "other" / "precious.txt").read_text() == "keep me"
    fresh = Study.create(study.path, overwrite=True)
    assert fresh.artefacts == {}


def test_remove_and_meta(study):
    with study.step("cleanup") as tx:
        tx.remove("results")
        tx.set_meta("note", "hello")
    s = Study.open(study.path)
    assert not s.has("results") and not (s.path / "results.parquet").exists()
    assert s.meta["note"] == "hello"
    assert json.loads((s.path / "study.json").read_text())["provenance"][-1]["removed"] == [
        "results"]
