"""The served dashboards in a real browser: rendering, linking, bookmarks, CSV export.

Each test opens the tiny demo Study (built by the real steps) served in a thread, in
Debian's Chromium (Playwright), checks what each view shows against the Study's artefacts,
and fails on any browser console error. Screenshots of each view land in ``test-results/dashboards/``.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]

VIEWS = ("embeddings", "interactions", "concepts", "grn")
TIMEOUT = 30_000


def _watch_console(page):
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def _wait_rendered(page):
    for v in VIEWS:
        expect(page.locator(f".wb-view-{v}").first).to_be_visible(timeout=TIMEOUT)
    expect(page.locator(".wb-selection-summary").first).to_be_visible(timeout=TIMEOUT)
    # every view draws at least one Bokeh canvas
    for v in ("embeddings", "interactions"):
        expect(page.locator(f".wb-view-{v} canvas").first).to_be_attached(timeout=TIMEOUT)


def _samples_of(study, gene) -> int:
    pert = study.read_obs("profiles")["perturbation"].astype(str)
    return sum(gene in p.split("+") for p in pert)


def test_views_render_link_and_export(served_study, page, screenshot_dir):
    from workbench.dashboards.concepts import concepts_of
    from workbench.dashboards.embeddings import benchmark_numbers

    url, study = served_study
    errors = _watch_console(page)
    page.goto(url + "/")
    _wait_rendered(page)
    summary = page.locator(".wb-selection-summary").first
    expect(summary).to_contain_text("Gene: -", timeout=TIMEOUT)  # a new session starts empty
    page.screenshot(path=str(screenshot_dir / "dashboard.png"), full_page=True)
    # the embedding view lists the map benchmarks the embed step stored
    bench = dict(zip(*benchmark_numbers(study)[["metric", "value"]].to_numpy().T, strict=True))
    expect(page.locator(".wb-emb-benchmarks").first).to_contain_text(
        f"{bench['planted_group_retrieval.map']:.3g}", timeout=TIMEOUT)
    expect(page.locator(".wb-emb-benchmarks").first).to_contain_text("planted-group mAP")

    # choose a gene in the interaction view: every view follows, with that gene's content
    gene = "G01"
    page.locator(".wb-gene-select select").first.select_option(gene)
    expect(summary).to_contain_text(f"Gene: {gene}", timeout=TIMEOUT)
    n = _samples_of(study, gene)
    expect(page.locator(".wb-emb-status").first).to_contain_text(
        f"Highlighted: {n} samples of {gene}", timeout=TIMEOUT)
    mine = concepts_of(study, gene)
    expect(page.locator(".wb-concepts-of").first).to_contain_text(
        f"Concepts of {gene}: {', '.join(mine) if mine else 'none'}", timeout=TIMEOUT)
    for cid in mine:
        expect(page.locator(".wb-concept-table").first).to_contain_text(cid, timeout=TIMEOUT)
    expect(page.locator(".wb-grn-centre").first).to_contain_text(
        f"centred on {gene}", timeout=TIMEOUT)
    expect(page).to_have_url(re.compile(rf"gene={gene}"), timeout=TIMEOUT)
    for v in VIEWS:
        page.locator(f".wb-view-{v}").first.screenshot(path=str(screenshot_dir / f"{v}.png"))

    # a click on a cell of the pair matrix selects a tested pair; its page shows the
    # control, A, B and A+B crops
    tested = set(study.read("interactions")["pair"])
    canvas = page.locator(".wb-view-interactions canvas").first
    canvas.scroll_into_view_if_needed()  # mouse clicks land only inside the viewport
    box = canvas.bounding_box()
    # the matrix holds only the tested cells: click across the plot area until one is hit
    chosen = re.compile(r"Pair: G\d\d\+G\d\d")
    for fy in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7):
        for fx in (0.2, 0.3, 0.4, 0.5, 0.6):
            page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
            page.wait_for_timeout(300)
            if chosen.search(summary.inner_text()):
                break
        else:
            continue
        break
    expect(summary).to_contain_text(chosen, timeout=TIMEOUT)
    expect(page).to_have_url(re.compile(r"pair=G"), timeout=TIMEOUT)
    from urllib.parse import parse_qs, urlparse

    pair = parse_qs(urlparse(page.url).query)["pair"][0]
    a, b = pair.split("+")
    expect(page.locator(".wb-pair-page").first).to_contain_text(f"Pair {a} + {b}",
                                                                timeout=TIMEOUT)
    if pair in tested:
        expect(page.locator(".wb-view-interactions figure.wb-tile")).to_have_count(8,
                                                                                   timeout=TIMEOUT)
    page.locator(".wb-view-interactions").first.screenshot(
        path=str(screenshot_dir / "interactions_pair.png"))
    page.locator(".wb-gene-select select").first.select_option(gene)
    expect(summary).to_contain_text(f"Gene: {gene}", timeout=TIMEOUT)

    # CSV export of the selection: the samples of the gene
    with page.expect_download(timeout=TIMEOUT) as dl:
        page.locator(".wb-export-selection a, .wb-export-selection button").first.click()
    lines = open(dl.value.path()).read().strip().splitlines()
    assert lines[0].startswith("sample,") and "selected_perturbation" in lines[0]
    assert len(lines) == 1 + n
    assert not (study.path / "selection.json").exists()  # nothing written into the Study
    assert not errors, errors


def test_two_sessions_choose_at_once_and_keep_their_own(served_study, browser):
    """Two users of one served Study choose different genes at the same time; each keeps
    its own, and a third who arrives later starts empty."""
    from workbench.dashboards.interactions import genes

    url, study = served_study
    g_a, g_b = genes(study)[0], genes(study)[-1]
    ctx_a, ctx_b = browser.new_context(), browser.new_context()
    try:
        pa, pb = ctx_a.new_page(), ctx_b.new_page()
        pa.goto(url + "/")
        pb.goto(url + "/")
        for p in (pa, pb):
            _wait_rendered(p)
        # both choose before either waits for its answer
        pa.locator(".wb-gene-select select").first.select_option(g_a)
        pb.locator(".wb-gene-select select").first.select_option(g_b)
        for p, gene in ((pa, g_a), (pb, g_b)):
            expect(p.locator(".wb-selection-summary").first).to_contain_text(
                f"Gene: {gene}", timeout=TIMEOUT)
            expect(p.locator(".wb-emb-status").first).to_contain_text(
                f"Highlighted: {_samples_of(study, gene)} samples of {gene}", timeout=TIMEOUT)
            expect(p.locator(".wb-grn-centre").first).to_contain_text(f"centred on {gene}",
                                                                      timeout=TIMEOUT)
        # still their own after the other one's choice has landed
        expect(pa.locator(".wb-selection-summary").first).to_contain_text(f"Gene: {g_a}")
        pc = browser.new_context().new_page()
        pc.goto(url + "/")
        _wait_rendered(pc)
        expect(pc.locator(".wb-selection-summary").first).to_contain_text("Gene: -",
                                                                          timeout=TIMEOUT)
        expect(pc.locator(".wb-emb-status").first).to_contain_text("Highlighted: none")
        pc.context.close()
    finally:
        ctx_a.close()
        ctx_b.close()


def test_bookmarked_url_restores_state(served_study, page, screenshot_dir):
    url, study = served_study
    errors = _watch_console(page)
    concept = str(study.read_obs("concepts").index[2])
    pair = str(study.read("interactions")["pair"].iloc[0])
    a = pair.split("+")[0]
    page.goto(url + f"/?gene={a}&concept={concept}&pair={pair.replace('+', '%2B')}"
              "&views=grn,concepts,images")
    summary = page.locator(".wb-selection-summary").first
    expect(summary).to_contain_text(f"Gene: {a}", timeout=TIMEOUT)
    expect(summary).to_contain_text(f"Pair: {pair}")
    expect(summary).to_contain_text(f"Concept: {concept}")
    expect(page.locator(".wb-grn-centre").first).to_contain_text(f"centred on {a}",
                                                                 timeout=TIMEOUT)
    expect(page.locator(".wb-concept-page").first).to_contain_text(f"Concept {concept}",
                                                                   timeout=TIMEOUT)
    expect(page.locator(".wb-images-status").first).to_contain_text(f"samples of {a}",
                                                                     timeout=TIMEOUT)
    expect(page.locator(".wb-view-embeddings")).to_have_count(0)
    page.locator(".wb-view-images").first.screenshot(path=str(screenshot_dir / "images.png"))
    assert not errors, errors
