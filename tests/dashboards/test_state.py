"""The Selection and its round trips (URL, selection channel), without a browser."""

from __future__ import annotations

import json

import pytest

from workbench.dashboards.state import Layout, Selection, make_pair, parse_samples, split_pair
from workbench.data.selection import SelectionChannel
from workbench.errors import WorkbenchError


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
    s = Selection(perturbation="G01", concept="c3", pair="G01+G02", samples=["a", "b"],
                  phenotype="search from c000012 +1")
    q = s.to_query()
    assert q == {"gene": "G01", "concept": "c3", "pair": "G01+G02", "samples": '["a", "b"]',
                 "phenotype": "search from c000012 +1"}
    t = Selection()
    t.update_from_query({k: [v] for k, v in q.items()})  # as parse_qs gives them
    assert t.to_dict() == s.to_dict() and t.phenotype == s.phenotype
    assert Selection().to_query() == {}


def test_url_state_carries_the_phenotype_both_ways():
    """The page URL holds the phenotype the map is coloured by: a bookmarked value reaches
    the Selection, and a colouring chosen on the page reaches the URL."""
    pytest.importorskip("panel")
    from workbench.dashboards.app import URL_FIELDS, UrlState

    assert set(URL_FIELDS) == {"gene", "concept", "pair", "samples", "phenotype", "views"}
    sel = Selection(perturbation="G02")
    url = UrlState(sel, Layout())
    assert url.phenotype == "" and url.gene == "G02"
    url.phenotype = "search from c000012"  # what a bookmark sets through the location
    assert sel.phenotype == "search from c000012" and sel.perturbation == "G02"
    sel.choose_phenotype("search from c000040 +2")  # the embedding view's colour choice
    assert url.phenotype == "search from c000040 +2"
    sel.clear()
    assert url.phenotype == "" and url.gene == ""
    # a session that starts from a Selection holding one shows it in its URL at once
    assert UrlState(Selection(phenotype="search from c7"), Layout()).phenotype == \
        "search from c7"


def test_parse_samples_forms():
    assert parse_samples('["x", 3]') == ["x", "3"]
    assert parse_samples("a,b,,c") == ["a", "b", "c"]
    assert parse_samples(["a", "b"]) == ["a", "b"]
    assert parse_samples("") == [] and parse_samples(None) == []


def test_channel_files_are_private_unique_and_skip_own_writes(tmp_path):
    a = SelectionChannel.create(tmp_path, study_id="abc")
    b = SelectionChannel.create(tmp_path, study_id="abc")
    assert a.path != b.path and a.path.parent == tmp_path
    assert oct(a.path.stat().st_mode & 0o777) == "0o600"  # this user only
    assert a.read()["perturbation"] == "" and a.poll(me="napari") is None  # empty start
    a.write(Selection(perturbation="G02", samples=["crop1"]).to_dict(), source="dashboard",
            study_id="abc")
    assert a.poll(me="dashboard") is None  # our own write is not news
    napari = SelectionChannel(a.path)
    got = napari.poll(me="napari")
    assert got["perturbation"] == "G02" and got["samples"] == ["crop1"]
    assert got["study_id"] == "abc" and got["version"] == 2
    assert napari.poll(me="napari") is None  # nothing new since
    napari.write({"pair": "G01+G02", "perturbation": "G01"}, source="napari", study_id="abc")
    assert a.poll(me="dashboard")["pair"] == "G01+G02"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left
    with pytest.raises(WorkbenchError, match="unknown selection source"):
        a.write({}, source="someone")


def test_channel_refuses_other_schemas_and_newer_versions(tmp_path):
    ch = SelectionChannel.create(tmp_path)
    data = json.loads(ch.path.read_text())
    ch.path.write_text(json.dumps({**data, "version": 99}))
    with pytest.warns(UserWarning, match="newer"):
        assert ch.read() is None
    ch.path.write_text(json.dumps({**data, "schema": "something.else"}))
    assert ch.read() is None
    ch.path.write_text("{not json")
    assert ch.read() is None
    ch.close()
    assert not ch.path.exists() and ch.read() is None and ch.poll(me="napari") is None


def test_pairs_and_layout():
    assert make_pair("B", "A") == "A+B" and split_pair("A+B") == ("A", "B")
    assert split_pair("A") is None and split_pair("+B") is None
    lay = Layout()
    lay.views = ["grn", "images", "concepts", "embeddings", "interactions"][:4]
    assert len(lay.views) == 4
