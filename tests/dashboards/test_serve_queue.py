"""A lab opening many pages at once: a page that waited in the server's queue still gets
its websocket (Bokeh refuses session tokens older than its default five minutes)."""

from __future__ import annotations

import socket
import time
import urllib.request

from workbench.dashboards.serve import SESSION_TOKEN_EXPIRATION, serve_study


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_served_pages_may_wait_half_an_hour_for_their_websocket(study):
    from panel.io.state import state

    assert SESSION_TOKEN_EXPIRATION >= 1800
    port = _free_port()
    thread = serve_study(study.path, port=port, threaded=True)
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/liveness", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        tornado_apps = [srv._tornado for srv, *_ in state._servers.values()
                        if getattr(srv, "port", None) == port]
        assert tornado_apps, "the server was not registered"
        assert tornado_apps[0].session_token_expiration == SESSION_TOKEN_EXPIRATION
    finally:
        thread.stop()


def test_a_caller_may_still_choose_the_expiration(study, monkeypatch):
    import panel as pn

    seen = {}
    monkeypatch.setattr(pn, "serve", lambda *a, **kw: seen.update(kw))
    serve_study(study.path, port=_free_port(), session_token_expiration=60)
    assert seen["session_token_expiration"] == 60
    serve_study(study.path, port=_free_port())
    assert seen["session_token_expiration"] == SESSION_TOKEN_EXPIRATION


def test_the_server_builds_a_first_page_before_serving_so_the_first_user_finds_warm_caches(
        study, monkeypatch):
    import panel as pn

    from workbench.dashboards import cache

    calls = []
    monkeypatch.setattr(pn, "serve", lambda *a, **kw: calls.append("serve"))
    cache.clear()
    reads = []
    real_read = type(study).read

    def counting_read(self, name, *a, **kw):
        reads.append(name)
        return real_read(self, name, *a, **kw)

    import gc

    from workbench.dashboards import app

    gc.collect()
    live = len(app.LIVE)
    serve_study(study.path, port=_free_port())
    assert calls == ["serve"]
    gc.collect()
    assert len(app.LIVE) == live, "the warm-up page outlives the warm-up"
    warmed = len(cache._CACHE)
    assert warmed > 0, "nothing was cached before serving"
    # a page built now (the first user's) reads no artefact the warm-up did not read
    monkeypatch.setattr(type(study), "read", counting_read)
    from bokeh.document import Document

    from workbench.dashboards.serve import make_app

    doc = Document()
    old = pn.state.curdoc
    pn.state.curdoc = doc
    try:
        doc.add_root(pn.panel(make_app(study.path)()).get_root(doc))
    finally:
        pn.state.curdoc = old
    assert len(cache._CACHE) == warmed  # every cached read was already there
    assert "profiles" not in reads and "grn" not in reads, reads  # a cold page reads both
    # and serving without it leaves the caches as they were
    cache.clear()
    serve_study(study.path, port=_free_port(), warm=False)
    assert len(cache._CACHE) == 0
