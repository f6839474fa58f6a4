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


def test_reader_opens_the_demo_study(make_napari_viewer, tiny):
    from workbench.data.images import CHANNEL_COLORS
    from workbench.data.simulate.morphology import CHANNELS

    store = tiny["store"]
    viewer = make_napari_viewer()
    viewer.open(str(tiny["path"]), plugin="workbench")
    images = _image_layers(viewer)
    assert [lay.name.split(": ")[-1] for lay in images] == CHANNELS == store.channel_names
    assert [lay.colormap.name for lay in images] == [CHANNEL_COLORS[c] for c in CHANNELS]
    assert [lay.blending for lay in images] == ["additive"] * len(images)
    info = images[0].metadata["workbench"]
    # the overview: controls, then the first perturbations (singles first)
    titles = [c["title"] for c in info["conditions"]]
    assert titles == ["control", *tiny["singles"][:len(titles) - 1]]
    for _, _, ci, cid in info["cells"]:
        assert tiny["obs"].loc[cid, "perturbation"] == titles[ci]
    # the pixels shown are the stored crops
    y, x, _, cid = info["cells"][-1]
    h, w = info["crop_hw"]
    np.testing.assert_array_equal(images[1].data[y:y + h, x:x + w], store.get([cid])[0, 1])
    # the browser docked afterwards picks the Study up from the layers
    browser = _browser(viewer)
    assert browser.source is not None and browser.source.path == tiny["path"]
    # and a tested pair loads its four conditions, replacing the overview
    pair, a, b = tiny["pair"], tiny["a"], tiny["b"]
    assert browser.source.pairs()[0] == pair
    assert browser.show_pair(pair, n=4)
    images = _image_layers(viewer)
    assert len(images) == len(CHANNELS)
    info = images[0].metadata["workbench"]
    assert [c["title"] for c in info["conditions"]] == ["control", a, b, pair]
    for _, _, ci, cid in info["cells"]:
        assert tiny["obs"].loc[cid, "perturbation"] == ["control", a, b, pair][ci]


def test_widget_loads_a_perturbation(make_napari_viewer, tiny):
    viewer = make_napari_viewer()
    _, browser = viewer.window.add_plugin_dock_widget("workbench", "Study browser")
    assert browser.open_study(tiny["path"])
    choices = [browser.choice_box.itemText(i) for i in range(browser.choice_box.count())]
    assert choices == browser.source.perturbations()
    assert sorted(choices) == sorted(tiny["singles"] + [
        p for p in set(tiny["obs"]["perturbation"].astype(str)) if "+" in p])
    name = tiny["a"]
    assert browser.show_perturbation(name, n=4)
    channels = tiny["store"].channel_names
    assert [lay.name for lay in viewer.layers] == [
        *(f"perturbation {name}: {c}" for c in channels), f"perturbation {name}: conditions"]
    images = _image_layers(viewer)
    assert [lay.colormap.name for lay in images] == tiny["store"].channel_colors
    # contrast limits come from the controls, shared by both blocks
    assert [tuple(lay.contrast_limits) for lay in images] == [
        pytest.approx(c) for c in browser.source.contrast]
    info = images[0].metadata["workbench"]
    assert [c["title"] for c in info["conditions"]] == ["control", name]
    obs = tiny["obs"]
    for _, _, ci, cid in info["cells"]:
        assert (obs.loc[cid, "is_control"], obs.loc[cid, "perturbation"] == name) == (
            ci == 0, ci == 1)
    assert [c["n"] for c in info["conditions"]] == [4, 4]
    # loading another choice replaces the layers instead of piling them up
    assert browser.show_perturbation(tiny["b"], n=4)
    assert len(viewer.layers) == len(channels) + 1
    assert viewer.layers[0].name == f"perturbation {tiny['b']}: {channels[0]}"


def test_widget_loads_the_four_conditions_of_a_pair(make_napari_viewer, tiny):
    pair, a, b = tiny["pair"], tiny["a"], tiny["b"]
    viewer = make_napari_viewer()
    browser = _browser(viewer, study=tiny["path"])
    assert browser.show_pair(pair, n=3)
    images = _image_layers(viewer)
    assert len(images) == len(tiny["store"].channel_names)
    info = images[0].metadata["workbench"]
    assert [c["title"] for c in info["conditions"]] == ["control", a, b, pair]
    points = viewer.layers[f"pair {pair}: conditions"]
    assert [t.split(" (")[0] for t in points.features["title"]] == ["control", a, b, pair]
    # the cursor over a crop of the double names it
    y, x, ci, cid = [c for c in info["cells"] if c[2] == 3][0]
    viewer.cursor.position = (y + 5, x + 5)
    assert browser.cursor_label.text().startswith(f"crop {cid} [{pair}]")
    assert f"perturbation={pair}" in browser.cursor_label.text()
    assert f"well={tiny['obs'].loc[cid, 'well']}" in browser.cursor_label.text()


def test_widget_shows_concept_exemplars(make_napari_viewer, tiny):
    concepts, profiles = tiny["concepts"], tiny["profiles"]
    k = int(np.argmax(concepts.obs["frequency"].to_numpy()))
    name = concepts.obs_names[k]
    viewer = make_napari_viewer()
    browser = _browser(viewer, study=tiny["path"])
    assert [browser.source.concept_names()] == [concepts.obs_names.tolist()]
    assert browser.show_concept(name, n=4)
    assert viewer.layers[0].name == f"concept {name}: {tiny['store'].channel_names[0]}"
    info = _image_layers(viewer)[0].metadata["workbench"]
    assert [c["title"] for c in info["conditions"]] == ["q50", "q90", "q99", "top"]
    top = [cid for _, _, ci, cid in info["cells"] if ci == 3]
    rows = concepts.obsm["exemplar_top_index"][k]
    assert top == profiles.obs_names[rows[rows >= 0]][:4].tolist()
    # by position in the list too
    assert browser.show_concept(k, n=4)
    assert viewer.layers[0].name.startswith(f"concept {name}: ")


def test_widget_follows_a_dashboard_session_both_ways(make_napari_viewer, tiny, tmp_path):
    from workbench.data.selection import SelectionChannel

    pair, a, b, other = tiny["pair"], tiny["a"], tiny["b"], tiny["other"]
    first = tiny["store"].channel_names[0]
    dashboard = SelectionChannel.create(tmp_path)  # what a session's "Open in napari" makes
    viewer = make_napari_viewer()
    browser = _browser(viewer, study=tiny["path"], channel=dashboard.path)
    browser.set_follow(True)
    assert browser._timer is not None and browser._timer.isActive()
    dashboard.write({"perturbation": other}, source="dashboard")
    assert browser.poll_selection()
    assert viewer.layers[0].name == f"perturbation {other}: {first}"
    dashboard.write({"perturbation": other, "pair": pair}, source="dashboard")
    assert browser.poll_selection()
    assert viewer.layers[0].name == f"pair {pair}: {first}"
    # the other way: Show in napari selects in the dashboard session
    assert browser.choose("perturbation", a)
    got = dashboard.poll(me="dashboard")
    assert got["perturbation"] == a and got["pair"] == pair  # a is in the pair: kept
    assert browser.choose("perturbation", b)
    got = dashboard.poll(me="dashboard")
    assert got["perturbation"] == b and got["pair"] == pair
    assert browser.choose("pair", pair) and browser.choose("perturbation", other)
    got = dashboard.poll(me="dashboard")
    assert got["perturbation"] == other and got["pair"] == ""  # other is not in the pair
    # a click on a crop selects that crop and its perturbation
    info = _image_layers(viewer)[0].metadata["workbench"]
    y, x, ci, cid = [c for c in info["cells"] if c[2] == 1][0]  # a crop of `other`
    assert browser.click((y + 5, x + 5))["crop_id"] == cid
    got = dashboard.poll(me="dashboard")
    assert got["samples"] == [cid] and got["perturbation"] == other
    assert not browser.poll_selection()  # napari's own writes do not come back to it
    browser.set_follow(False)
    assert browser._timer is None


def test_follow_needs_a_dashboard_session(make_napari_viewer, tiny):
    viewer = make_napari_viewer()
    browser = _browser(viewer, study=tiny["path"])
    assert not browser.follow_box.isEnabled()
    browser.set_follow(True)
    assert browser._timer is None and not browser.follow_box.isChecked()
    assert "Open in napari" in browser.message.text()


@pytest.mark.slow
def test_screenshot_shows_the_channels(make_napari_viewer, tiny):
    viewer = make_napari_viewer(show=True)
    browser = _browser(viewer, study=tiny["path"])
    assert browser.show_pair(tiny["pair"], n=4)
    shot = viewer.screenshot(canvas_only=True, flash=False)
    rgb = shot[..., :3].astype(int)
    lit = rgb.max(axis=-1) > 30
    assert lit.mean() > 0.05
    # each channel alone lights up in its own colour only; with every channel off the
    # canvas is black, so the pixels came from the data
    images = _image_layers(viewer)
    expect = {"blue": (False, False, True), "green": (False, True, False),
              "cyan": (False, True, True), "red": (True, False, False),
              "magenta": (True, False, True)}
    assert sorted(lay.colormap.name for lay in images) == sorted(expect)
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


def test_sample_data_opens(make_napari_viewer, monkeypatch, tiny, tmp_path):
    """The sample is the tiny demo Study (here a copy of the one the tests built, placed
    where the sample keeps it, so that nothing is rebuilt)."""
    from workbench.napari import _sample
    from workbench.testing import copy_study

    copy_study(tiny["path"], tmp_path / "demo_tiny.study")
    monkeypatch.setattr(_sample, "_sample_root", lambda: tmp_path)
    viewer = make_napari_viewer()
    viewer.open_sample("workbench", "demo_study")
    images = _image_layers(viewer)
    assert [lay.name.split(": ")[-1] for lay in images] == tiny["store"].channel_names
    info = images[0].metadata["workbench"]
    assert info["study"] == str(tmp_path / "demo_tiny.study")
    assert [c["title"] for c in info["conditions"]][0] == "control"


def test_view_study_docks_the_browser(make_napari_viewer, tiny, tmp_path):
    """What `workbench napari STUDY --pair A+B --channel FILE` sets up, on a test viewer."""
    from workbench.data.selection import SelectionChannel
    from workbench.napari import view_study

    channel = SelectionChannel.create(tmp_path)
    viewer = make_napari_viewer()
    _, browser = view_study(tiny["path"], pair=tiny["pair"], channel=channel.path,
                            viewer=viewer)
    assert "Study browser" in viewer.window._dock_widgets
    assert browser.layers[0].name == f"pair {tiny['pair']}: {tiny['store'].channel_names[0]}"
    assert browser.follow_box.isChecked() and browser._timer.isActive()
    browser.set_follow(False)


def test_view_study_without_a_choice_shows_the_overview(make_napari_viewer, tiny):
    from workbench.napari import view_study

    viewer = make_napari_viewer()
    _, browser = view_study(tiny["path"], viewer=viewer)
    info = browser.layers[0].metadata["workbench"]
    titles = [c["title"] for c in info["conditions"]]
    assert titles == ["control", *tiny["singles"][:len(titles) - 1]]
    assert browser.layers[0].name == f"{tiny['study'].title}: {tiny['store'].channel_names[0]}"
