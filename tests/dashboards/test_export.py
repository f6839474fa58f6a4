"""Exports (selection CSV, view tables, figures) and colour composites."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench.dashboards.composite import color_rgb, composite, to_png
from workbench.dashboards.state import Selection


def test_composite_maps_channels_to_their_colours():
    crop = np.zeros((3, 8, 8), np.float32)
    crop[0, :4] = 100.0  # "blue" channel bright in the top half
    crop[1, :, :4] = 50.0  # "red" channel bright in the left half
    rgb = composite(crop, ["blue", "red", "green"], contrast=(0, 100))
    assert rgb.shape == (8, 8, 3) and rgb.dtype == np.uint8
    assert rgb[0, 7, 2] == 255 and rgb[0, 7, 0] == 0  # top right: blue only
    assert rgb[7, 0, 0] == 255 and rgb[7, 0, 2] == 0  # bottom left: red only
    assert composite(crop, ["blue", "red", "green"], channels=[2]).max() == 0  # empty channel
    off = composite(crop, ["blue", "red", "green"], channels=[1], contrast=(0, 100))
    assert off[..., 2].max() == 0  # blue toggled off
    assert to_png(rgb, scale=2)[:4] == b"\x89PNG"
    assert color_rgb("#ff0000") == (1.0, 0.0, 0.0)


def test_selection_csv_and_view_tables(study, tmp_path):
    pytest.importorskip("panel")
    from workbench.dashboards.app import build_app
    from workbench.dashboards.export import selection_table, write_selection_csv, write_view_tables

    obs = study.read_obs("profiles")
    ids = [str(i) for i in obs.index[[3, 4]]]
    sel = Selection(perturbation="G02", samples=ids)
    df = selection_table(study, sel)
    assert list(df.index) == ids
    assert (df["selected_perturbation"] == "G02").all()
    sel.samples = []
    df = selection_table(study, sel)
    mine = [p for p in obs["perturbation"].astype(str) if "G02" in p.split("+")]
    assert sorted(df["perturbation"].astype(str)) == sorted(mine) and len(df) == len(mine)
    empty = selection_table(study, Selection())
    assert len(empty) == 1 and empty["selected_pair"].iloc[0] == ""
    out = pd.read_csv(write_selection_csv(study, sel, tmp_path / "sel.csv"))
    assert len(out) == len(mine)
    dash = build_app(study, views=["embeddings", "grn", "concepts", "images"], sync_url=False)
    dash.selection.choose_gene("G01")
    views = {n: dash.view(n) for n in ("embeddings", "grn", "concepts", "images",
                                        "interactions", "perturbation_map")}
    paths = write_view_tables(views, tmp_path / "tables")
    # the interactions view's "next pairs to run" comes as a file of its own
    assert {p.stem for p in paths} == set(views) | {"interactions_next_pairs"}
    assert all(len(pd.read_csv(p)) > 0 for p in paths)


def test_save_figure(tmp_path):
    hv = pytest.importorskip("holoviews")
    from workbench.dashboards.export import save_figure
    from workbench.errors import WorkbenchError

    hv.extension("bokeh")
    curve = hv.Curve([1, 3, 2])
    assert save_figure(curve, tmp_path / "f.html").stat().st_size > 1000
    with pytest.raises(WorkbenchError, match=r"use .html, .png or .svg"):
        save_figure(curve, tmp_path / "f.pdf")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("no Chromium for the PNG export")
    png = save_figure(curve, tmp_path / "f.png", width=400, height=300)
    assert png.read_bytes()[:4] == b"\x89PNG"
    svg = save_figure(curve, tmp_path / "f.svg", width=400, height=300).read_text()
    assert svg.startswith("<svg") and "<path" in svg


def test_export_view_writes_the_drawn_map_with_its_data(study, tmp_path):
    """The exported CSV is the data of the map as coloured now; PNG and SVG are its
    picture (the SVG names the perturbations drawn as labels)."""
    pytest.importorskip("panel")
    from workbench.dashboards.embeddings import EmbeddingsView
    from workbench.dashboards.export import export_view
    from workbench.dashboards.perturbation_map import PerturbationMapView
    from workbench.errors import WorkbenchError

    view = EmbeddingsView(study, Selection(), level="perturbations", basis="pca")
    view.color_by = "n_profiles"
    paths = export_view(view, tmp_path / "out", formats=())
    data = pd.read_csv(paths["csv"], index_col="id")
    pert = study.read_obs("perturbations")
    assert sorted(data.index) == sorted(pert.index.astype(str))
    assert (data["n_profiles"] == pert.loc[data.index, "n_profiles"]).all()
    drawn = view.data().set_index("id")
    np.testing.assert_allclose(data["x"], drawn.loc[data.index, "x"], rtol=1e-6)
    with pytest.raises(WorkbenchError, match="cannot export a view as"):
        export_view(view, tmp_path / "out", formats=("pdf",))
    hm = export_view(PerturbationMapView(study, Selection()), tmp_path / "out", formats=())
    cos = pd.read_csv(hm["csv"], index_col="perturbation")
    assert cos.shape == (len(pert), len(pert)) and np.allclose(np.diag(cos), 1, atol=1e-5)
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("no Chromium for the PNG and SVG export")
    paths = export_view(view, tmp_path / "fig")
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"
    svg = paths["svg"].read_text()
    assert svg.startswith("<svg") and all(p in svg for p in view.labels()["perturbation"])
