"""A perturbation map of many perturbations stays legible: at most 50 names per axis, each
at the row and column it names, and a click on a row chooses the perturbation drawn there."""

from __future__ import annotations

import numpy as np
import pytest

pn = pytest.importorskip("panel")
hv = pytest.importorskip("holoviews")

from workbench.dashboards import perturbation_map as pm  # noqa: E402
from workbench.dashboards.state import Selection  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _bokeh():
    hv.extension("bokeh")


def _fake_map(monkeypatch, n):
    """A map of ``n`` perturbations whose similarity rows are told apart by their value."""
    labels = [f"P{i:03d}" for i in range(n)]
    cos = np.tile(np.linspace(-1, 1, n, dtype=np.float32)[:, None], (1, n))
    monkeypatch.setattr(pm, "similarity", lambda study: (labels, cos))
    return labels, cos


def test_tick_labels_keep_at_most_50_spread_over_the_order():
    labels = [f"P{i}" for i in range(130)]
    named = pm.tick_labels(labels)
    assert len(named) <= pm.MAX_TICKS and named[0] == "P0"
    assert set(named) <= set(labels) and named == [lab for lab in labels if lab in named]
    gaps = np.diff([labels.index(t) for t in named])
    assert gaps.max() - gaps.min() == 0  # evenly spread
    assert pm.tick_labels(labels[:40]) == labels[:40]


def test_large_map_names_rows_where_they_are_drawn_and_taps_choose_them(monkeypatch, study):
    labels, cos = _fake_map(monkeypatch, 130)  # above MAX_HEATMAP_CELLS: drawn as an image
    sel = Selection()
    view = pm.PerturbationMapView(study, sel)
    img = view.heatmap()
    assert isinstance(img, hv.Image)
    fig = hv.render(img)
    yticks = fig.yaxis[0].major_label_overrides
    assert 0 < len(yticks) <= pm.MAX_TICKS
    for pos, name in yticks.items():  # the value drawn at a name's tick is its row's
        i = labels.index(name)
        assert img[0.5, float(pos)] == pytest.approx(cos[i, 0])
    top = labels[0]
    pos = next(p for p, n in yticks.items() if n == top)
    view._tap(None, float(pos), labels)
    assert sel.perturbation == top


def test_medium_map_thins_its_tick_labels(monkeypatch, study):
    labels, _ = _fake_map(monkeypatch, 80)
    fig = hv.render(pm.PerturbationMapView(study, Selection()).heatmap())
    code = fig.yaxis[0].formatter.code
    named = pm.tick_labels(labels)
    assert len(named) < len(labels)
    assert all(f"'{t}'" in code for t in named)
    assert not any(f"'{t}'" in code for t in set(labels) - set(named))
