"""Dashboard speed: first render, selection propagation, scatter re-render at 1e4-1e6 points.

Usage::

    python benchmarks/bench_dashboards.py [--quick] [--study PATH] [--no-browser]

1. **Server start to first complete render**: ``serve_study`` in a thread, then Debian's
   Chromium (Playwright) loads the page until the four default views have drawn. Without
   Playwright/Chromium (or with ``--no-browser``) the server-side part only: building the
   session's document (HTTP GET of the page).
2. **Selection propagation**: choosing a gene in one session until every view has updated:
   in process (``Selection.choose_gene`` returns after all watchers ran and all Bokeh models
   changed), and in the browser (select a gene, wait until the GRN view shows it).
3. **Scatter re-render**: the embedding scatter at 10^4, 10^5, 10^6 points, as glyphs (the
   peer) and rasterised with datashader, with the bytes each sends to the browser; "zoom"
   is the re-aggregation a pan/zoom triggers on the server.

Without ``--study`` the Study is the synthetic one of the dashboard tests.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")
REPO = Path(__file__).resolve().parents[1]
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def synthetic_study(path):
    spec = importlib.util.spec_from_file_location(
        "bench_synthetic", REPO / "tests" / "dashboards" / "synthetic_study.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.make_synthetic_study(path)


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gene(study) -> str:
    from workbench.dashboards.grn import posterior

    return posterior(study)[0][0] if study.has("grn") else ""


def first_render(study, use_browser: bool) -> dict:
    import urllib.request

    from workbench.dashboards.serve import serve_study

    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    t0 = time.perf_counter()
    thread = serve_study(study.path, port=port, threaded=True)
    for _ in range(400):
        try:
            urllib.request.urlopen(url + "liveness", timeout=1)
            break
        except OSError:
            time.sleep(0.02)
    t_live = time.perf_counter() - t0
    out = {"server up (s)": t_live}
    try:
        if not use_browser:
            t1 = time.perf_counter()
            urllib.request.urlopen(url, timeout=120).read()
            out["page document built, no browser (s)"] = time.perf_counter() - t1
            out["start to document (s)"] = time.perf_counter() - t0
            return out
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                        args=ARGS)
            for label in ("first page (cold: imports, caches)", "next page (warm)"):
                page = browser.new_page(viewport={"width": 1500, "height": 1100})
                t1 = time.perf_counter()
                page.goto(url)
                for v in ("embeddings", "interactions", "concepts", "grn"):
                    page.locator(f".wb-view-{v}").first.wait_for(timeout=120_000)
                page.locator(".wb-view-grn canvas").first.wait_for(state="attached",
                                                                   timeout=120_000)
                page.locator(".wb-view-embeddings canvas").first.wait_for(state="attached",
                                                                          timeout=120_000)
                out[f"{label}: load to complete render (s)"] = time.perf_counter() - t1
                if "cold" in label:
                    out["server start to first complete render (s)"] = time.perf_counter() - t0
            gene = _gene(study)
            times = []
            sel = page.locator(".wb-gene-select select").first
            options = [o for o in sel.locator("option").all_text_contents() if o][:4]
            for g in options:
                t2 = time.perf_counter()
                sel.select_option(g)
                page.locator(".wb-grn-centre").first.filter(has_text=f"on {g}").wait_for(
                    timeout=60_000) if g in (gene or g) else None
                page.locator(".wb-selection-summary").first.filter(
                    has_text=f"Gene: {g}").wait_for(timeout=60_000)
                times.append(time.perf_counter() - t2)
            if times:
                out["browser: gene chosen to all views updated, median (ms)"] = \
                    1000 * statistics.median(times)
            browser.close()
    finally:
        thread.stop()
    return out


def propagation(study, repeats: int = 5) -> dict:
    import holoviews as hv
    import panel as pn

    from workbench.dashboards.app import build_app

    hv.extension("bokeh")
    t0 = time.perf_counter()
    dash = build_app(study, sync_url=False, write_file=False, restore=False)
    root = pn.panel(dash).get_root()
    build = time.perf_counter() - t0
    genes = dash._gene_options()[:repeats] or [""]
    times = []
    for g in genes:
        t = time.perf_counter()
        dash.selection.choose_gene(g)
        times.append(time.perf_counter() - t)
    del root
    return {"in process: session document built (s)": build,
            "in process: selection reaches every view, median (ms)": 1000 * statistics.median(times)}


def scatter_rows(sizes, glyph_max: int) -> list[dict]:
    import holoviews as hv
    from holoviews.operation.datashader import rasterize

    from workbench.dashboards.embeddings import scatter

    hv.extension("bokeh")
    rows = []
    rng = np.random.default_rng(0)
    warm = pd.DataFrame({"x": rng.normal(size=100), "y": rng.normal(size=100),
                         "id": np.arange(100).astype(str), "perturbation": ["a"] * 100})
    hv.renderer("bokeh").get_plot(scatter(warm, None, threshold=0))  # datashader JIT warm-up
    for n in sizes:
        df = pd.DataFrame({"x": rng.normal(size=n).astype(np.float32),
                           "y": rng.normal(size=n).astype(np.float32),
                           "id": np.arange(n).astype(str),
                           "perturbation": pd.Categorical(rng.integers(0, 50, n).astype(str))})
        row = {"points": f"{n:.0e}"}
        if n <= glyph_max:
            t = time.perf_counter()
            plot = hv.renderer("bokeh").get_plot(scatter(df, None, threshold=n + 1))
            row["glyphs render (s)"] = time.perf_counter() - t
            src = plot.handles["source"].data
            row["glyphs payload (MB)"] = sum(np.asarray(v).nbytes if np.asarray(v).dtype != object
                                             else 16 * len(v) for v in src.values()) / 1e6
        t = time.perf_counter()
        plot = hv.renderer("bokeh").get_plot(scatter(df, None, threshold=0))
        row["datashaded render (s)"] = time.perf_counter() - t
        img = [h for k, h in plot.handles.items() if k == "source"]
        row["datashaded payload (MB)"] = sum(np.asarray(v[0]).nbytes for v in img[0].data.values()
                                             if len(v)) / 1e6 if img else float("nan")
        pts = hv.Points(df, ["x", "y"])
        t = time.perf_counter()
        rasterize(pts, x_range=(-0.5, 0.5), y_range=(-0.5, 0.5), width=520, height=380,
                  dynamic=False)
        row["zoom re-aggregate (s)"] = time.perf_counter() - t
        if "glyphs render (s)" in row:
            row["datashaded / glyphs time"] = row["datashaded render (s)"] / row["glyphs render (s)"]
        rows.append(row)
    return rows


def table(rows) -> str:
    df = pd.DataFrame(rows)
    return df.to_markdown(index=False, floatfmt=".3g") if hasattr(df, "to_markdown") else str(df)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10^4 and 10^5 points only")
    ap.add_argument("--study", default=None, help="a Study to serve (default: synthetic)")
    ap.add_argument("--no-browser", action="store_true", help="server-side timings only")
    args = ap.parse_args(argv)
    from workbench.data.study import Study

    tmp = tempfile.TemporaryDirectory()
    study = Study.open(args.study) if args.study else synthetic_study(Path(tmp.name) / "s.study")
    use_browser = not args.no_browser and Path("/usr/bin/chromium").exists()
    try:
        import playwright  # noqa: F401
    except ImportError:
        use_browser = False
    print(f"## Dashboards on {study.title} ({', '.join(study.artefacts)})\n")
    timings = {**first_render(study, use_browser), **propagation(study)}
    try:
        from tabulate import tabulate  # noqa: F401
        has_tab = True
    except ImportError:
        has_tab = False
    print("| measure | value |\n|---|---|")
    for k, v in timings.items():
        print(f"| {k} | {v:.3g} |")
    sizes = [10**4, 10**5] if args.quick else [10**4, 10**5, 10**6]
    print("\n## Embedding scatter (glyphs = the peer; datashaded above the threshold)\n")
    rows = scatter_rows(sizes, glyph_max=10**5 if args.quick else 10**6)
    if has_tab:
        print(table(rows))
    else:
        cols = list(dict.fromkeys(k for r in rows for k in r))
        print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
        for r in rows:
            print("| " + " | ".join(f"{r[c]:.3g}" if isinstance(r.get(c), float) else
                                    str(r.get(c, "")) for c in cols) + " |")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
