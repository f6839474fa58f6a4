"""In the browser: the embedding view of a Study holding a phenotype search colours its
map by the search's score when asked, the choice goes into the page's URL so a bookmark
restores it, and the gene card names the enriched pair."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TIMEOUT = 30_000
PHENO = "G03+G08"  # the demo world's synthetic-lethal pair


@pytest.fixture(scope="module")
def searched(tiny_study_path, tmp_path_factory):
    """A copy of the tiny Study with a phenotype search around one crop of the pair,
    answered from the perturbation column by the real find step."""
    from workbench.testing import copy_study
    from workbench.tools.find import run_find

    study = copy_study(tiny_study_path, tmp_path_factory.mktemp("pheno") / "s.study")
    obs = study.read_obs("profiles")
    ex = str(obs.index[obs["perturbation"] == PHENO][0])
    run_find(study, [ex], tau=0.05, label_column="perturbation", batch=10, budget=80, seed=0)
    return study


def test_phenotype_colouring_changes_the_map(searched, serve, page, screenshot_dir):
    from workbench.dashboards import phenotype as ph

    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(serve(searched.path) + "/")
    view = page.locator(".wb-view-embeddings").first
    expect(view).to_be_visible(timeout=TIMEOUT)
    canvas = view.locator("canvas").first
    expect(canvas).to_be_attached(timeout=TIMEOUT)
    legend = page.locator(".wb-emb-legend").first
    expect(legend).to_contain_text(PHENO, timeout=TIMEOUT)  # coloured by perturbation
    canvas.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    before = canvas.screenshot()

    select = page.locator(".wb-emb-color select").first
    select.scroll_into_view_if_needed()
    label = ph.color_label(searched)
    select.select_option(label)
    n = len(searched.read_obs("profiles"))
    expect(page.locator(".wb-emb-color-note").first).to_contain_text(
        f"{n} of {n} crops have a value", timeout=TIMEOUT)
    expect(legend).to_be_hidden(timeout=TIMEOUT)  # a colour bar replaces the legend
    expect(page).to_have_url(re.compile(r"phenotype="), timeout=TIMEOUT)
    canvas = page.locator(".wb-view-embeddings canvas").first
    canvas.scroll_into_view_if_needed()
    page.wait_for_timeout(1000)
    after = canvas.screenshot()
    assert after != before
    view.screenshot(path=str(screenshot_dir / "embeddings_phenotype.png"))

    page.locator(".wb-gene-select select").first.select_option("G08")
    table = page.locator(".wb-gene-card-table").first
    expect(table).to_contain_text(f"{PHENO} (", timeout=TIMEOUT)
    expect(table).to_contain_text("ranking score", timeout=TIMEOUT)

    # the bookmarked URL restores the colouring (and the gene) in a new session
    query = parse_qs(urlparse(page.url).query)
    assert query["phenotype"] == [ph.search_name(searched)] and query["gene"] == ["G08"]
    page.goto(page.url, timeout=120_000)
    expect(page.locator(".wb-emb-color-note").first).to_contain_text(
        f"{n} of {n} crops have a value", timeout=TIMEOUT)
    expect(page.locator(".wb-emb-color select").first).to_have_value(label)
    expect(legend).to_be_hidden(timeout=TIMEOUT)
    expect(page.locator(".wb-gene-card-table").first).to_contain_text(f"{PHENO} (",
                                                                      timeout=TIMEOUT)
    assert not errors
