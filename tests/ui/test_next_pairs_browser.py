"""In the browser: the interactions view's "next pairs to run" table of the tiny demo Study
(planned by the real ``plan-pairs`` step when the Study was built) shows the plan's rows in
rank order, downloads them as their own CSV, and a click on a row moves the session's
Selection, which the other views follow."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TIMEOUT = 30_000
CELL = ".tabulator-cell[tabulator-field='{}']"


def test_next_pairs_table_shows_the_plan_and_a_click_selects_the_pair(served_study, page,
                                                                      screenshot_dir):
    url, study = served_study
    hist = study.read("pair_selection")
    plan = hist[hist["status"] == "proposed"].sort_values("rank")
    assert len(plan) >= 2, "the tiny demo's plan-pairs step proposed fewer than two pairs"
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url + "/", timeout=120_000)  # the first page builds every view
    table = page.locator(".wb-next-pairs").first
    expect(table).to_be_attached(timeout=TIMEOUT)
    table.scroll_into_view_if_needed()
    expect(table).to_be_visible(timeout=TIMEOUT)
    rows = table.locator(".tabulator-row")
    expect(rows).to_have_count(len(plan), timeout=TIMEOUT)
    # row k holds the plan's k-th pair by rank, with its rank and reason
    for k, r in enumerate(plan.itertuples()):
        expect(rows.nth(k)).to_contain_text(str(r.pair), timeout=TIMEOUT)
        expect(rows.nth(k).locator(CELL.format("rank"))).to_have_text(str(int(r.rank)))
    expect(page.locator(".wb-next-batch").first).to_contain_text(
        f"proposed by the {plan['planner'].iloc[0]} planner", timeout=TIMEOUT)

    # the table's own download: the plan's rows in rank order
    button = page.locator(".wb-export-next-pairs a, .wb-export-next-pairs button").first
    button.scroll_into_view_if_needed()
    with page.expect_download(timeout=TIMEOUT) as dl:
        button.click()
    assert dl.value.suggested_filename == "interactions_next_pairs.csv"
    got = pd.read_csv(dl.value.path(), keep_default_na=False)
    assert list(got["pair"]) == list(plan["pair"])
    assert list(got["predicted_low"].round(9)) == list(plan["predicted_low"].round(9))
    assert list(got["predicted_high"].round(9)) == list(plan["predicted_high"].round(9))

    # a click on the second row selects its pair, and its first gene, everywhere
    row = plan.iloc[1]
    summary = page.locator(".wb-selection-summary").first
    expect(summary).to_contain_text("Pair: -", timeout=TIMEOUT)
    cell = rows.nth(1).locator(CELL.format("pair"))
    cell.scroll_into_view_if_needed()
    cell.click()
    expect(summary).to_contain_text(f"Pair: {row.pair}", timeout=TIMEOUT)
    expect(summary).to_contain_text(f"Gene: {row.gene_a}", timeout=TIMEOUT)
    expect(page).to_have_url(re.compile(rf"gene={row.gene_a}"), timeout=TIMEOUT)
    expect(page.locator(".wb-grn-centre").first).to_contain_text(
        f"centred on {row.gene_a}", timeout=TIMEOUT)
    a, b = str(row.pair).split("+")
    expect(page.locator(".wb-pair-page").first).to_contain_text(f"Pair {a} + {b}",
                                                                timeout=TIMEOUT)
    expect(rows.nth(1)).to_have_class(re.compile("tabulator-selected"), timeout=TIMEOUT)
    page.locator(".wb-view-interactions").first.screenshot(
        path=str(screenshot_dir / "interactions_next_pairs.png"))
    assert not errors, errors
