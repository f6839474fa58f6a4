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


def test_a_page_is_built_as_of_one_generation_a_commit_waits_for_it(tiny_study_path, tmp_path,
                                                                    monkeypatch):
    """The layout (views reading their artefacts) and the rendering (HoloViews plots reading
    theirs) happen in one ``study.snapshot()``: a step committed from elsewhere meanwhile
    lands only after the page is built (fails when the layout is built outside the block,
    or when the block is dropped)."""
    import shutil
    import threading

    import pandas as pd
    import panel as pn
    from bokeh.document import Document

    from workbench.dashboards import app
    from workbench.data.study import Study

    path = tmp_path / "copy.study"
    shutil.copytree(tiny_study_path, path)
    dash = app.build_app(Study.open(path), sync_url=False)
    other = Study.open(path)
    landed, seen = threading.Event(), []
    real_grid = app.Dashboard._grid

    def write():
        with other.step("elsewhere") as tx:
            tx.write_table("results", pd.DataFrame({"k": [1]}))
        landed.set()

    def grid(self):  # while the page is being laid out, another writer commits
        t = threading.Thread(target=write)
        t.start()
        seen.append(landed.wait(1.0))
        self._writer = t
        return real_grid(self)

    from workbench.dashboards.base import LiveGlyphs

    rendering = []
    real_attach = LiveGlyphs.attach

    def attach(self, plot, element):  # called as each live plot renders
        rendering.append(landed.wait(0.2))
        return real_attach(self, plot, element)

    monkeypatch.setattr(app.Dashboard, "_grid", grid)
    monkeypatch.setattr(LiveGlyphs, "attach", attach)
    page = pn.panel(dash)
    doc = Document()
    root = page.get_root(doc)
    assert seen == [False], "a commit landed while the page was laid out"
    assert rendering and not any(rendering), "a commit landed while the page was rendered"
    dash._writer.join(timeout=60)
    assert landed.is_set() and Study.open(path).has("results")
    assert root is not None and len(page.objects) == 4


def test_a_page_keeps_its_generation_after_a_commit_and_says_there_are_new_results(
        tiny_study_path, tmp_path):
    """Another process rewrites ``interactions`` after the page is built: the page keeps
    reading the generation it was built on (no mix of old version key and new files), and
    its notice names what changed, by which step, and says to reload (fails when a rewrite
    replaces the files in place, or when the notice does not compare versions)."""
    import shutil

    import pandas as pd
    from bokeh.document import Document

    from workbench.dashboards import app
    from workbench.data.study import Study

    path = tmp_path / "copy.study"
    shutil.copytree(tiny_study_path, path)
    dash = app.build_app(Study.open(path), sync_url=False)
    pn.panel(dash).get_root(Document())
    before = dash.study.read("interactions")
    assert dash.check_for_changes() == [] and not dash.notice.visible
    other = Study.open(path)
    new = other.read("interactions").assign(p=1.0, q=1.0)
    with other.step("rerun-tests") as tx:
        tx.write_table("interactions", new)
    assert dash.check_for_changes() == ["interactions"]
    said = dash.notice.object.replace("\\", "")  # as rendered (Markdown escapes dropped)
    assert dash.notice.visible and "new results**: interactions (step rerun-tests" in said
    assert "reload" in said
    # the page's Study object still describes, and reads, the generation it was built on
    mine = dash.study.read("interactions")
    pd.testing.assert_series_equal(mine["p"], before["p"])
    assert not (mine["p"] == 1.0).all()
    assert dash.check_for_changes() == ["interactions"]  # unchanged file: same answer
    later = app.build_app(Study.open(path), sync_url=False)  # a page opened now
    pn.panel(later).get_root(Document())
    assert later.check_for_changes() == [] and not later.notice.visible
    assert (later.study.read("interactions")["p"] == 1.0).all()


def test_a_served_page_shows_the_new_results_notice_by_itself(tiny_study_path, tmp_path):
    """In a real server session the page checks the Study on its own: a step committed
    from another Study object shows the notice within a few seconds (fails when the
    periodic check is not registered for served sessions)."""
    import shutil
    import socket
    import time
    import urllib.request

    from workbench.dashboards import app
    from workbench.dashboards.serve import serve_study
    from workbench.data.study import Study

    path = tmp_path / "served.study"
    shutil.copytree(tiny_study_path, path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    thread = serve_study(path, port=port, threaded=True, warm=False)
    try:
        for _ in range(400):
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=60)
                break
            except OSError:
                time.sleep(0.05)
        assert page.status == 200
        served = [d for d in list(app.LIVE) if d._watcher is not None
                  and d.study.path == path]
        assert len(served) == 1 and not served[0].notice.visible
        other = Study.open(path)
        with other.step("rerun-tests") as tx:
            tx.write_table("interactions", other.read("interactions"))
        for _ in range(150):  # checked every 5 s
            if served[0].notice.visible:
                break
            time.sleep(0.1)
        assert served[0].notice.visible
        assert "interactions" in served[0].notice.object
    finally:
        thread.stop()


def test_a_page_builds_its_panels_once_however_often_it_is_rendered(study, monkeypatch):
    """A second ``get_root`` (a notebook cell shown again, a second document) reuses the
    panels built at the first (fails when the page rebuilds them every time)."""
    from bokeh.document import Document

    from workbench.dashboards import app

    calls = []
    real = app.Dashboard._grid
    monkeypatch.setattr(app.Dashboard, "_grid",
                        lambda self: (calls.append(1), real(self))[1])
    dash = app.build_app(study, sync_url=False)
    page = pn.panel(dash)
    page.get_root(Document())
    first = list(page.objects)
    page.get_root(Document())
    assert calls == [1] and page.objects == first
