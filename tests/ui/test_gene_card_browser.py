"""In the browser: payloads in the URL and in a Study's title stay text; the overview
greets an empty selection; the gene card follows a gene chosen anywhere, and the URL
restores the same page. Screenshots land in ``test-results/dashboards/``."""

from __future__ import annotations

import json
import re
import urllib.parse

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TIMEOUT = 30_000
PAYLOAD = '<img src=x onerror="window.__pwned=1">'
TITLE = 'lab <script>window.__pwned=2</script><img src=y onerror="window.__pwned=3">'


def _no_injection(page):
    assert page.evaluate("window.__pwned") is None
    assert page.evaluate("document.querySelectorAll('img[src=\"x\"], img[src=\"y\"]').length") == 0
    for frame in page.frames:  # Panel renders into shadow roots: search them too
        n = frame.evaluate("""() => { let n = 0; const walk = (root) => {
            root.querySelectorAll('*').forEach(el => {
              if (el.tagName === 'IMG' && ['x', 'y'].includes(el.getAttribute('src'))) n++;
              if (el.tagName === 'SCRIPT' && el.textContent.includes('__pwned')) n++;
              if (el.shadowRoot) walk(el.shadowRoot); }); };
            walk(document); return n; }""")
        assert n == 0


@pytest.fixture(scope="module")
def crafted_study(tiny_study_path, tmp_path_factory):
    """A copy of the tiny Study whose title carries script (as a received Study might)."""
    from workbench.testing import copy_study

    study = copy_study(tiny_study_path, tmp_path_factory.mktemp("xss") / "xss.study")
    meta = json.loads((study.path / "study.json").read_text())
    meta["title"] = TITLE
    (study.path / "study.json").write_text(json.dumps(meta))
    return study.path


def test_payloads_in_url_and_title_stay_text(crafted_study, serve, page, screenshot_dir):
    url = serve(crafted_study)
    page.goto(url + "/?gene=" + urllib.parse.quote(PAYLOAD))
    summary = page.locator(".wb-selection-summary").first
    expect(summary).to_contain_text(PAYLOAD, timeout=TIMEOUT)  # shown as the text it is
    expect(page.locator(".wb-study-title").first).to_contain_text("lab <script>",
                                                                  timeout=TIMEOUT)
    expect(page.locator(".wb-gene-card-empty").first).to_contain_text(
        "is not a gene or perturbation", timeout=TIMEOUT)
    page.wait_for_timeout(1000)
    _no_injection(page)
    page.screenshot(path=str(screenshot_dir / "payloads.png"), full_page=True)


def test_overview_then_gene_card_follow_the_choice_and_the_url(served_study, page,
                                                               screenshot_dir):
    from workbench.dashboards.gene_card import gene_card

    url, study = served_study
    page.goto(url + "/")
    expect(page.locator(".wb-overview-table").first).to_contain_text("chance",
                                                                     timeout=TIMEOUT)
    expect(page.locator(".wb-view-grn").first).to_be_visible(timeout=TIMEOUT)
    page.screenshot(path=str(screenshot_dir / "overview.png"), full_page=True)

    # choose in the header box (the gene card's chooser)
    box = page.locator(".wb-gene-input input").first
    box.fill("G07")
    box.press("Enter")
    title = page.locator(".wb-gene-card-title").first
    expect(title).to_contain_text("G07", timeout=TIMEOUT)
    card = gene_card(study, "G07")
    table = page.locator(".wb-gene-card-table").first
    for value in card["value"].head(3):
        expect(table).to_contain_text(value[:30], timeout=TIMEOUT)
    expect(page.locator(".wb-grn-centre").first).to_contain_text("centred on G07",
                                                                 timeout=TIMEOUT)
    expect(page).to_have_url(re.compile(r"gene=G07"), timeout=TIMEOUT)
    page.screenshot(path=str(screenshot_dir / "gene_card.png"), full_page=True)

    # then in the interaction view: the card and the GRN view follow
    page.locator(".wb-gene-select select").first.select_option("G03")
    expect(title).to_contain_text("G03", timeout=TIMEOUT)
    expect(page.locator(".wb-grn-centre").first).to_contain_text("centred on G03",
                                                                 timeout=TIMEOUT)
    expect(page.locator(".wb-concepts-of").first).to_contain_text("G03", timeout=TIMEOUT)
    expect(page).to_have_url(re.compile(r"gene=G03"), timeout=TIMEOUT)
    for v in ("embeddings", "interactions", "concepts", "grn"):
        page.locator(f".wb-view-{v}").first.screenshot(path=str(screenshot_dir / f"card_{v}.png"))

    # the URL restores the same page in a fresh tab
    restored = page.context.new_page()
    restored.goto(page.url)
    expect(restored.locator(".wb-gene-card-title").first).to_contain_text("G03",
                                                                          timeout=TIMEOUT)
    expect(restored.locator(".wb-grn-centre").first).to_contain_text("centred on G03",
                                                                     timeout=TIMEOUT)
    restored.close()
