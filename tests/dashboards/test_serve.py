"""``workbench serve``: arguments, safe defaults, logins from a file, throttling, TLS and
the websocket Origin check."""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from workbench.commands import serve as serve_cmd
from workbench.dashboards.serve import (LoginThrottle, check_password, is_local,
                                        read_credentials)
from workbench.errors import WorkbenchError


def test_serve_arguments_default_to_localhost():
    parser = argparse.ArgumentParser()
    serve_cmd.add_arguments(parser)
    args = parser.parse_args(["x.study"])
    assert args.address == "127.0.0.1" and args.port == 5006 and args.basic_auth is None
    assert args.basic_auth_file is None and args.ssl_certfile is None
    args = parser.parse_args(["x.study", "--address", "0.0.0.0", "--port", "8000",
                              "--allow-websocket-origin", "lab.example.org:8000",
                              "--allow-websocket-origin", "10.0.0.5:8000",
                              "--basic-auth-file", "users.json", "--views", "grn,images",
                              "--ssl-certfile", "c.pem", "--ssl-keyfile", "k.pem"])
    assert args.allow_websocket_origin == ["lab.example.org:8000", "10.0.0.5:8000"]
    assert (args.basic_auth_file, args.ssl_certfile, args.ssl_keyfile) == (
        "users.json", "c.pem", "k.pem")
    assert is_local("127.0.0.1") and not is_local("0.0.0.0")


def test_serve_missing_study_fails_before_binding(tmp_path):
    from workbench.dashboards.serve import serve_study
    from workbench.errors import StudyNotFoundError

    with pytest.raises(StudyNotFoundError):
        serve_study(tmp_path / "nope.study", threaded=True)


def test_credentials_file_forms_and_errors(tmp_path):
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"ana": "pw-a", "ben": "pw-b"}))
    creds = read_credentials(users)
    assert creds == {"ana": "pw-a", "ben": "pw-b"}
    assert check_password(creds, "ana", "pw-a") and not check_password(creds, "ana", "pw-b")
    assert not check_password(creds, "carl", "pw-a")  # unknown user
    one = tmp_path / "password.txt"
    one.write_text("s3cret\n")
    assert read_credentials(one) == "s3cret"
    assert check_password("s3cret", "anyone", "s3cret")
    assert not check_password("s3cret", "anyone", "s3cre")
    for text, word in (("", "empty"), ("{not json", "not valid JSON"), ("{}", "no user")):
        bad = tmp_path / "bad.txt"
        bad.write_text(text)
        with pytest.raises(WorkbenchError, match=word):
            read_credentials(bad)
    with pytest.raises(WorkbenchError, match="does not exist"):
        read_credentials(tmp_path / "missing.json")


def test_login_throttle_doubles_the_wait_and_forgives_on_success():
    now = [100.0]
    th = LoginThrottle(free=3, base=1.0, cap=8.0, clock=lambda: now[0])
    for _ in range(3):
        assert th.wait("ip") == 0.0
        th.failed("ip")
    assert th.wait("ip") == pytest.approx(1.0)  # the 4th attempt waits 1 s
    now[0] += 1.0
    assert th.wait("ip") == 0.0
    th.failed("ip")
    assert th.wait("ip") == pytest.approx(2.0)  # then 2 s
    for _ in range(5):
        th.failed("ip")
    assert th.wait("ip") == pytest.approx(8.0)  # capped
    assert th.wait("other") == 0.0  # per client
    th.succeeded("ip")
    assert th.wait("ip") == 0.0


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_live(url, context=None):
    for _ in range(400):
        try:
            urllib.request.urlopen(url + "/liveness", timeout=1, context=context)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.05)


def _ws_status(port, origin, cookie=None, conn=None):
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Upgrade": "websocket", "Connection": "Upgrade", "Origin": origin,
               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"}
    if cookie:
        headers["Cookie"] = cookie
    c.request("GET", "/ws", headers=headers)
    status = c.getresponse().status
    c.close()
    return status


def _login(port, user, password):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("POST", "/login", body=urllib.parse.urlencode(
        {"username": user, "password": password}),
        headers={"Content-Type": "application/x-www-form-urlencoded"})
    r = c.getresponse()
    cookies = "; ".join(v.split(";")[0] for k, v in r.getheaders() if k.lower() == "set-cookie")
    r.read()
    c.close()
    return r.status, r.getheader("Location") or "", cookies


def test_login_from_file_throttle_and_origin(study, tmp_path):
    pytest.importorskip("panel")
    from workbench.dashboards.serve import serve_study

    users = tmp_path / "users.json"
    users.write_text(json.dumps({"ana": "correct horse"}))
    port = _free_port()
    throttle = LoginThrottle(free=2, base=30.0)
    thread = serve_study(study.path, port=port, threaded=True, basic_auth_file=users,
                         cookie_secret="test-secret", throttle=throttle)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_live(url)
        resp = urllib.request.urlopen(url + "/", timeout=10)
        assert "/login" in resp.url  # sent to the login page, not the dashboard
        assert _ws_status(port, url) != 101  # no session for an unauthenticated websocket
        # the right password logs in and opens the websocket from the page's own origin
        status, where, cookies = _login(port, "ana", "correct horse")
        assert status == 302 and "error" not in where and "user=" in cookies
        page = urllib.request.urlopen(urllib.request.Request(
            url + "/", headers={"Cookie": cookies}), timeout=30)
        assert "/login" not in page.url and "bokeh" in page.read().decode().lower()
        assert _ws_status(port, url, cookies) == 101
        # ... but not from another site's page, even with the user's cookie
        assert _ws_status(port, "http://evil.example.org", cookies) == 403
        # wrong passwords: two free failures, then refused with 429 until the wait is over
        assert "/login?error=" in _login(port, "ana", "wrong")[1]
        assert _login(port, "ana", "wrong")[0] == 302
        assert _login(port, "ana", "correct horse")[0] == 429  # even the right one waits
    finally:
        thread.stop()


def test_wrong_origin_refused_without_auth(study):
    from workbench.dashboards.serve import serve_study

    port = _free_port()
    thread = serve_study(study.path, port=port, threaded=True)
    try:
        _wait_live(f"http://127.0.0.1:{port}")
        assert _ws_status(port, "http://evil.example.org") == 403
        assert _ws_status(port, f"http://localhost:{port}") == 101
    finally:
        thread.stop()


def test_tls_serves_https(study, tmp_path):
    from workbench.dashboards.serve import serve_study

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
                        "1", "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                       check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"openssl cannot make a test certificate here: {exc}")
    with pytest.raises(WorkbenchError, match="both"):
        serve_study(study.path, port=_free_port(), threaded=True, ssl_certfile=cert)
    port = _free_port()
    thread = serve_study(study.path, port=port, threaded=True, ssl_certfile=cert,
                         ssl_keyfile=key)
    try:
        ctx = ssl.create_default_context(cafile=str(cert))
        ctx.check_hostname = False
        url = f"https://127.0.0.1:{port}"
        _wait_live(url, ctx)
        assert urllib.request.urlopen(url + "/liveness", timeout=10, context=ctx).status == 200
        with pytest.raises(OSError):  # plain HTTP is not served on the TLS port
            urllib.request.urlopen(f"http://127.0.0.1:{port}/liveness", timeout=5).read()
    finally:
        thread.stop()
