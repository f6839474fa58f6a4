"""The command line as a user runs it: demo, info, validate, and errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from workbench.cli import main


def _run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "workbench", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=900)


def test_help_lists_every_step():
    out = _run("--help").stdout
    for cmd in ("demo", "import", "info", "validate", "embed", "benchmark", "concepts",
                "interactions", "plan-pairs", "grn", "serve", "napari"):
        assert cmd in out, cmd


def test_demo_builds_a_study_that_info_describes(tmp_path, capsys):
    out = tmp_path / "demo.study"
    assert main(["demo", "--size", "tiny", "--steps", "simulate", "--no-serve",
                 "--out", str(out)]) == 0
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    for name in ("images", "velocity", "relationships", "ground_truth"):
        assert name in text
    assert "Ground truth (simulated Study)" in text and "adjacency" in text
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["artefacts"]["images"]["n_crops"] > 0
    assert info["provenance"][0]["tool"] == "simulate"
    assert main(["validate", str(out)]) == 0
    # a second run resumes instead of rebuilding
    before = (out / "study.json").read_text()
    assert main(["demo", "--size", "tiny", "--steps", "simulate", "--no-serve",
                 "--out", str(out)]) == 0
    assert (out / "study.json").read_text() == before
    # asking for another size without --overwrite is refused, and names the fix
    assert main(["demo", "--size", "quick", "--steps", "simulate", "--no-serve",
                 "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_errors_are_short_messages_with_a_fix(tmp_path):
    (tmp_path / "plain").mkdir()
    res = _run("info", tmp_path / "plain")
    assert res.returncode == 2
    assert "is not a Study" in res.stderr and "How to fix" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.slow
def test_the_whole_demo_pipeline_runs_from_the_command_line(tmp_path):
    """`workbench demo` runs every step on the tiny world and leaves a valid Study."""
    out = tmp_path / "demo.study"
    res = _run("demo", "--size", "tiny", "--no-serve", "--out", out)
    assert res.returncode == 0, res.stderr[-3000:]
    from workbench.data.study import Study

    study = Study.open(out).validate(deep=True)
    for name in ("images", "profiles", "perturbations", "concepts", "interactions",
                 "pair_selection", "grn", "grn_samples"):
        assert study.has(name), name
    tools = [p["tool"] for p in study.provenance]
    assert tools[0] == "simulate" and {"embed", "interactions", "grn"} <= set(tools)


def test_grn_loss_options_reach_the_step_and_bad_ones_are_refused(tmp_path, capsys):
    """`--loss ftb --ftb-alpha NAME` is what the step records; an unknown divergence is a
    short error with a fix, and nothing is written."""
    out = tmp_path / "g.study"
    assert main(["demo", "--size", "tiny", "--steps", "simulate", "--no-serve",
                 "--out", str(out)]) == 0
    bad = _run("grn", out, "--method", "dyngfn", "--loss", "ftb", "--ftb-alpha", "nope",
               "--size", "tiny", "--steps", "2")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "unknown f-divergence 'nope'" in bad.stderr + bad.stdout
    assert main(["grn", str(out), "--method", "dyngfn", "--loss", "ftb", "--ftb-alpha",
                 "forward_kl", "--size", "tiny", "--steps", "2", "--samples", "8"]) == 0
    from workbench.data.study import Study

    runs = [p["params"] for p in Study.open(out).provenance if p["tool"] == "grn"]
    assert len(runs) == 1
    assert (runs[0]["loss"], runs[0]["ftb_alpha"]) == ("ftb", "forward_kl")


def test_the_demo_progress_line_estimates_the_time_left_from_this_machine():
    from workbench.commands.demo import TYPICAL_SECONDS, _eta

    typical = TYPICAL_SECONDS["realistic"]
    assert _eta("realistic", {}, ["grn"]) == f"about {typical['grn']} s left"
    # the steps so far ran at half the typical speed: the rest is expected to as well
    slow = {"simulate": 2 * typical["simulate"]}
    left = 2 * (typical["embed"] + typical["grn"])
    assert _eta("realistic", slow, ["embed", "grn"]) == f"about {left / 60:.1f} min left"
    assert _eta("realistic", slow, []) == "almost done"
