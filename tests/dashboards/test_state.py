"""The Selection and its round trips (URL, selection.json), without a browser."""

from __future__ import annotations

import json

import pytest

from workbench.dashboards.state import (
    SELECTION_FILE,
    Layout,
    Selection,
    make_pair,
    parse_samples,
    read_selection_file,
    split_pair,
)


def test_state_imports_no_panel():
    import subprocess
    import sys

    code = ("import sys, workbench.dashboards, workbench.dashboards.state; "
            "print(sorted(m for m in ('panel', 'holoviews', 'bokeh') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_choose_pair_sets_gene_and_canonical_order():
    s = Selection()
    s.choose_pair("G05", "G02")
    assert s.pair == "G02+G05" and s.perturbation == "G05"
    s.choose_gene("G02")  # still in the pair: kept
    assert s.pair == "G02+G05"
    s.choose_gene("G09")  # not in the pair: the pair is dropped
    assert s.pair == "" and s.perturbation == "G09"
    s.choose_pair("A+B")
    assert s.pair_genes == ("A", "B")


def test_one_event_per_choice():
    s = Selection()
    seen = []
    s.param.watch(lambda *events: seen.append(sorted(e.name for e in events)),
                  ["perturbation", "pair"])
    s.choose_pair("A", "B")
    assert seen == [["pair", "perturbation"]]


def test_query_round_trip():
    s = Selection(perturbation="G01", concept="c3", pair="G01+G02", samples=["a", "b"])
    q = s.to_query()
    assert q == {"gene": "G01", "concept": "c3", "pair": "G01+G02", "samples": '["a", "b"]'}
    t = Selection()
    t.update_from_query({k: [v] for k, v in q.items()})  # as parse_qs gives them
    assert t.to_dict() == s.to_dict()
    assert Selection().to_query() == {}


def test_parse_samples_forms():
    assert parse_samples('["x", 3]') == ["x", "3"]
    assert parse_samples("a,b,,c") == ["a", "b", "c"]
    assert parse_samples(["a", "b"]) == ["a", "b"]
    assert parse_samples("") == [] and parse_samples(None) == []


def test_file_round_trip_is_atomic_and_versioned(tmp_path):
    s = Selection(perturbation="G02", samples=["crop1"])
    path = s.save(tmp_path, study_id="abc")
    assert path.name == SELECTION_FILE
    data = json.loads(path.read_text())
    assert data["schema"] == "workbench.selection" and data["version"] == 1
    assert data["study_id"] == "abc" and data["perturbation"] == "G02"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left
    t = Selection()
    assert t.load(tmp_path) and t.samples == ["crop1"]
    data["version"] = 99
    path.write_text(json.dumps(data))
    with pytest.warns(UserWarning, match="newer"):
        assert read_selection_file(tmp_path) is None
    path.write_text("{not json")
    assert read_selection_file(tmp_path) is None and not Selection().load(tmp_path / "nope")


def test_pairs_and_layout():
    assert make_pair("B", "A") == "A+B" and split_pair("A+B") == ("A", "B")
    assert split_pair("A") is None and split_pair("+B") is None
    lay = Layout()
    lay.views = ["grn", "images", "concepts", "embeddings", "interactions"][:4]
    assert len(lay.views) == 4
