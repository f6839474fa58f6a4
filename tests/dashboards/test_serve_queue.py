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
