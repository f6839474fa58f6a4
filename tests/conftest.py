"""Shared fixtures: the public data folder, a quick demo Study, browser launch settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    """The public data folder: $WORKBENCH_SHARED_DATA, else ``<repo>/../shared/data``."""
    env = os.environ.get("WORKBENCH_SHARED_DATA")
    path = Path(env) if env else REPO.parent / "shared" / "data"
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of the public data folder; skips the test with a reason when it is absent."""
    path = shared_data_dir()
    if path is None:
        pytest.skip("public data folder not found: set WORKBENCH_SHARED_DATA or place it at "
                    "../shared/data beside the repository")
    return path


@pytest.fixture(scope="session")
def demo_study_path(tmp_path_factory) -> Path:
    """A full demo Study (every step run) built once per test session at size "quick".

    ``$WORKBENCH_DEMO_STUDY`` points at one built earlier (``workbench demo --no-serve``) to
    save the minute it takes. Tests that write into it must copy it first.
    """
    env = os.environ.get("WORKBENCH_DEMO_STUDY")
    if env:
        return Path(env)
    from workbench.commands.demo import build_demo

    out = tmp_path_factory.mktemp("demo") / "demo.study"
    build_demo(out, size="quick", seed=0, log=lambda *a: None)
    return out


@pytest.fixture(scope="session")
def tiny_study_path(tmp_path_factory) -> Path:
    """A demo Study of size "tiny" built by the real steps (every step run), once per test
    session, for the views and the napari plugin. Tests that write into it copy it first
    (``workbench.testing.copy_study``). ``$WORKBENCH_TINY_STUDY`` points at one built
    earlier (``workbench demo --size tiny --no-serve``)."""
    env = os.environ.get("WORKBENCH_TINY_STUDY")
    if env:
        return Path(env)
    from workbench.testing import make_demo_study

    out = tmp_path_factory.mktemp("tiny") / "tiny.study"
    make_demo_study(out, size="tiny", seed=0)
    return out


@pytest.fixture(scope="module")
def torch_one_thread():
    """Run a module's small torch problems on one thread (use with
    ``pytestmark = pytest.mark.usefixtures("torch_one_thread")``): on a shared 2-core
    machine extra threads only spin-wait on tensors this small."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


_EXIT = {"status": None}


def pytest_sessionfinish(session, exitstatus):
    _EXIT["status"] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """Leave with pytest's own status once every plugin has cleaned up (pytest-xvfb stops
    its X server before this runs). Qt, vispy and the Bokeh server threads of this one
    process can crash while the interpreter tears itself down, after every test has run
    and the summary is printed; that crash would replace a green status with a red one."""
    if _EXIT["status"] is None or os.environ.get("WORKBENCH_TEST_NORMAL_EXIT"):
        return
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_EXIT["status"])
