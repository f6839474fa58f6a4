"""Sessions of one served Study keep their own selections, and each links to its own napari.

No session writes into the Study; a new session starts empty (or from its URL); the
"Open in napari" link is a channel file of that session alone, followed both ways.
"""

from __future__ import annotations

import os

import pytest

pn = pytest.importorskip("panel")

from workbench.dashboards.app import build_app, napari_command  # noqa: E402
from workbench.napari._follow import SelectionFollower  # noqa: E402  (Qt-free)


def _tree(path):
    """Every file of a folder with its modification time (to see that nothing changed)."""
    return {p: os.stat(os.path.join(d, p)).st_mtime_ns
            for d, _, files in os.walk(path) for p in files}


def test_sessions_are_separate_write_nothing_and_start_empty(study):
    before = _tree(study.path)
    a = build_app(study, sync_url=False)
    b = build_app(study, sync_url=False)
    a.selection.choose_gene("G03")
    b.selection.choose_gene("G05")
    assert (a.selection.perturbation, b.selection.perturbation) == ("G03", "G05")
    c = build_app(study, sync_url=False)  # a later user starts empty, not on G05
    assert c.selection.to_dict() == {"perturbation": "", "concept": "", "pair": "",
                                     "samples": []}
    assert _tree(study.path) == before  # no selection file in the Study
    assert a.view("grn") is a.view("grn") and a.view("grn") is not b.view("grn")


def test_napari_link_is_per_session_and_two_way(study, tmp_path):
    a = build_app(study, sync_url=False, channel_dir=tmp_path)
    b = build_app(study, sync_url=False, channel_dir=tmp_path)
    la, lb = a.link_napari(), b.link_napari()
    assert la.channel.path != lb.channel.path and a.link_napari() is la
    assert napari_command(study.path, la.channel.path)[-4:] == [
        "napari", str(study.path), "--channel", str(la.channel.path)]
    # the napari side of session a follows a only
    napari_a = SelectionFollower(la.channel.path, study.id)
    a.selection.choose_gene("G02")
    b.selection.choose_gene("G07")
    assert napari_a.poll() == ("perturbation", "G02")
    a.selection.choose_pair("G01", "G05")
    assert napari_a.poll() == ("pair", "G01+G05")
    assert napari_a.poll() is None
    # and writes back: a click on a crop in napari selects its gene and the crop in a
    crop = str(study.read_obs("profiles").index[0])
    napari_a.choose("perturbation", "G03", sample=crop)
    assert la.poll() and not lb.poll()
    assert a.selection.perturbation == "G03" and a.selection.samples == [crop]
    assert a.selection.pair == ""  # G03 is not in the pair G01+G05
    assert b.selection.perturbation == "G07"
    # applying napari's choice is not echoed back to napari as a new choice
    assert napari_a.poll() is None
    napari_a.choose("concept", "c003")
    assert la.poll() and a.selection.concept == "c003"
    a.close()
    assert not la.channel.path.exists() and lb.channel.path.exists()
    a.selection.choose_gene("G04")  # a closed link writes nothing any more
    assert not la.channel.path.exists()
