"""From a served page to napari and back, across two real processes.

The page (served on 127.0.0.1, so it shows "Open in napari") starts ``workbench napari
STUDY --channel FILE`` in its own process through :class:`NapariLink`. That process is the
real command with a real viewer (Qt on the X server pytest-xvfb starts; napari needs
OpenGL, which Qt's offscreen platform lacks). What it shows is read by a probe loaded into
it (``napari_probe/sitecustomize.py``, on ``PYTHONPATH`` for this test only): the probe
reports the viewer's layers and clicks the Study browser's Show button when asked, as a
person would; it replaces nothing.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.napari]

TIMEOUT = 30_000
PROBE = Path(__file__).parent / "napari_probe"


def _log(dash) -> str:
    link = dash.napari_link
    try:
        return link.log_path.read_text()[-3000:] if link is not None else ""
    except OSError:
        return ""


def _wait_report(folder: Path, dash, proc, want, what: str, timeout: float = 180.0) -> dict:
    """The probe's report once ``want(report)`` holds; fails with napari's output if the
    process ends or the time runs out."""
    deadline, report = time.time() + timeout, None
    while time.time() < deadline:
        try:
            report = json.loads((folder / "report.json").read_text())
        except (OSError, ValueError):
            report = None
        if report is not None and want(report):
            return report
        if proc.poll() is not None:
            pytest.fail(f"napari exited ({proc.returncode}) before {what}:\n{_log(dash)}")
        time.sleep(0.25)
    pytest.fail(f"napari did not reach {what} in {timeout:.0f} s; last report {report}\n"
                f"{_log(dash)}")


def _shown(report: dict, label: str) -> list[dict]:
    return [lay for lay in report["layers"] if lay["name"].startswith(f"{label}: ")]


def test_open_in_napari_follows_the_page_both_ways(served_study, page, tmp_path, monkeypatch,
                                                    screenshot_dir):
    from workbench.dashboards import app
    from workbench.dashboards.interactions import genes

    if not os.environ.get("DISPLAY"):
        pytest.skip("no X display for napari: install Debian's xvfb (pytest-xvfb starts it)")
    url, study = served_study
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)  # offscreen Qt has no OpenGL
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in (str(PROBE), os.environ.get("PYTHONPATH", "")) if p))
    monkeypatch.setenv("WORKBENCH_NAPARI_PROBE", str(tmp_path))
    obs = study.read("images").obs
    pert = obs["perturbation"].astype(str)
    control = study.control_label
    first, then, back = genes(study)[:3]

    page.goto(url + "/", timeout=120_000)  # the first page builds every view
    summary = page.locator(".wb-selection-summary").first
    expect(summary).to_contain_text("Gene: -", timeout=TIMEOUT)
    page.locator(".wb-gene-select select").first.select_option(first)
    expect(summary).to_contain_text(f"Gene: {first}", timeout=TIMEOUT)
    known = set(app.LIVE)
    button = page.get_by_role("button", name="Open in napari")
    button.scroll_into_view_if_needed()
    button.click()
    deadline = time.time() + 30
    mine = []
    while not mine and time.time() < deadline:
        mine = [d for d in list(app.LIVE) if d.napari_processes
                and d.selection.perturbation == first and d.study.path == study.path]
        time.sleep(0.1)
    assert len(mine) == 1, f"no session started napari ({len(known)} sessions before)"
    dash = mine[0]
    proc = dash.napari_processes[-1]
    try:
        assert proc.args == app.napari_command(study.path, dash.napari_link.channel.path)
        # napari opened the Study on this session's channel and shows the chosen gene's crops
        report = _wait_report(tmp_path, dash, proc, lambda r: r["follow"] and _shown(
            r, f"perturbation {first}"), f"the crops of {first}")
        assert report["pid"] == proc.pid and Path(report["study"]) == study.path
        crops = {c for lay in _shown(report, f"perturbation {first}") for c in lay["crop_ids"]}
        assert crops and crops <= set(obs.index.astype(str))
        assert set(pert[list(crops)]) <= {first, control} and first in set(pert[list(crops)])
        assert not _shown(report, "perturbation " + then)

        # a gene chosen on the page reaches napari while it runs
        page.locator(".wb-gene-select select").first.select_option(then)
        expect(summary).to_contain_text(f"Gene: {then}", timeout=TIMEOUT)
        report = _wait_report(tmp_path, dash, proc, lambda r: _shown(r, f"perturbation {then}"),
                              f"the crops of {then}")
        assert not _shown(report, f"perturbation {first}")  # one comparison at a time
        # a picture of it for the person reading the test results (best effort: Qt may
        # hand back a null image for a canvas it has not exposed yet)
        (tmp_path / "screenshot").touch()
        _wait_report(tmp_path, dash, proc, lambda r: any(
            (tmp_path / f"screenshot.{x}").exists() for x in ("png", "err")), "a screenshot",
            timeout=60)
        if (tmp_path / "screenshot.png").exists():
            (screenshot_dir / "napari_from_page.png").write_bytes(
                (tmp_path / "screenshot.png").read_bytes())

        # a choice made in napari (its Show button) comes back to the page
        (tmp_path / "choose.json").write_text(json.dumps({"kind": "perturbation",
                                                          "value": back}))
        _wait_report(tmp_path, dash, proc, lambda r: _shown(r, f"perturbation {back}"),
                     f"napari showing {back}")
        expect(summary).to_contain_text(f"Gene: {back}", timeout=TIMEOUT)
        expect(page).to_have_url(re.compile(rf"gene={back}"), timeout=TIMEOUT)
        expect(page.locator(".wb-grn-centre").first).to_contain_text(f"centred on {back}",
                                                                     timeout=TIMEOUT)
    finally:
        # the served session ends when the server stops, after this test: leave no channel
        # file or log in the temporary folder
        dash.napari_link.channel.close()
        dash.napari_link.log_path.unlink(missing_ok=True)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # its own session: the whole group
            try:
                proc.wait(timeout=20)
            except Exception:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=20)
