""""Find more like this" in a real napari viewer (Xvfb): opened from a crop of the Study
browser, answered with the y/n keys, the interval shown, the search written into the Study,
and resumed by a new widget after the first one closed."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.napari


@pytest.fixture
def study_copy(tiny_study_path, tmp_path):
    from workbench.testing import copy_study

    return copy_study(tiny_study_path, tmp_path / "find.study")


def _press(viewer, key: str) -> None:
    """Call what the viewer has bound to ``key`` (what pressing it in the canvas does)."""
    for bound, func in viewer.keymap.items():
        if str(bound).lower() == key:
            func(viewer)
            return
    raise AssertionError(f"nothing bound to {key!r}: {list(viewer.keymap)}")


def _answer_batch(viewer, widget, truth) -> None:
    """Answer every crop of the batch on screen from the truth, by key."""
    for _ in range(len(widget.batch_ids)):
        _press(viewer, "y" if truth[widget.current] else "n")


def _open_from_a_crop(viewer, study, pair):
    from workbench.napari._widget import StudyBrowser

    browser = StudyBrowser(viewer, study=study.path)
    viewer.window.add_dock_widget(browser, name="Study browser")
    assert browser.show_pair(pair, n=3)
    info = viewer.layers[0].metadata["workbench"]
    y, x, _, crop = [c for c in info["cells"] if c[2] == 3][0]  # a crop of the double
    assert browser.click((y + 3, x + 3))["crop_id"] == crop
    widget = browser.find_more_like_this(tau=0.05, batch=6)
    return browser, widget, crop


def test_find_widget_from_a_crop_answers_saves_and_resumes(make_napari_viewer, study_copy,
                                                           tiny):
    from workbench.data.study import Study
    from workbench.napari._find import BATCH_LABEL, FindWidget, recommendation

    pair = tiny["pair"]
    viewer = make_napari_viewer()
    _, widget, crop = _open_from_a_crop(viewer, study_copy, pair)
    assert widget is not None and widget.session is not None, widget.message.text()
    assert widget.session.search.exemplars == [
        list(widget.session.crop_ids).index(crop)]
    truth = study_copy.read_obs("profiles")["perturbation"].astype(str) == pair

    # the batch on screen: its crops' pixels, and the one to answer framed
    ids = list(widget.batch_ids)
    assert 1 <= len(ids) <= 6 and widget.current == ids[0]
    images = [lay for lay in viewer.layers
              if lay.name.startswith(BATCH_LABEL) and lay.__class__.__name__ == "Image"]
    assert len(images) == len(tiny["store"].channel_names)
    info = images[0].metadata["workbench"]
    h, w = info["crop_hw"]
    y, x, _, cid = info["cells"][0]
    assert cid == ids[0]
    np.testing.assert_array_equal(images[0].data[y:y + h, x:x + w],
                                  tiny["store"].get([cid])[0, 0])
    frames = viewer.layers["find: frames"]
    assert len(frames.data) == len(ids)

    # a wrong answer taken back with u, then the batch answered by key
    _press(viewer, "y" if not truth[ids[0]] else "n")
    assert widget.current == (ids[1] if len(ids) > 1 else None)
    colours = viewer.layers["find: frames"].edge_color
    np.testing.assert_allclose(colours[0], [1, 0, 0, 1] if truth[ids[0]] else [0, 1, 0, 1])
    if len(ids) > 1:  # the next crop to judge is framed yellow
        np.testing.assert_allclose(colours[1], [1, 1, 0, 1])
    _press(viewer, "u")
    assert widget.current == ids[0]
    np.testing.assert_allclose(viewer.layers["find: frames"].edge_color[0], [1, 1, 0, 1])
    _answer_batch(viewer, widget, truth)
    # the next batch replaces the grid: its first crop's pixels, its frames
    info = viewer.layers[images[0].name].metadata["workbench"]
    y, x, _, cid = info["cells"][0]
    assert cid == widget.batch_ids[0] and cid not in ids
    np.testing.assert_array_equal(viewer.layers[images[0].name].data[y:y + h, x:x + w],
                                  tiny["store"].get([cid])[0, 0])
    assert len(viewer.layers["find: frames"].data) == len(widget.batch_ids)
    for _ in range(2):
        _answer_batch(viewer, widget, truth)
    assert widget.session.search.state.n_rounds == 3
    text = widget.interval_label.text()
    lo, hi = widget.session.interval
    assert "prevalence in [" in text and f"{lo:.2%}" in text and f"{hi:.2%}" in text
    assert widget.status_label.text() == recommendation(widget.session.status)

    # written into the Study after each batch, with the answers given
    written = Study.open(study_copy.path)  # the widget wrote through its own handle
    kept = written.read("phenotype_search")
    answered = kept.obs["answer"] != ""
    labels = widget.session.search.state.labels
    assert int(answered.sum()) == len(labels) >= 3
    want = truth[answered].map({True: "yes", False: "no"})
    assert (kept.obs.loc[answered, "answer"] == want).all()
    assert len(kept.uns["workbench"]["rounds"]) == 3
    assert kept.uns["workbench"]["settings"]["oracle"] == "person"
    assert list(kept.uns["workbench"]["exemplars"]) == [crop]
    assert written.meta["provenance"][-1]["tool"] == "find"

    # results: enrichment with q-values and the top-scoring crops as a grid
    assert widget.show_results()
    enr = widget.session.enrichment()
    assert list(widget.enrichment["perturbation"]) == list(enr["perturbation"].head(8))
    assert f"q = {enr['q'].iloc[0]:.3g}" in widget.results.text()
    top = viewer.layers["find: top crops: " + tiny["store"].channel_names[0]]
    assert [c[3] for c in top.metadata["workbench"]["cells"]] == widget.top
    scores = widget.session.scores
    order = np.argsort(-scores, kind="stable")[:len(widget.top)]
    assert widget.top == [str(widget.session.crop_ids[i]) for i in order]

    # close; a new widget on the same Study and crop resumes with the answers kept
    n_kept, batch_on_screen = len(labels), list(widget.batch_ids)
    widget.close()
    assert not any(str(k).lower() in "ynu" for k in viewer.keymap)  # keys handed back
    again = FindWidget(viewer, study=study_copy.path, exemplar=crop, tau=0.05, batch=6)
    assert again.session is not None, again.message.text()
    assert f"resumed with {n_kept} answers kept" in again.message.text()
    assert again.session.search.state.labels == labels
    assert again.batch_ids == batch_on_screen  # the unanswered batch is asked again
    assert not set(again.batch_ids) & {str(again.session.crop_ids[i]) for i in labels}
    _answer_batch(viewer, again, truth)
    kept = Study.open(study_copy.path).read("phenotype_search")
    assert int((kept.obs["answer"] != "").sum()) > n_kept
    assert len(kept.uns["workbench"]["rounds"]) == 4


def test_find_widget_names_bad_input(make_napari_viewer, study_copy, tiny):
    from workbench.napari._find import FindWidget

    viewer = make_napari_viewer()
    w = FindWidget(viewer, study=study_copy.path, exemplar="no-such-crop")
    assert w.session is None and "not in the Study" in w.message.text()
    crop = str(tiny["profiles"].obs_names[0])
    w.tau_box.setValue(100)  # clamped to 99.99 %: a valid fraction
    assert w.start(exemplar=crop) and w.session.settings["tau"] == pytest.approx(0.9999)
    from workbench.napari._widget import StudyBrowser

    browser = StudyBrowser(viewer, study=study_copy.path)
    assert browser.find_more_like_this() is None  # no crop clicked yet
    assert "no crop to start from" in browser.message.text()
    w2 = FindWidget(viewer, study=study_copy.path / "nope", exemplar=crop)
    assert w2.session is None and w2.message.text()
    assert not w2.answer(True)  # nothing on screen: no answer taken
