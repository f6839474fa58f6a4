"""The served dashboards in a real browser: rendering, linking, bookmarks, CSV export.

Each test opens the served synthetic Study in Debian's Chromium (Playwright) and fails on
any browser console error. Screenshots of each view land in ``test-results/dashboards/``.
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


def test_views_render_link_and_export(served_study, page, screenshot_dir):
    url, study = served_study
    errors = _watch_console(page)
    page.goto(url + "/")
    _wait_rendered(page)
    page.screenshot(path=str(screenshot_dir / "dashboard.png"), full_page=True)

    # choose a gene in the interaction view: every view follows
    page.locator(".wb-gene-select select").first.select_option("G01")
    summary = page.locator(".wb-selection-summary").first
    expect(summary).to_contain_text("Gene: G01", timeout=TIMEOUT)
    expect(page.locator(".wb-emb-status").first).to_contain_text(
        re.compile(r"Highlighted: 18 samples of G01"), timeout=TIMEOUT)
    expect(page.locator(".wb-concepts-of").first).to_contain_text(
        re.compile(r"Concepts of G01: c1, c4"), timeout=TIMEOUT)
    expect(page.locator(".wb-grn-centre").first).to_contain_text(
        "centred on G01", timeout=TIMEOUT)
    expect(page).to_have_url(re.compile(r"gene=G01"), timeout=TIMEOUT)
    for v in VIEWS:
        page.locator(f".wb-view-{v}").first.screenshot(path=str(screenshot_dir / f"{v}.png"))

    # a click on a cell of the pair matrix selects that pair (and its first gene)
    canvas = page.locator(".wb-view-interactions canvas").first
    box = canvas.bounding_box()
    page.mouse.click(box["x"] + 0.45 * box["width"], box["y"] + 0.45 * box["height"])
    expect(summary).to_contain_text(re.compile(r"Pair: G\d\d\+G\d\d"), timeout=TIMEOUT)
    expect(page.locator(".wb-pair-page").first).to_contain_text(re.compile(r"Pair G\d\d \+ G"),
                                                                timeout=TIMEOUT)
    page.locator(".wb-view-interactions").first.screenshot(
        path=str(screenshot_dir / "interactions_pair.png"))
    page.locator(".wb-gene-select select").first.select_option("G01")
    expect(summary).to_contain_text("Gene: G01", timeout=TIMEOUT)

    # the selection file that napari follows
    import json

    data = json.loads((study.path / "selection.json").read_text())
    assert data["perturbation"] == "G01" and data["study_id"] == study.id

    # CSV export of the selection: the samples of G01
    with page.expect_download(timeout=TIMEOUT) as dl:
        page.locator(".wb-export-selection a, .wb-export-selection button").first.click()
    text = open(dl.value.path()).read()
    lines = text.strip().splitlines()
    assert lines[0].startswith("sample,") and "selected_perturbation" in lines[0]
    assert len(lines) == 1 + 18 and all(",G01" in ln for ln in lines[1:])
    assert not errors, errors


def test_bookmarked_url_restores_state(served_study, page, screenshot_dir):
    url, _ = served_study
    errors = _watch_console(page)
    page.goto(url + "/?gene=G03&concept=c2&pair=G01%2BG03&views=grn,concepts,images")
    summary = page.locator(".wb-selection-summary").first
    expect(summary).to_contain_text("Gene: G03", timeout=TIMEOUT)
    expect(summary).to_contain_text("Pair: G01+G03")
    expect(summary).to_contain_text("Concept: c2")
    expect(page.locator(".wb-grn-centre").first).to_contain_text("centred on G03",
                                                                 timeout=TIMEOUT)
    expect(page.locator(".wb-concept-page").first).to_contain_text("Concept c2",
                                                                   timeout=TIMEOUT)
    expect(page.locator(".wb-images-status").first).to_contain_text("samples of G03",
                                                                     timeout=TIMEOUT)
    expect(page.locator(".wb-view-embeddings")).to_have_count(0)
    page.locator(".wb-view-images").first.screenshot(path=str(screenshot_dir / "images.png"))
    assert not errors, errors


def test_demo_study_renders_and_links(page, screenshot_dir, tmp_path, serve, demo_study_path):
    """On a full demo Study built by ``workbench demo`` (every step run): every view renders
    without console errors and a gene chosen in the interaction view reaches the embedding,
    concept and GRN views."""
    import shutil

    from workbench.data.study import Study

    path = tmp_path / "demo.study"
    shutil.copytree(demo_study_path, path)  # the dashboards write selection.json
    study = Study.open(path)
    url = serve(path, views=["embeddings", "interactions", "concepts", "grn"])
    errors = _watch_console(page)
    page.goto(url + "/")
    _wait_rendered(page)
    from workbench.dashboards.interactions import genes

    gene = genes(study)[0]
    page.locator(".wb-gene-select select").first.select_option(gene)
    expect(page.locator(".wb-emb-status").first).to_contain_text(
        re.compile(rf"Highlighted: [1-9]\d* samples of {re.escape(gene)}"), timeout=TIMEOUT)
    expect(page.locator(".wb-concepts-of").first).to_contain_text(f"Concepts of {gene}",
                                                                  timeout=TIMEOUT)
    expect(page.locator(".wb-grn-centre").first).to_contain_text(f"centred on {gene}",
                                                                 timeout=TIMEOUT)
    page.screenshot(path=str(screenshot_dir / "demo_dashboard.png"), full_page=True)
    assert not errors, errors
