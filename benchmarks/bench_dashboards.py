"""Dashboard speed: first render, selection propagation, scatter re-render at 1e4-1e6 points.

Usage::

    python benchmarks/bench_dashboards.py [--quick] [--study PATH] [--no-browser] [--sessions N]

1. **Server start to first complete render**: ``serve_study`` in a thread, then Debian's
   Chromium (Playwright) loads the page until the four default views have drawn. Without
   Playwright/Chromium (or with ``--no-browser``) the server-side part only: building the
   session's document (HTTP GET of the page).
2. **Selection propagation**: choosing a gene in one session until every view has updated:
   in process (``Selection.choose_gene`` returns after all watchers ran and all Bokeh models
   changed), and in the browser (select a gene, wait until the GRN view shows it).
3. **A lab at once**: N browser pages (default 20; 3 with ``--quick``) on one server, each
   choosing genes: first-render and selection latency percentiles, whether any page ends
   up showing another user's choice, the server's memory after a warm-up page, with all
   sessions open and after all closed, and how many dashboards are still alive after the
   server ended the sessions (should be 0: memory bounded).
4. **Scatter re-render**: the embedding scatter at 10^4, 10^5, 10^6 points, as glyphs (the
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


def _wait_all_views(page, g: str, in_grn: bool, timeout: int = 60_000) -> None:
    """Until the header, the gene card and (for a gene of the network) the GRN view show
    gene ``g``."""
    page.locator(".wb-selection-summary").first.filter(has_text=f"Gene: {g}").wait_for(
        timeout=timeout)
    page.locator(".wb-gene-card-title").first.filter(has_text=g).wait_for(timeout=timeout)
    if in_grn:
        page.locator(".wb-grn-centre").first.filter(has_text=f"on {g}").wait_for(
            timeout=timeout)


def _grn_genes(study) -> set:
    from workbench.dashboards.grn import posterior

    return set(posterior(study)[0]) if study.has("grn") else set()


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
                page.goto(url, timeout=300_000)
                for v in ("embeddings", "interactions", "concepts", "grn"):
                    page.locator(f".wb-view-{v}").first.wait_for(timeout=120_000)
                page.locator(".wb-view-grn canvas").first.wait_for(state="attached",
                                                                   timeout=120_000)
                page.locator(".wb-view-embeddings canvas").first.wait_for(state="attached",
                                                                          timeout=120_000)
                out[f"{label}: load to complete render (s)"] = time.perf_counter() - t1
                if "cold" in label:
                    out["server start to first complete render (s)"] = time.perf_counter() - t0
            gene, grn = _gene(study), _grn_genes(study)
            times = []
            sel = page.locator(".wb-gene-select select").first
            options = [o for o in sel.locator("option").all_text_contents() if o and o != gene]
            for g in (options[:12] if len(options) > 1 else []):
                t2 = time.perf_counter()
                sel.select_option(g)
                _wait_all_views(page, g, g in grn)
                times.append(time.perf_counter() - t2)
            if times:
                out["browser: gene chosen to all views updated, median (ms)"] = \
                    1000 * statistics.median(times)
                out["browser: gene chosen to all views updated, p95 (ms)"] = \
                    1000 * float(np.percentile(times, 95))
            browser.close()
    finally:
        thread.stop()
    return out


def _rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


async def _session(browser, url, genes, grn, out, k):
    """One user: open the page, choose each of ``genes`` in turn (timing each until every
    view shows it), then check the page still shows this user's last choice."""
    page = await browser.new_page(viewport={"width": 1500, "height": 1100})
    t0 = time.perf_counter()
    await page.goto(url, timeout=600_000)  # 20 first pages at once take minutes here
    sel = page.locator(".wb-gene-select select").first
    await sel.wait_for(timeout=600_000)
    out["first render (s)"].append(time.perf_counter() - t0)
    for g in genes:
        t = time.perf_counter()
        await sel.select_option(g, timeout=600_000)
        await page.locator(".wb-selection-summary").first.filter(
            has_text=f"Gene: {g}").wait_for(timeout=600_000)
        await page.locator(".wb-gene-card-title").first.filter(has_text=g).wait_for(
            timeout=600_000)
        if g in grn:
            await page.locator(".wb-grn-centre").first.filter(has_text=f"on {g}").wait_for(
                timeout=600_000)
        out["selection (ms)"].append(1000 * (time.perf_counter() - t))
    out["pages"][k] = (page, genes[-1])


#: The load test's server: ``serve_study`` (what ``workbench serve`` runs) in a process of
#: its own, as a lab runs it; SIGUSR1 makes it write how many dashboards are alive (after a
#: garbage collection) to the file named by its third argument.
SERVER = """
import gc, signal, sys
from pathlib import Path
from workbench.dashboards import app
from workbench.dashboards.serve import serve_study

def alive(*_):
    gc.collect()
    Path(sys.argv[3]).write_text(str(len(app.LIVE)))

signal.signal(signal.SIGUSR1, alive)
serve_study(sys.argv[1], port=int(sys.argv[2]), check_unused_sessions_milliseconds=500,
            unused_session_lifetime_milliseconds=1000)
"""


def _alive(proc, path: Path) -> int:
    import signal

    path.unlink(missing_ok=True)
    proc.send_signal(signal.SIGUSR1)
    for _ in range(200):
        if path.exists() and path.read_text():
            return int(path.read_text())
        time.sleep(0.05)
    return -1


def load_test(study, n_sessions: int, choices: int) -> dict:
    """``n_sessions`` browser pages at once on one server (127.0.0.1, a process of its own),
    each choosing ``choices`` genes: latency percentiles, cross-talk, server memory, the
    sessions left alive after all pages closed, and whether a page opened after they all
    closed still renders (a long-running server whose sessions come and go)."""
    import asyncio
    import subprocess
    import sys

    import psutil
    from playwright.async_api import async_playwright

    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    tmp = Path(tempfile.mkdtemp())
    alive_file = tmp / "alive"
    log = open(tmp / "server.log", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(study.path), str(port),
                             str(alive_file)], stdout=log, stderr=subprocess.STDOUT)
    server = psutil.Process(proc.pid)

    def rss() -> float:
        return server.memory_info().rss / 2**20

    grn = _grn_genes(study)
    from workbench.dashboards.interactions import genes as pair_genes

    # the genes the interaction view's chooser offers (each user picks there)
    options = [str(g) for g in pair_genes(study) if "+" not in str(g)]
    out = {"first render (s)": [], "selection (ms)": [], "pages": {}}

    def scratch():
        return {"first render (s)": [], "selection (ms)": [], "pages": {}}

    async def run():
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path="/usr/bin/chromium",
                                              headless=True, args=ARGS)
            await _session(browser, url, options[:1], grn, scratch(), 0)  # warm-up page
            rss0 = rss()
            plans = [[options[(k * 3 + j) % len(options)] for j in range(choices)]
                     for k in range(n_sessions)]
            await asyncio.gather(*(_session(browser, url, plans[k], grn, out, k)
                                   for k in range(n_sessions)))
            rss_open = rss()
            crosstalk = 0
            lasts = {last for _, last in out["pages"].values()}
            for page, last in out["pages"].values():  # has_text looks inside shadow roots
                summary = page.locator(".wb-selection-summary").first
                mine = await summary.filter(has_text=f"Gene: {last} ").count()
                theirs = [await summary.filter(has_text=f"Gene: {g} ").count()
                          for g in lasts - {last}]
                crosstalk += (not mine) or any(theirs)
            for page, _ in out["pages"].values():
                await page.close()
            alive = _alive(proc, alive_file)
            for _ in range(60):  # the server ends sessions about a second after their pages
                if alive <= 1:  # the warm-up page is still open
                    break
                await asyncio.sleep(0.5)
                alive = _alive(proc, alive_file)
            rss_closed = rss()
            later = scratch()  # a new user once everyone else has left
            try:
                await _session(browser, url, options[1:2], grn, later, 0)
                reopened = "yes"
            except Exception as exc:  # noqa: BLE001 (reported in the table)
                reopened = f"no ({type(exc).__name__})"
            await browser.close()
            return rss0, rss_open, rss_closed, crosstalk, alive, reopened

    try:
        _wait_live(url)
        rss0, rss_open, rss_closed, crosstalk, alive, reopened = asyncio.run(run())
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    fr, sl = np.array(out["first render (s)"]), np.array(out["selection (ms)"])
    return {"sessions at once": n_sessions, "gene choices per session": choices,
            "first render, median (s)": float(np.median(fr)),
            "first render, p95 (s)": float(np.percentile(fr, 95)),
            "selection to all views, median (ms)": float(np.median(sl)),
            "selection to all views, p95 (ms)": float(np.percentile(sl, 95)),
            "selection to all views, max (ms)": float(sl.max()),
            "pages showing another user's gene": crosstalk,
            "server RSS after one warm-up page (MiB)": rss0,
            "server RSS with all sessions open (MiB)": rss_open,
            "server RSS after all closed (MiB)": rss_closed,
            "dashboards still alive after close (warm-up page open)": alive,
            "a page opened after all closed renders and follows a choice": reopened}


def _wait_live(url: str) -> None:
    import urllib.request

    for _ in range(600):
        try:
            urllib.request.urlopen(url + "liveness", timeout=1)
            return
        except OSError:
            time.sleep(0.05)


def propagation(study, repeats: int = 5) -> dict:
    """In process: build one session's document and choose genes in it. The page is the
    root of a Bokeh document that is the current one, as in a served session, so Bokeh's
    walks of the document's model graph are counted."""
    import holoviews as hv
    import panel as pn
    from bokeh.document import Document

    from workbench.dashboards.app import build_app

    hv.extension("bokeh")
    doc = Document()
    pn.state.curdoc = doc
    t0 = time.perf_counter()
    dash = build_app(study, sync_url=False)
    root = pn.panel(dash).get_root(doc)
    doc.add_root(root)
    build = time.perf_counter() - t0
    genes = dash._gene_options()[:repeats] or [""]
    times = []
    for g in genes:
        t = time.perf_counter()
        dash.selection.choose_gene(g)
        times.append(time.perf_counter() - t)
    del root
    pn.state.curdoc = None
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
    ap.add_argument("--sessions", type=int, default=None,
                    help="browser sessions at once in the load test (default 20, --quick 3; "
                         "0 skips it)")
    ap.add_argument("--load-only", action="store_true",
                    help="only the load test (no single-page timings, no scatter table)")
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
    timings = {} if args.load_only else {**first_render(study, use_browser),
                                         **propagation(study)}
    try:
        from tabulate import tabulate  # noqa: F401
        has_tab = True
    except ImportError:
        has_tab = False
    print("| measure | value |\n|---|---|")
    for k, v in timings.items():
        print(f"| {k} | {v:.3g} |")
    n = (3 if args.quick else 20) if args.sessions is None else args.sessions
    if use_browser and n > 0:
        load = load_test(study, n, 2 if args.quick else 5)
        print(f"\n## {n} sessions at once on 127.0.0.1 (Playwright pages)\n")
        print("| measure | value |\n|---|---|")
        for k, v in load.items():
            print(f"| {k} | {v:.3g} |" if isinstance(v, float) else f"| {k} | {v} |")
    if args.load_only:
        return 0
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
