"""A concept's page in a real browser: exemplar crops with activations, the driver state,
the stability across seeds."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TIMEOUT = 30_000


def test_concept_page_shows_exemplars_with_activations_and_no_driver_state(served_study,
                                                                            page):
    url, study = served_study
    pages = study.read("concept_pages")["concepts"]
    # a concept with exemplars and no FDR-significant driver (the tiny demo has such ones)
    cid = next(c for c, p in pages.items() if p["driver_state"] == "none" and len(p["top"]) >= 2)
    top = pages[cid]["top"]
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url + f"/?concept={cid}&views=concepts")
    expect(page.locator(".wb-concept-page").first).to_contain_text(f"Concept {cid}",
                                                                   timeout=TIMEOUT)
    crops = page.locator(".wb-concept-exemplars img")
    expect(crops).to_have_count(min(8, len(top)), timeout=TIMEOUT)
    exemplars = page.locator(".wb-concept-exemplars").first
    expect(exemplars).to_contain_text(f"activation {top[0]['activation']:.3f}", timeout=TIMEOUT)
    expect(exemplars).to_contain_text(f"activation {top[1]['activation']:.3f}")
    expect(exemplars).to_contain_text(top[0]["id"])
    drivers = page.locator(".wb-concept-drivers").first
    expect(drivers).to_contain_text("No significant driver", timeout=TIMEOUT)
    expect(drivers).to_contain_text("not significant")
    expect(drivers).not_to_contain_text("Driving perturbations")
    expect(page.locator(".wb-concept-quantiles").first).to_contain_text("q50")
    stability = page.locator(".wb-concept-stability").first
    expect(stability).to_contain_text(f"Stability across seeds: {pages[cid]['stability']:.2f}")
    expect(stability).to_contain_text("over 1 other seed")
    assert not errors, errors
