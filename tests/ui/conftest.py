"""Browser-test fixtures: Debian's Chromium driven by pytest-playwright, and a Panel server
in a thread (see shared notes, stack section 3). Tests here are marked ``browser``."""

from __future__ import annotations

import os
import shutil
import socket
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("WORKBENCH_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
REPO = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.browser)
            if not Path(CHROMIUM).exists():
                item.add_marker(pytest.mark.skip(
                    reason=f"no Chromium at {CHROMIUM}: apt-get install chromium "
                           "(or set WORKBENCH_CHROMIUM)"))


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1500, "height": 1100},
            "accept_downloads": True}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_live(url: str, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(url + "/liveness", timeout=1).status == 200:
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"panel server at {url} did not start")


@pytest.fixture(scope="session")
def ui_study(tiny_study_path):
    """The Study the browser tests browse: the tiny demo, built by the real steps."""
    from workbench.data.study import Study

    return Study.open(tiny_study_path)


@pytest.fixture(scope="session")
def served_study(ui_study):
    """``(url, study)`` of the Study's dashboards served in a thread for the session."""
    from workbench.dashboards.serve import serve_study

    port = free_port()
    thread = serve_study(ui_study.path, port=port, threaded=True)
    url = f"http://127.0.0.1:{port}"
    wait_live(url)
    yield url, ui_study
    thread.stop()


@pytest.fixture(scope="session")
def screenshot_dir(delete_output_dir):  # after pytest-playwright empties test-results/
    path = Path(os.environ.get("WORKBENCH_SCREENSHOTS", REPO / "test-results" / "dashboards"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def serve():
    """``serve(study_path, views=None) -> url``: serve another Study for one test."""
    from workbench.dashboards.serve import serve_study

    threads = []

    def _serve(path, views=None):
        port = free_port()
        threads.append(serve_study(path, port=port, threaded=True, views=views))
        url = f"http://127.0.0.1:{port}"
        wait_live(url)
        return url

    yield _serve
    for t in threads:
        t.stop()
