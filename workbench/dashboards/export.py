"""Exports: the current selection and every view's table as CSV, figures as HTML or PNG.

In the browser each plot's toolbar has a save button: it downloads a PNG, or an SVG when
the view's "SVG figures" switch is on (Bokeh then draws with its SVG backend). From Python
(a notebook, a script), :func:`save_figure` writes a HoloViews object to ``.html`` with
Bokeh, and to ``.png`` by opening that page in a headless Chromium through Playwright when
both are installed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from workbench.errors import WorkbenchError

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def selection_table(study, selection) -> pd.DataFrame:
    """One row per selected sample (its id and screen metadata) with the selection's
    perturbation, concept and pair as columns. With no samples selected, the samples of
    the selected perturbation; with neither, a single row holding the selection."""
    from workbench.dashboards.embeddings import highlight_mask

    head = {"selected_perturbation": selection.perturbation,
            "selected_concept": selection.concept, "selected_pair": selection.pair}
    obs = None
    if study.has("profiles"):
        obs = study.read_obs("profiles")
    elif study.has("images"):
        obs = study.read("images").obs
    if obs is not None:
        obs = obs.copy()
        obs.index = obs.index.astype(str)
        if selection.samples:
            rows = obs.loc[[s for s in selection.samples if s in obs.index]]
        elif selection.perturbation and "perturbation" in obs:
            rows = obs[highlight_mask(obs, selection.perturbation)]
        else:
            rows = obs.iloc[:0]
        if len(rows):
            rows = rows.assign(**head)
            rows.index.name = "sample"
            return rows
    return pd.DataFrame([{"sample": "", **head}]).set_index("sample")


def write_selection_csv(study, selection, path: str | os.PathLike) -> Path:
    path = Path(path)
    selection_table(study, selection).to_csv(path)
    return path


def write_view_tables(views: dict, folder: str | os.PathLike) -> list[Path]:
    """Write ``<view>.csv`` for each view (``{name: view}``) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, view in views.items():
        if not view.missing:
            p = folder / f"{name}.csv"
            view.table().to_csv(p)
            out.append(p)
    return out


def save_figure(obj, path: str | os.PathLike, *, width: int = 900, height: int = 600) -> Path:
    """Write a HoloViews/Panel object to ``.html`` or ``.png``.

    PNG needs Playwright and a Chromium (``$WORKBENCH_CHROMIUM`` or ``/usr/bin/chromium``);
    for SVG, switch a view's "SVG figures" on and use the plot's save button.
    """
    import holoviews as hv

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".html":
        hv.save(obj, path, backend="bokeh") if not hasattr(obj, "save") else obj.save(path)
        return path
    if suffix != ".png":
        raise WorkbenchError(f"cannot write a figure as {suffix or 'a file without suffix'}.",
                             "use .html or .png; for SVG, switch the view's 'SVG figures' on "
                             "and use the plot's save button.")
    chromium = os.environ.get("WORKBENCH_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise WorkbenchError("PNG export needs Playwright.",
                             "pip install playwright, or use the plot's save button.") from exc
    if not Path(chromium).exists():
        raise WorkbenchError(f"PNG export needs Chromium; {chromium} does not exist.",
                             "install it (apt-get install chromium) or set WORKBENCH_CHROMIUM.")
    with tempfile.TemporaryDirectory() as tmp:
        html = Path(tmp) / "figure.html"
        from bokeh.resources import INLINE

        hv.save(obj, html, backend="bokeh", resources=INLINE)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(html.as_uri())
            page.wait_for_selector(".bk-Figure, .bk-Canvas, canvas", timeout=20_000)
            page.wait_for_timeout(300)
            page.screenshot(path=str(path), full_page=True)
            browser.close()
    return path
