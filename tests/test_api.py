"""The public face (``import workbench as wb``): each verb runs the real step on a copy of
the tiny demo Study, writes its artefact, and records the parameters it was given."""

from __future__ import annotations

import inspect
import sys

import numpy as np
import pytest

import workbench as wb
from workbench.errors import ValidationError, WorkbenchError
from workbench.testing import copy_study


@pytest.fixture
def study(tiny_study_path, tmp_path):
    return copy_study(tiny_study_path, tmp_path / "api.study")


def _last(study, tool):
    """The newest provenance entry of ``tool``, and how many entries came after it."""
    prov = study.provenance
    idx = max(i for i, p in enumerate(prov) if p["tool"] == tool)
    return prov[idx], len(prov) - 1 - idx


def _facade():
    for mod in (wb.tl, wb.pl, wb.io, wb.datasets):
        for name in mod.__all__:
            obj = getattr(mod, name)
            if inspect.isfunction(obj) and obj.__module__ == mod.__name__:
                yield mod.__name__, name, obj


# ---------------------------------------------------------------------- the face itself
def test_submodules_and_all_are_explicit():
    assert {"tl", "pl", "io", "datasets", "dashboards", "Study"} <= set(wb.__all__)
    assert wb.tl.__all__ == sorted(wb.tl.__all__)
    for name in ("embed", "benchmark", "concepts", "interactions", "plan_pairs", "grn",
                 "design_screen", "design_hits", "design_knockout", "find"):
        assert callable(getattr(wb.tl, name)), name
    for name in wb.io.__all__:
        assert callable(getattr(wb.io, name)), name
    assert wb.dashboards.show is not None
    with pytest.raises(AttributeError):
        wb.no_such_thing  # noqa: B018


@pytest.mark.parametrize("mod, name, fn", list(_facade()),
                         ids=lambda x: x if isinstance(x, str) else "")
def test_every_facade_function_has_numpydoc_and_hints(mod, name, fn):
    doc = inspect.getdoc(fn) or ""
    assert "Parameters\n----------" in doc and "Returns\n-------" in doc, f"{mod}.{name}"
    sig = inspect.signature(fn)
    for pname, p in sig.parameters.items():
        assert p.annotation is not inspect.Parameter.empty, f"{mod}.{name}({pname})"
        if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            assert pname in doc, f"{mod}.{name}: {pname} is not documented"
    assert sig.return_annotation is not inspect.Signature.empty, f"{mod}.{name}"


def test_shared_parameters_have_one_spelling():
    """seed/device/n_permutations everywhere; never n_perm, size only for the demo world."""
    for mod, name, fn in _facade():
        params = set(inspect.signature(fn).parameters)
        assert not params & {"n_perm", "permutations", "random_state", "rng"}, name
        if mod == "workbench.tl":
            assert "size" not in params, name
            assert "seed" in params, name
            assert "study" in params, name


def test_version_tells_builds_apart():
    """One source (the installed metadata), plus the commit when run from a checkout."""
    import re
    import shutil
    import subprocess
    from importlib.metadata import version
    from pathlib import Path

    base = version("workbench")
    root = Path(wb.__file__).resolve().parents[1]
    commit = wb._git_commit(root)
    if commit is None:
        assert wb.__version__ == base
        return
    assert re.fullmatch(re.escape(base) + r"\+g[0-9a-f]{10}", wb.__version__)
    if shutil.which("git"):
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"],
                              capture_output=True, text=True).stdout.strip()
        if head:
            assert commit == head


# ---------------------------------------------------------------------- the steps
@pytest.mark.slow
def test_embed_writes_profiles_and_records_its_parameters(study):
    before = study.version_of("profiles")
    out = wb.tl.embed(study.path, train_steps=3, train_batch_size=16, block=2, seed=3,
                      device="cpu")
    assert out.path == study.path
    entry, after = _last(out, "embed")
    assert after == 0
    assert entry["params"]["train_steps"] == 3
    assert entry["params"]["encoder"] == "trained" and entry["seed"] == 3
    block = entry["params"]["block"]
    assert block == 2
    assert out.version_of("profiles") > before
    prof = out.read("profiles")
    assert f"X_mae_b{block}" in prof.obsm and np.isfinite(prof.X).all()
    assert out.has("perturbations")


def test_benchmark_writes_results(study):
    out = wb.tl.benchmark(study, n_permutations=25, seed=5)
    entry, after = _last(out, "benchmark")
    assert after == 0 and entry["params"]["n_perm"] == 25 and entry["seed"] == 5
    res = out.read_uns("perturbations", "benchmarks")
    assert "replicate_consistency" in res or "relationship_recall" in res


def test_concepts_decides_whitening_itself_after_tvn(study):
    out = wb.tl.concepts(study, n_concepts=6, max_steps=15, seed=2, run="api")
    entry, _ = _last(out, "concepts")
    assert entry["params"]["n_concepts"] == 6 and entry["params"]["max_steps"] == 15
    assert entry["params"]["whiten"] is False and entry["params"]["whiten_asked"] == "auto"
    assert out.read("concepts").n_obs == 6
    assert "concepts_api" in out.read("profiles").obsm


def test_interactions_defaults_run_on_the_tiny_world(study):
    out = wb.tl.interactions(study, n_permutations=40, n_bootstrap=10, seed=1)
    entry, _ = _last(out, "interactions")
    assert entry["params"]["n_permutations"] == 40 and entry["params"]["n_bootstrap"] == 10
    assert entry["params"]["unit"] == "well" and entry["params"]["on_small"] == "skip"
    table = out.read("interactions")
    assert set(table.test) >= {"disjointness", "viability"}
    assert table.q.notna().any()


def test_plan_pairs_proposes_the_budget(study):
    out = wb.tl.plan_pairs(study, budget=3, seed=1)
    entry, _ = _last(out, "plan_pairs")
    assert entry["params"]["budget"] == 3
    sel = out.read("pair_selection")
    assert (sel.status == "proposed").sum() == 3


def test_grn_preset_reaches_the_step(study):
    out = wb.tl.grn(study, preset="tiny", seed=4)
    entry, _ = _last(out, "grn")
    assert entry["params"]["size"] == "tiny" and entry["seed"] == 4
    grn = out.read("grn")
    prob = np.asarray(grn.varp["edge_probability"])
    assert prob.shape == (grn.n_vars, grn.n_vars)
    assert ((prob >= 0) & (prob <= 1)).all()


@pytest.mark.parametrize("fn, kind, policy", [("design_screen", "screen", "hardest"),
                                              ("design_hits", "hits", "ucb")])
def test_design_writes_a_plan(study, fn, kind, policy):
    out = getattr(wb.tl, fn)(study, budget=4, seed=0)
    entry, _ = _last(out, "design")
    assert entry["params"]["kind"] == kind and entry["params"]["budget"] == 4
    assert entry["params"]["policy"] == policy
    assert out.has("design_plan")


def test_design_knockout_writes_a_plan_for_the_grn_genes(study):
    out = wb.tl.design_knockout(study, budget=2, seed=0)
    entry, _ = _last(out, "design")
    assert entry["params"]["kind"] == "knockout" and entry["params"]["budget"] == 2
    plan = out.read("design_plan")
    genes = [str(g) for g in out.read("grn").var_names]
    assert set(plan.candidate) <= set(genes)
    assert (plan.status == "proposed").sum() == 2


def test_find_keeps_a_search_answered_by_a_label_column(study):
    obs = study.read_obs("profiles")
    ex = str(obs.index[obs["perturbation"] == "G03+G08"][0])
    out = wb.tl.find(study, ex, tau=0.05, label_column="perturbation", batch=10, budget=20)
    entry, _ = _last(out, "find")
    kept = out.read("phenotype_search")
    assert list(kept.uns["workbench"]["exemplars"]) == [ex]
    answered = kept.obs["answer"] != ""
    assert answered.sum() >= 20
    truth = (obs["perturbation"] == "G03+G08").map({True: "yes", False: "no"})
    assert (kept.obs.loc[answered, "answer"] == truth[answered]).all()
    with pytest.raises(WorkbenchError, match="tau"):
        wb.tl.find(study, ex, tau="small", label_column="perturbation")


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize("call, word", [
    (lambda s: wb.tl.embed(42), "Study"),
    (lambda s: wb.tl.interactions(s, n_permutations="many"), "n_permutations"),
    (lambda s: wb.tl.interactions(s, n_permutations=0), "n_permutations"),
    (lambda s: wb.tl.benchmark(s, seed=1.5), "seed"),
    (lambda s: wb.tl.concepts(s, whiten="yes"), "whiten"),
    (lambda s: wb.tl.concepts(s, method="pca"), "method"),
    (lambda s: wb.tl.plan_pairs(s, budget=True), "budget"),
    (lambda s: wb.tl.grn(s, genes=3), "genes"),
    (lambda s: wb.tl.grn(s, temperature="hot"), "temperature"),
    (lambda s: wb.datasets.demo("huge"), "size"),
    (lambda s: wb.datasets.demo("tiny", path=3), "path"),
    (lambda s: wb.pl.figure(s, "nowhere"), "view"),
    (lambda s: wb.pl.save(s, "grn", "plot.pdf"), ".pdf"),
])
def test_wrong_arguments_get_a_clear_error(tiny_study_path, call, word):
    from workbench.data.study import Study

    s = Study.open(tiny_study_path)
    n_before = len(s.provenance)
    with pytest.raises(WorkbenchError) as info:
        call(s)
    assert word in str(info.value)
    assert len(Study.open(tiny_study_path).provenance) == n_before  # nothing was written


def test_missing_study_folder_is_our_error(tmp_path):
    with pytest.raises(WorkbenchError):
        wb.tl.benchmark(tmp_path / "absent.study")


# ---------------------------------------------------------------------- datasets, io
def test_demo_reuses_a_built_study(tiny_study_path, tmp_path):
    target = copy_study(tiny_study_path, tmp_path / "demo.study")
    n = len(target.provenance)
    again = wb.datasets.demo("tiny", path=target.path)
    assert again.path == target.path and len(again.provenance) == n  # nothing rerun
    with pytest.raises(WorkbenchError, match="size"):
        wb.datasets.demo("quick", path=target.path)


def test_io_reexports_the_readers():
    from workbench.data import readers
    from workbench.data.study import open_study

    assert wb.io.open_study is open_study
    assert wb.io.read_velocity is readers.read_velocity
    assert wb.io.import_profiles is readers.import_profiles


# ---------------------------------------------------------------------- views, figures
def test_each_view_renders_alone(tiny_study_path):
    pytest.importorskip("panel")
    for name in ("embeddings", "perturbation_map", "concepts", "interactions", "grn",
                 "images"):
        view = getattr(wb.pl, name)(tiny_study_path, gene="G01")
        assert view.selection.perturbation == "G01"
        assert not view.missing, name
        assert view.__panel__() is not None


def test_views_share_a_selection(tiny_study_path):
    pytest.importorskip("panel")
    a = wb.pl.embeddings(tiny_study_path)
    b = wb.pl.grn(tiny_study_path, selection=a.selection)
    a.selection.perturbation = "G02"
    assert b.selection.perturbation == "G02"
    with pytest.raises(WorkbenchError, match="Selection"):
        wb.pl.grn(tiny_study_path, selection="G02")


def test_figure_and_html_export(tiny_study_path, tmp_path):
    pytest.importorskip("holoviews")
    import holoviews as hv

    fig = wb.pl.figure(tiny_study_path, "perturbation_map")
    assert isinstance(fig, hv.core.Dimensioned)
    out = wb.pl.save(tiny_study_path, "grn", tmp_path / "grn.html")
    text = out.read_text()
    assert "Bokeh" in text and "G01" in text


@pytest.mark.browser
@pytest.mark.parametrize("suffix", [".svg", ".png"])
def test_static_export_without_matplotlib(tiny_study_path, tmp_path, suffix):
    pytest.importorskip("playwright")
    try:
        wb.pl._chromium()
    except WorkbenchError as exc:
        pytest.skip(str(exc))
    out = wb.pl.save(tiny_study_path, "perturbation_map", tmp_path / f"map{suffix}")
    data = out.read_bytes()
    if suffix == ".svg":
        assert data.lstrip().startswith(b"<svg") and (b"<rect" in data or b"<path" in data)
    else:
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000


@pytest.mark.browser
def test_static_export_inside_a_running_event_loop(tiny_study_path, tmp_path):
    """A Jupyter kernel runs an asyncio loop in its main thread, where Playwright's sync
    API refuses to start: the export must still write the figure there."""
    import asyncio

    pytest.importorskip("playwright")
    try:
        wb.pl._chromium()
    except WorkbenchError as exc:
        pytest.skip(str(exc))

    async def in_a_kernel():
        return wb.pl.save(tiny_study_path, "perturbation_map", tmp_path / "map.png")

    try:   # a browser test before this one may have left its own loop running here
        asyncio.get_running_loop()
        out = wb.pl.save(tiny_study_path, "perturbation_map", tmp_path / "map.png")
    except RuntimeError:
        out = asyncio.run(in_a_kernel())
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_gene_card_delegates(tiny_study_path, monkeypatch):
    import types

    calls = []
    fake = types.ModuleType("workbench.dashboards.gene_card")
    fake.gene_card = lambda study, gene, **kw: calls.append((study.path, gene, kw)) or "card"
    monkeypatch.setitem(sys.modules, "workbench.dashboards.gene_card", fake)
    assert wb.pl.gene_card(tiny_study_path, "G03", compact=True) == "card"
    assert calls == [(tiny_study_path, "G03", {"compact": True})]


def test_gene_card_of_the_real_module(tiny_study_path):
    pytest.importorskip("workbench.dashboards.gene_card")
    card = wb.pl.gene_card(tiny_study_path, "G01")
    assert {"section", "fact", "value"} <= set(card.columns) and len(card) > 0
    with pytest.raises(WorkbenchError):
        wb.pl.gene_card(tiny_study_path, "NOT_A_GENE")


def test_gene_card_says_when_it_is_missing(tiny_study_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "workbench.dashboards.gene_card", None)
    with pytest.raises(WorkbenchError, match="gene card"):
        wb.pl.gene_card(tiny_study_path, "G01")
    with pytest.raises(ValidationError, match="gene"):
        wb.pl.gene_card(tiny_study_path, 7)


def test_facade_step_defaults_follow_the_steps():
    """wb.tl passes its own defaults on explicitly, so they must be the step's defaults
    (a default changed in the step and not here would silently run the old setting)."""
    import workbench as wb
    from workbench.tools.grn import run_grn

    from workbench.tools.interactions import run_interactions

    face, step = inspect.signature(wb.tl.grn).parameters, inspect.signature(run_grn).parameters
    for name in ("loss", "ftb_alpha", "max_parents", "method", "sparsity", "reward",
                 "warm_start", "warm_start_fit"):
        assert face[name].default == step[name].default, name
    face = inspect.signature(wb.tl.interactions).parameters
    step = inspect.signature(run_interactions).parameters
    for name in ("unit", "kernel", "n_permutations", "n_bootstrap", "min_samples", "on_small",
                 "separability", "cross_batch", "additivity_target"):
        assert face[name].default == step[name].default, name
    assert tuple(face["tests"].default) == tuple(step["tests"].default)
