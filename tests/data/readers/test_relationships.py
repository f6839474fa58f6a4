"""EFAAR relationship files and CORUM complex clusters."""

from __future__ import annotations

import pandas as pd
import pytest

from workbench.data.readers import import_relationships, load_relationships, read_relationships
from workbench.errors import InputFormatError, ValidationError

EFAAR = "efaar_benchmark_annotations"


def test_corum_both_orientations(shared_data):
    r = read_relationships(shared_data / EFAAR / "CORUM.txt.gz")
    assert list(r.columns) == ["entity1", "entity2"]
    assert len(r) == 75_298 and len(r) // 2 == 37_649
    assert r["entity1"].nunique() == 3_505
    assert not (r["entity1"] == r["entity2"]).any()
    assert not r.duplicated().any()
    pairs = set(zip(r["entity1"], r["entity2"]))
    assert ("SUB1", "GTF3C3") in pairs and ("GTF3C3", "SUB1") in pairs


def test_reactome_one_directional_rows_are_symmetrised(shared_data):
    r = read_relationships(shared_data / EFAAR / "Reactome.txt.gz")
    assert len(r) // 2 == 18_565  # undirected, deduplicated (22,865 raw rows)
    rev = r.rename(columns={"entity1": "entity2", "entity2": "entity1"})
    assert len(r.merge(rev, on=["entity1", "entity2"])) == len(r)


def test_corum_clusters_become_pairs(shared_data):
    r = read_relationships(shared_data / EFAAR / "CORUM_clusters.tsv.gz")
    pairs = set(zip(r["entity1"], r["entity2"]))
    # "(E.F.G) complex<TAB>SNRPE SNRPF SNRPG"
    assert {("SNRPE", "SNRPF"), ("SNRPF", "SNRPE"), ("SNRPE", "SNRPG")} <= pairs
    assert len(r) // 2 == 37_755


def test_several_sources_and_import(shared_data, tmp_path):
    files = [shared_data / EFAAR / "CORUM.txt.gz", shared_data / EFAAR / "SIGNOR.txt.gz"]
    study = import_relationships(files, tmp_path / "s.study")
    r = load_relationships(study)
    assert set(r.columns) == {"entity1", "entity2", "source"}
    assert set(r["source"]) == {"CORUM", "SIGNOR", "CORUM;SIGNOR"}
    assert (r["source"] == "CORUM;SIGNOR").sum() == 1_106


def test_symmetrise_dedup_and_self_pairs(tmp_path):
    p = tmp_path / "rel.csv"
    pd.DataFrame({"entity1": ["A", "B", "A", "C"], "entity2": ["B", "A", "A", "D"]}) \
        .to_csv(p, index=False)
    r = read_relationships(p)
    assert sorted(zip(r["entity1"], r["entity2"])) == [("A", "B"), ("B", "A"), ("C", "D"),
                                                       ("D", "C")]


def test_bad_header_and_missing_file(tmp_path, snapshot):
    p = tmp_path / "rel.csv"
    pd.DataFrame({"gene_a": ["A"], "gene_b": ["B"]}).to_csv(p, index=False)
    with pytest.raises(ValidationError, match="entity1"):
        read_relationships(p)
    with pytest.raises(InputFormatError, match="nope.csv"):
        read_relationships(tmp_path / "nope.csv")
    good = tmp_path / "good.csv"
    pd.DataFrame({"entity1": ["A"], "entity2": ["B"]}).to_csv(good, index=False)
    import_relationships(good, tmp_path / "s.study")
    before = snapshot(tmp_path / "s.study")
    with pytest.raises(ValidationError):
        import_relationships([good, p], tmp_path / "s.study")
    assert snapshot(tmp_path / "s.study") == before
