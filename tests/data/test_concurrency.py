"""Many processes on one Study: readers while a step runs, two writers, kill -9, crafted paths."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench.data.study import STAGING, Study
from workbench.errors import StudyBusyError, StudyConflictError, StudyCorruptError

from .conftest import screen_adata, snapshot

# A writer that commits generation k of two artefacts that must agree: profiles.X is filled
# with k and the table "results" holds k. A reader that ever sees them disagree has seen a
# half-written Study.
WRITER = textwrap.dedent("""
    import sys, time
    import numpy as np, pandas as pd
    from workbench.data.study import Study
    sys.path.insert(0, sys.argv[3])
    from conftest import screen_adata
    study = Study.open(sys.argv[1])
    n, pause = int(sys.argv[2]), float(sys.argv[4])
    first = int(study.read("results")["k"].iloc[0]) + 1  # go on from the generation there
    print("ready", flush=True)
    for k in range(first, first + n):
        study.refresh()
        with study.step("gen", params={"k": k}) as tx:
            a = screen_adata()
            a.X = np.full_like(a.X, k)
            tx.write_anndata("profiles", a)
            time.sleep(pause)
            tx.write_table("results", pd.DataFrame({"k": [k]}))
            time.sleep(pause)
        print("committed", k, flush=True)
""")

READER = textwrap.dedent("""
    import sys, time
    from workbench.data.study import Study
    end = time.time() + float(sys.argv[2])
    seen = set()
    while time.time() < end:
        s = Study.open(sys.argv[1])
        s.summary()
        with s.snapshot():  # both reads of one generation, whatever commits meanwhile
            k = int(s.read("results")["k"].iloc[0])
            x = s.read("profiles").X
        assert (x == k).all(), f"half-written: table says {k}, profiles hold {set(x.ravel())}"
        seen.add(k)
    print("seen", sorted(seen), flush=True)
""")

# The same reads without a snapshot, as many times as the writer allows: each artefact is
# whole, but a pair may straddle a commit (which is what snapshot() is for).
PAIR_READER = textwrap.dedent("""
    import sys, time
    from workbench.data.study import Study
    end = time.time() + float(sys.argv[2])
    mixed = 0
    while time.time() < end:
        s = Study.open(sys.argv[1])
        k = int(s.read("results")["k"].iloc[0])
        x = s.read("profiles").X
        vals = set(float(v) for v in x.ravel())
        assert len(vals) == 1, f"one artefact half-written: profiles hold {vals}"
        mixed += vals != {float(k)}
    print("mixed", mixed, flush=True)
""")


def _py(code: str, *args, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _gen_study(tmp_path) -> Study:
    s = Study.create(tmp_path / "c.study", control_label="ctrl")
    with s.step("gen", params={"k": 0}) as tx:
        a = screen_adata()
        a.X = np.zeros_like(a.X)
        tx.write_anndata("profiles", a)
        tx.write_table("results", pd.DataFrame({"k": [0]}))
    return s


def _generation(path: Path) -> int:
    s = Study.open(path)
    s.validate(deep=True)
    k = int(s.read("results")["k"].iloc[0])
    assert (s.read("profiles").X == k).all()
    return k


@pytest.mark.slow
def test_readers_in_other_processes_never_break_a_running_step(tmp_path):
    s = _gen_study(tmp_path)
    here = Path(__file__).parent
    writer = _py(WRITER, s.path, 6, here, 0.3)
    readers = [_py(READER, s.path, 5) for _ in range(2)]
    pair = _py(PAIR_READER, s.path, 5)
    out, err = writer.communicate(timeout=300)
    assert writer.returncode == 0, err
    assert out.count("committed") == 6
    for r in readers:
        rout, rerr = r.communicate(timeout=300)
        assert r.returncode == 0, rerr
        assert rout.startswith("seen")
    pout, perr = pair.communicate(timeout=300)
    assert pair.returncode == 0, perr  # every artefact whole, with or without a snapshot
    assert pout.startswith("mixed")
    assert _generation(s.path) == 6
    assert not (s.path / STAGING).exists()


def test_a_snapshot_reads_one_generation_and_refuses_a_step_inside(study):
    import threading

    from workbench.errors import WorkbenchError

    s = Study.open(study.path)
    with s.snapshot():
        with s.snapshot():  # nested blocks share the outer lock
            s.read("profiles")
        with pytest.raises(WorkbenchError, match="snapshot"):
            with s.step("inside"):
                pass
        # a commit from another Study object waits until the block ends
        other = Study.open(study.path)
        landed = threading.Event()

        def write():
            with other.step("later") as tx:
                tx.write_table("results", pd.DataFrame({"pair": ["C+D"], "p": [0.1]}))
            landed.set()

        t = threading.Thread(target=write)
        t.start()
        assert not landed.wait(1.0), "a commit landed inside the snapshot"
        assert s.read("results")["pair"].tolist() == ["A+B"]
    t.join(timeout=60)
    assert landed.is_set()
    assert Study.open(study.path).read("results")["pair"].tolist() == ["C+D"]


def test_opening_the_study_leaves_a_live_transaction_alone(study):
    with study.step("slow") as tx:
        tx.write_table("results", pd.DataFrame({"pair": ["L"], "p": [0.2]}))
        staged = list((study.path / STAGING).iterdir())
        # another process opens, validates and lists the Study while this step runs
        code = ("import sys; from workbench.data.study import Study; "
                "s = Study.open(sys.argv[1]); s.validate(deep=True); print(len(s.artefacts))")
        proc = subprocess.run([sys.executable, "-c", code, str(study.path)],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        Study.open(study.path)  # and this process too
        assert list((study.path / STAGING).iterdir()) == staged
    assert Study.open(study.path).read("results")["pair"].tolist() == ["L"]


def test_two_steps_writing_different_artefacts_both_land(study):
    other = Study.open(study.path)
    with study.step("one") as tx1:
        tx1.write_table("results", pd.DataFrame({"pair": ["one"], "p": [0.1]}))
        with other.step("two") as tx2:
            tx2.write_table("more", pd.DataFrame({"pair": ["two"], "p": [0.2]}))
    s = Study.open(study.path)
    assert s.read("results")["pair"].tolist() == ["one"]
    assert s.read("more")["pair"].tolist() == ["two"]
    assert [p["tool"] for p in s.provenance][-2:] == ["two", "one"]


def test_a_second_writer_of_the_same_artefact_is_told_who_is_busy(study):
    other = Study.open(study.path)
    with study.step("first") as tx1:
        tx1.write_table("results", pd.DataFrame({"pair": ["first"], "p": [0.1]}))
        with pytest.raises(StudyBusyError, match="'first'.*'results'"):
            with other.step("second") as tx2:
                tx2.write_table("results", pd.DataFrame({"pair": ["second"], "p": [0.2]}))
    assert Study.open(study.path).read("results")["pair"].tolist() == ["first"]


def test_a_writer_that_declares_its_outputs_is_refused_before_it_works(study):
    other = Study.open(study.path)
    with study.step("first", outputs=["results"]):
        with pytest.raises(StudyBusyError, match="busy"):
            with other.step("second", outputs=["results"]):
                raise AssertionError("the second step must not start")


def test_a_step_whose_input_changed_meanwhile_is_refused_and_loses_nothing(study):
    stale = Study.open(study.path)
    sha_before = stale.meta["artefacts"]["profiles"]["sha256"]
    adata = stale.read("profiles")
    # another process rewrites profiles while this one works from the old version
    with Study.open(study.path).step("rewrite") as tx:
        tx.write_anndata("profiles", screen_adata(seed=5))
    with pytest.raises(StudyConflictError, match="'profiles'.*version 1.*version 2"):
        with stale.step("derive", inputs=["profiles"]) as tx:
            tx.write_table("results", pd.DataFrame({"n": [adata.n_obs]}))
    fresh = Study.open(study.path)
    np.testing.assert_allclose(fresh.read("profiles").X, screen_adata(seed=5).X)
    assert fresh.provenance[-1]["tool"] == "rewrite"
    # after a refresh the step runs, and provenance has the inputs as read at its start
    stale.refresh()
    sha_now = stale.meta["artefacts"]["profiles"]["sha256"]
    with stale.step("derive", inputs=["profiles"]) as tx:
        with Study.open(study.path).step("unrelated") as tx2:
            tx2.write_table("other", pd.DataFrame({"x": [1]}))
        tx.write_table("results", pd.DataFrame({"n": [1]}))
    prov = Study.open(study.path).provenance[-1]
    assert prov["tool"] == "derive" and prov["inputs"]["profiles"] == sha_now != sha_before


def test_two_concurrent_read_modify_writes_never_lose_one_silently(study):
    a, b = Study.open(study.path), Study.open(study.path)
    pa, pb = a.read("profiles"), b.read("profiles")
    pa.obsm["concepts_ra"] = np.ones((pa.n_obs, 2), np.float32)
    pb.obsm["concepts_rb"] = np.ones((pb.n_obs, 2), np.float32)
    with a.step("concepts", inputs=["profiles"]) as tx:
        tx.write_anndata("profiles", pa)
    with pytest.raises(StudyConflictError):
        with b.step("concepts", inputs=["profiles"]) as tx:
            tx.write_anndata("profiles", pb)
    assert "concepts_ra" in Study.open(study.path).read("profiles").obsm


@pytest.mark.slow
def test_kill_9_of_a_writer_at_random_moments_leaves_the_old_or_the_new_state(tmp_path):
    s = _gen_study(tmp_path)
    here = Path(__file__).parent
    rng = random.Random(20261201)
    last = 0
    for _ in range(20):
        proc = _py(WRITER, s.path, 1000, here, 0.0)
        # the kill lands at a random moment of the writing, whatever the imports took
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        time.sleep(rng.uniform(0.0, 2.0))
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
        k = _generation(s.path)  # opens (recovers), validates deeply, checks agreement
        assert k >= last
        last = k
        assert not (s.path / STAGING).exists() or not any((s.path / STAGING).iterdir())
    assert last > 0


# ---------------------------------------------------------------------- crafted Studies
def _outside(tmp_path) -> tuple[Path, dict]:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    (tmp_path / "loose.txt").write_text("me too")
    return victim, {"victim": snapshot(victim), "loose": (tmp_path / "loose.txt").read_text()}


def _unchanged(tmp_path, victim, before) -> None:
    assert victim.is_dir() and snapshot(victim) == before["victim"]
    assert (tmp_path / "loose.txt").read_text() == before["loose"]


@pytest.mark.parametrize("path", ["../victim", "/etc", "a/../../victim", ".staging/x",
                                  "study.json", 7])
def test_artefact_paths_outside_the_study_are_refused(study, tmp_path, path):
    victim, before = _outside(tmp_path)
    meta = json.loads((study.path / "study.json").read_text())
    meta["artefacts"]["results"]["path"] = path
    (study.path / "study.json").write_text(json.dumps(meta))
    with pytest.raises(StudyCorruptError, match="path of artefact 'results'"):
        Study.open(study.path)
    _unchanged(tmp_path, victim, before)


def test_a_link_that_leads_out_of_the_study_is_refused(study, tmp_path):
    victim, before = _outside(tmp_path)
    (study.path / "escape").symlink_to(victim)
    meta = json.loads((study.path / "study.json").read_text())
    meta["artefacts"]["results"]["path"] = "escape"
    (study.path / "study.json").write_text(json.dumps(meta))
    with pytest.raises(StudyCorruptError, match="outside the Study"):
        Study.open(study.path)
    _unchanged(tmp_path, victim, before)


def test_a_crafted_journal_cannot_move_or_delete_anything_outside(study, tmp_path):
    victim, before = _outside(tmp_path)
    tx = study.path / STAGING / "20260101T000000-deadbeef"
    (tx / "old").mkdir(parents=True)
    (tx / "journal.json").write_text(json.dumps({"items": [
        {"name": "x", "path": "../victim", "old_path": "../loose.txt"}]}))
    with pytest.raises(StudyCorruptError, match="journal path"):
        Study.open(study.path)
    _unchanged(tmp_path, victim, before)


def test_a_staging_entry_that_links_outside_is_dropped_without_following_it(study, tmp_path):
    victim, before = _outside(tmp_path)
    (study.path / STAGING).mkdir()
    (study.path / STAGING / "20260101T000000-linked").symlink_to(victim)
    Study.open(study.path)
    _unchanged(tmp_path, victim, before)
    assert not (study.path / STAGING).exists()


@pytest.mark.parametrize("field,value,match", [
    ("schema_version", "abc", "schema_version is 'abc'"),
    ("schema_version", True, "schema_version is True"),
    ("artefacts", [], "'artefacts' is a list"),
    ("provenance", {}, "'provenance' is a dict"),
])
def test_malformed_study_json_fields_get_a_clear_error(study, field, value, match):
    meta = json.loads((study.path / "study.json").read_text())
    meta[field] = value
    (study.path / "study.json").write_text(json.dumps(meta))
    with pytest.raises(StudyCorruptError, match=match):
        Study.open(study.path)


def test_rerunning_a_step_through_an_out_of_date_object_replaces_what_it_does_not_read(study):
    old_object = Study.open(study.path)
    with Study.open(study.path).step("elsewhere") as tx:
        tx.write_table("results", pd.DataFrame({"pair": ["elsewhere"], "p": [0.3]}))
    with old_object.step("again", inputs=["profiles"]) as tx:  # results is not an input
        tx.write_table("results", pd.DataFrame({"pair": ["again"], "p": [0.4]}))
    assert Study.open(study.path).read("results")["pair"].tolist() == ["again"]
