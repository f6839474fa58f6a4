"""One layout for cycles: what ``run_grn`` stores is what the GRN view lists."""

import numpy as np
import pytest

from workbench.data.study import Study

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def grn_study(tmp_path_factory):
    from workbench.data.simulate.build import velocity_anndata
    from workbench.data.simulate.world import make_world
    from workbench.tools.grn import run_grn

    world = make_world(0, "quick")
    study = Study.create(tmp_path_factory.mktemp("cyc") / "demo.study", title="cycles")
    with study.step("simulate", seed=0) as tx:
        tx.write_anndata("velocity", velocity_anndata(world, np.random.default_rng([0, 3])),
                         screen=False)
        tx.write_json("ground_truth", world.ground_truth())
    info = run_grn(study, size="tiny", n_boot=2, method="dyngfn", device="cpu")
    return Study.open(study.path), info


def test_stored_cycles_are_a_table_that_reads_back_as_the_step_reported(grn_study):
    from workbench.tools.grn_metrics import cycle_frequencies, cycles_from_table

    study, info = grn_study
    stored = study.read("grn").uns["workbench"]["cycles"]
    back = cycles_from_table(stored)
    assert back == info["cycles"] and len(back) > 0
    # the frequencies are those of the stored samples, not placeholders
    samples = np.asarray(study.read("grn_samples"))
    genes = info["settings"]["genes"]
    assert back == cycle_frequencies(samples, genes)
    assert all(0 < r["frequency"] <= 1 and r["length"] == len(r["cycle"]) >= 2 for r in back)
    assert all(set(r["cycle"]) <= set(genes) for r in back)


def test_view_lists_stored_cycles_with_frequencies_and_per_gene(grn_study):
    pytest.importorskip("panel")
    from workbench.dashboards.grn import GRNView, cycles
    from workbench.dashboards.state import Selection

    study, info = grn_study
    table = cycles(study)
    assert len(table) == len(info["cycles"])
    assert table["frequency"].notna().all()
    assert list(table["frequency"]) == [r["frequency"] for r in info["cycles"]]
    assert table["cycle"].iloc[0] == " → ".join(info["cycles"][0]["cycle"])
    # a gene with stored cycles shows exactly those; cycle names are genes, not indices
    gene = info["cycles"][0]["cycle"][1]
    sel = Selection()
    view = GRNView(study, sel)
    sel.choose_gene(gene)
    shown = view._cycles_for_gene()
    expected = [" → ".join(r["cycle"]) for r in info["cycles"] if gene in r["cycle"]][:20]
    assert list(shown["cycle"]) == expected and len(shown) > 0
    assert shown["frequency"].notna().all()


def test_view_shows_and_exports_activating_and_repressing_edges(grn_study):
    pytest.importorskip("panel")
    import io

    import pandas as pd

    from workbench.dashboards.grn import GRNView, edges
    from workbench.dashboards.state import Selection
    from workbench.tools.grn import effect_label, export_edges

    study, info = grn_study
    grn = study.read("grn")
    names = list(grn.var_names)
    table = edges(study, 0.2)
    assert len(table) > 0 and {"weight", "effect"} <= set(table.columns)
    share = np.asarray(grn.varp["edge_positive_share"])
    weight = np.asarray(grn.varp["edge_weight"])
    for row in table.itertuples():
        i, j = names.index(row.target), names.index(row.source)   # varp is child-major
        assert row.weight == pytest.approx(weight[i, j])
        assert row.effect == effect_label(share[i, j])
        if row.effect == "activates":
            assert row.weight > 0
        if row.effect == "represses":
            assert row.weight < 0
    # the stored summary is the per-sample weights' own
    w = np.asarray(study.read("grn_sample_weights"))
    s = np.asarray(study.read("grn_samples")) > 0
    held = s.sum(0) > 0
    np.testing.assert_allclose(weight[held], (w * s).sum(0)[held] / s.sum(0)[held], rtol=1e-5)
    sel = Selection()
    view = GRNView(study, sel, threshold=0.2)
    sel.choose_gene(table["target"].iloc[0])
    shown = pd.read_csv(io.StringIO(view.edges_csv()))
    assert list(shown.columns) == ["source", "target", "probability", "weight", "effect"]
    assert len(shown) > 0 and set(shown["effect"]) <= {"activates", "represses", "mixed"}
    el = view._graph_element()
    seg = el.Segments.I.data
    assert set(seg["effect"]) == set(shown["effect"])
    # the export (as `workbench grn --export-edges` writes it) is the view's table
    out = study.path.parent / "edges.csv"
    export_edges(study, out, 0.2)
    pd.testing.assert_frame_equal(pd.read_csv(out), pd.read_csv(io.StringIO(
        table.to_csv(index=False))))


def test_old_layout_is_refused_with_the_step_to_rerun():
    from workbench.errors import WorkbenchError
    from workbench.tools.grn_metrics import cycles_from_table

    with pytest.raises(WorkbenchError, match="workbench grn"):
        cycles_from_table({"0": {"cycle": ["G01", "G02"], "frequency": 0.5}})
