"""``workbench serve``: arguments, safe defaults, and basic authentication."""

from __future__ import annotations

import argparse
import socket
import time
import urllib.error
import urllib.request

import pytest

from workbench.commands import serve as serve_cmd
from workbench.dashboards.serve import is_local


def test_serve_arguments_default_to_localhost():
    parser = argparse.ArgumentParser()
    serve_cmd.add_arguments(parser)
    args = parser.parse_args(["x.study"])
    assert args.address == "127.0.0.1" and args.port == 5006 and args.basic_auth is None
    args = parser.parse_args(["x.study", "--address", "0.0.0.0", "--port", "8000",
                              "--allow-websocket-origin", "lab.example.org:8000",
                              "--allow-websocket-origin", "10.0.0.5:8000",
                              "--basic-auth", "pw", "--views", "grn,images"])
    assert args.allow_websocket_origin == ["lab.example.org:8000", "10.0.0.5:8000"]
    assert is_local("127.0.0.1") and not is_local("0.0.0.0")


def test_serve_missing_study_fails_before_binding(tmp_path):
    from workbench.dashboards.serve import serve_study
    from workbench.errors import StudyNotFoundError

    with pytest.raises(StudyNotFoundError):
        serve_study(tmp_path / "nope.study", threaded=True)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_basic_auth_guards_the_page(study):
    pytest.importorskip("panel")
    from workbench.dashboards.serve import serve_study

    port = _free_port()
    thread = serve_study(study.path, port=port, threaded=True, basic_auth="s3cret",
                         cookie_secret="test-secret")
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                urllib.request.urlopen(url + "/liveness", timeout=1)
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                time.sleep(0.05)
        opener = urllib.request.build_opener(urllib.request.HTTPRedirectHandler())
        resp = opener.open(url + "/", timeout=10)
        assert "/login" in resp.url  # sent to the login page, not the dashboard
    finally:
        thread.stop()
