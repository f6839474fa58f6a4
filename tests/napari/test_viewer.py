"""The plugin inside a real napari viewer (Xvfb, Mesa OpenGL)."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.napari


def _browser(viewer, **kw):
    """A Study browser docked in the viewer, so that it closes with it."""
    from workbench.napari._widget import StudyBrowser

    browser = StudyBrowser(viewer, **kw)
    viewer.window.add_dock_widget(browser, name="Study browser")
    return browser


def _image_layers(viewer):
    return [lay for lay in viewer.layers if lay.__class__.__name__ == "Image"]


def test_reader_opens_the_demo_study(make_napari_viewer, demo_study):
    from workbench.data.study import Study

    store = Study.open(demo_study).read("images")
    viewer = make_napari_viewer()
    viewer.open(str(demo_study), plugin="workbench")
    images = _image_layers(viewer)
    assert [lay.name.split(": ")[-1] for lay in images] == store.channel_names
    assert [lay.colormap.name for lay in images] == store.channel_colors
    assert [lay.blending for lay in images] == ["additive"] * len(images)
    info = images[0].metadata["workbench"]
    assert info["conditions"][0]["title"] == "control"
    # the pixels shown are the stored crops
    y, x, _, cid = info["cells"][0]
    h, w = info["crop_hw"]
    np.testing.assert_array_equal(images[1].data[y:y + h, x:x + w], store.get([cid])[0, 1])
    # the browser docked afterwards picks the Study up from the layers
    browser = _browser(viewer)
    assert browser.source is not None and browser.source.path == demo_study
    # and on the demo Study a planted pair loads its four conditions
    pair = browser.source.pairs()[0]
    a, b = pair.split("+")
    assert browser.show_pair(pair, n=4)
    info = _image_layers(viewer)[0].metadata["workbench"]
    assert [c["title"] for c in info["conditions"]] == ["control", a, b, pair]
    for _, _, ci, cid in info["cells"]:
        assert store.obs.loc[cid, "perturbation"] == ["control", a, b, pair][ci]


def test_widget_loads_a_perturbation(make_napari_viewer, toy_study):
    viewer = make_napari_viewer()
    _, browser = viewer.window.add_plugin_dock_widget("workbench", "Study browser")
    assert browser.open_study(toy_study)
    assert browser.choice_box.count() == 4  # A, B, C, A+B
    assert browser.show_perturbation("A", n=4)
    names = [lay.name for lay in viewer.layers]
    assert names == ["perturbation A: DNA", "perturbation A: RNA", "perturbation A: Mito",
                     "perturbation A: masks", "perturbation A: conditions"]
    images = _image_layers(viewer)
    assert [lay.colormap.name for lay in images] == ["blue", "cyan", "magenta"]
    # contrast limits come from the controls, shared by both blocks
    assert [tuple(lay.contrast_limits) for lay in images] == [
        pytest.approx(c) for c in browser.source.contrast]
    # control block and A block: 4 crops each, A is brighter in Mito (its planted effect)
    info = images[0].metadata["workbench"]
    assert [c["title"] for c in info["conditions"]] == ["control", "A"]
    mito = images[2].data
    h, w = info["crop_hw"]
    per = {0: [], 1: []}
    for y, x, ci, _ in info["cells"]:
        per[ci].append(mito[y:y + h, x:x + w].mean())
    assert min(per[1]) > max(per[0])
    # loading another choice replaces the layers instead of piling them up
    assert browser.show_perturbation("B", n=4)
    assert len(viewer.layers) == 5 and viewer.layers[0].name == "perturbation B: DNA"


def test_widget_loads_the_four_conditions_of_a_pair(make_napari_viewer, toy_study):
    viewer = make_napari_viewer()
    browser = _browser(viewer, study=toy_study)
    assert browser.show_pair("A+B", n=3)
    images = _image_layers(viewer)
    assert len(images) == 3
    info = images[0].metadata["workbench"]
    assert [c["title"] for c in info["conditions"]] == ["control", "A", "B", "A+B"]
    points = viewer.layers["pair A+B: conditions"]
    assert [t.split(" (")[0] for t in points.features["title"]] == ["control", "A", "B", "A+B"]
    # the cursor over a crop of the double names it
    y, x, ci, cid = [c for c in info["cells"] if c[2] == 3][0]
    viewer.cursor.position = (y + 5, x + 5)
    assert browser.cursor_label.text().startswith(f"crop {cid} [A+B]")
    assert "perturbation=A+B" in browser.cursor_label.text()


def test_widget_shows_concept_exemplars(make_napari_viewer, toy_study):
    viewer = make_napari_viewer()
    browser = _browser(viewer, study=toy_study)
    assert browser.show_concept(0, n=4)  # concept 0 is the Mito intensity
    info = _image_layers(viewer)[0].metadata["workbench"]
    assert [c["title"] for c in info["conditions"]] == ["q50", "q90", "q99", "top"]
    top = [cid for _, _, ci, cid in info["cells"] if ci == 3]
    assert set(browser.source.obs.loc[top, "perturbation"]) <= {"A", "A+B"}


def test_widget_follows_a_dashboard_session_both_ways(make_napari_viewer, toy_study, tmp_path):
    from workbench.data.selection import SelectionChannel

    dashboard = SelectionChannel.create(tmp_path)  # what a session's "Open in napari" makes
    viewer = make_napari_viewer()
    browser = _browser(viewer, study=toy_study, channel=dashboard.path)
    browser.set_follow(True)
    assert browser._timer is not None and browser._timer.isActive()
    dashboard.write({"perturbation": "C"}, source="dashboard")
    assert browser.poll_selection()
    assert viewer.layers[0].name == "perturbation C: DNA"
    dashboard.write({"perturbation": "C", "pair": "A+B"}, source="dashboard")
    assert browser.poll_selection()
    assert viewer.layers[0].name == "pair A+B: DNA"
    # the other way: Show in napari selects in the dashboard session
    assert browser.choose("perturbation", "A")
    got = dashboard.poll(me="dashboard")
    assert got["perturbation"] == "A" and got["pair"] == "A+B"  # A is in the pair: kept
    assert browser.choose("perturbation", "B")
    got = dashboard.poll(me="dashboard")
    assert got["perturbation"] == "B" and got["pair"] == "A+B"
    assert browser.choose("pair", "A+B") and browser.choose("perturbation", "C")
    got = dashboard.poll(me="dashboard")
    assert got["perturbation"] == "C" and got["pair"] == ""  # C is not in A+B
    # a click on a crop selects that crop and its perturbation
    info = _image_layers(viewer)[0].metadata["workbench"]
    y, x, ci, cid = [c for c in info["cells"] if c[2] == 1][0]  # a crop of C
    assert browser.click((y + 5, x + 5))["crop_id"] == cid
    got = dashboard.poll(me="dashboard")
    assert got["samples"] == [cid] and got["perturbation"] == "C"
    assert not browser.poll_selection()  # napari's own writes do not come back to it
    browser.set_follow(False)
    assert browser._timer is None


def test_follow_needs_a_dashboard_session(make_napari_viewer, toy_study):
    viewer = make_napari_viewer()
    browser = _browser(viewer, study=toy_study)
    assert not browser.follow_box.isEnabled()
    browser.set_follow(True)
    assert browser._timer is None and not browser.follow_box.isChecked()
    assert "Open in napari" in browser.message.text()


@pytest.mark.slow
def test_screenshot_shows_the_channels(make_napari_viewer, toy_study):
    viewer = make_napari_viewer(show=True)
    browser = _browser(viewer, study=toy_study)
    assert browser.show_pair("A+B", n=4)
    shot = viewer.screenshot(canvas_only=True, flash=False)
    rgb = shot[..., :3].astype(int)
    lit = rgb.max(axis=-1) > 30
    assert lit.mean() > 0.05
    # each channel alone lights up in its own colour (blue DNA, cyan RNA, magenta Mito);
    # with every channel off the canvas is black, so the pixels came from the data
    images = _image_layers(viewer)
    expect = {"blue": (False, False, True), "cyan": (False, True, True),
              "magenta": (True, False, True)}
    for lay in images:
        for other in images:
            other.visible = other is lay
        rgb = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)
        on = np.array(expect[lay.colormap.name])
        hi = rgb > 80
        assert (hi == on).all(axis=-1).sum() > 200, lay.name
        assert not (hi[..., ~on]).any(axis=-1).sum() > 0.01 * hi[..., 0].size, lay.name
    for lay in images:
        lay.visible = False
    dark = viewer.screenshot(canvas_only=True, flash=False)[..., :3]
    assert (dark.max(axis=-1) > 30).mean() < 0.01


@pytest.mark.slow
@pytest.mark.realdata
def test_nf1_fields_open_with_masks_as_labels(make_napari_viewer, nf1_fields, tmp_path):
    viewer = make_napari_viewer()
    viewer.open(str(nf1_fields), plugin="workbench")
    images = _image_layers(viewer)
    assert [lay.name for lay in images] == ["DAPI", "GFP", "RFP"]
    assert [lay.colormap.name for lay in images] == ["blue", "green", "magenta"]
    assert images[0].data.shape == (5, 904, 1224)
    labels = {lay.name: lay for lay in viewer.layers if lay.__class__.__name__ == "Labels"}
    assert {"nuclei mask", "cells mask"} <= set(labels)
    nuc = np.asarray(labels["nuclei mask"].data)
    assert nuc.shape == (5, 904, 1224)
    # one id per nucleus, and nuclei sit on bright DAPI
    assert all(len(np.unique(nuc[i])) > 5 for i in range(5))
    dapi = np.asarray(images[0].data)
    assert dapi[nuc > 0].mean() > 1.5 * dapi[nuc == 0].mean()
    # the plate map beside the images names each field's genotype
    assert sorted(set(images[0].metadata["workbench"]["perturbation"])) == ["Null", "WT"]

    # the same plate imported into a Study opens as its fields, masks as labels layers
    from workbench.data.readers.images import import_images

    study = tmp_path / "nf1.study"
    import_images(nf1_fields, study, nf1_fields / "platemap_NF1_plate2.csv")
    viewer.layers.clear()
    viewer.open(str(study), plugin="workbench")
    assert [lay.name for lay in _image_layers(viewer)] == ["DAPI", "GFP", "RFP"]
    labels = {lay.name: lay for lay in viewer.layers if lay.__class__.__name__ == "Labels"}
    assert {"nuclei mask", "cells mask"} <= set(labels)
    np.testing.assert_array_equal(np.asarray(labels["nuclei mask"].data[1]) > 0, nuc[1] > 0)
    # and the browser shows its crops: WT controls beside NF1-null cells
    browser = _browser(viewer, study=study)
    assert browser.show_perturbation("Null", n=4)
    assert len(_image_layers(viewer)) == 6  # the fields stay beside the crop grid
    info = browser.layers[0].metadata["workbench"]
    got = {ci: set(browser.source.obs.loc[[c[3] for c in info["cells"] if c[2] == ci],
                                          "perturbation"]) for ci in (0, 1)}
    assert got == {0: {"WT"}, 1: {"Null"}}


def test_not_a_study_gives_a_message(make_napari_viewer, tmp_path, study_without_images):
    viewer = make_napari_viewer()
    browser = _browser(viewer)
    assert not browser.open_study(tmp_path)
    assert "is not a Study" in browser.message.text()
    assert "How to fix" in browser.message.text()
    assert not browser.open_study(study_without_images)
    assert "no 'images' artefact" in browser.message.text()
    assert not browser.show_perturbation("A")
    assert "no Study is open" in browser.message.text()
    assert browser.open_study(study_without_images.parent.parent) is False
    assert len(viewer.layers) == 0


def test_reader_messages_instead_of_tracebacks(make_napari_viewer, tmp_path,
                                               study_without_images, monkeypatch):
    from workbench.napari import _reader

    said = []
    monkeypatch.setattr(_reader, "_notify", said.append)
    fake = tmp_path / "broken.study"
    fake.mkdir()
    viewer = make_napari_viewer()
    viewer.open(str(fake), plugin="workbench")
    viewer.open(str(study_without_images), plugin="workbench")
    assert len(viewer.layers) == 0
    assert "is not a Study" in said[0]
    assert "no 'images' artefact" in said[1] and "workbench import images" in said[1]
    # a plain folder is not claimed by the reader
    assert _reader.get_reader(str(tmp_path / "nothing")) is None


def test_sample_data_opens(make_napari_viewer, monkeypatch, toy_study):
    from workbench.napari import _sample

    monkeypatch.setattr(_sample, "demo_study_path", lambda size="tiny": toy_study)
    viewer = make_napari_viewer()
    viewer.open_sample("workbench", "demo_study")
    assert len(_image_layers(viewer)) == 3


def test_view_study_docks_the_browser(make_napari_viewer, toy_study, tmp_path):
    """What `workbench napari STUDY --pair A+B --channel FILE` sets up, on a test viewer."""
    from workbench.data.selection import SelectionChannel
    from workbench.napari import view_study

    channel = SelectionChannel.create(tmp_path)
    viewer = make_napari_viewer()
    _, browser = view_study(toy_study, pair="A+B", channel=channel.path, viewer=viewer)
    assert "Study browser" in viewer.window._dock_widgets
    assert browser.layers[0].name == "pair A+B: DNA"
    assert browser.follow_box.isChecked() and browser._timer.isActive()
    browser.set_follow(False)
