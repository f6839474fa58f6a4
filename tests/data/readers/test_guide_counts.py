"""pgPEN paired-guide counts (Parrish 2021) into a tidy table."""

from __future__ import annotations

import pandas as pd
import pytest

from workbench.data.readers import guide_counts_wide, import_guide_counts, read_guide_counts
from workbench.errors import ValidationError

PG = "parrish2021_pgpen_paralog_gi"
LIB = "pgRNA_ID_pgPEN_library_comp.csv.gz"


def test_hela_counts(shared_data, tmp_path):
    t = read_guide_counts(shared_data / PG / "PP_pgPEN_HeLa_counts.txt.gz", shared_data / PG / LIB)
    assert t.attrs["samples"] == ["Day00_RepA", "Day05_RepA", "Day22_RepA", "Day22_RepB",
                                  "Day22_RepC"]
    assert len(t) == 33_170 * 5 and t["pgrna_id"].nunique() == 33_170
    per = t.drop_duplicates("pgrna_id")["guide_type"].value_counts()
    assert per["double"] == 16_396 and per["single_ntc"] == 8_125 + 8_149
    assert per["ntc_ntc"] == 500
    row = t[(t["pgrna_id"] == "AADAC_AADACL2_pg1") & (t["sample"] == "Day05_RepA")].iloc[0]
    assert (row["gene1"], row["gene2"], row["count"], row["timepoint"]) == \
        ("AADAC", "AADACL2", 1315, 5.0)
    ntc = t[t["guide_type"] == "ntc_ntc"]
    assert (ntc["gene1"] == "").all() and (ntc["gene2"] == "").all()
    wide = guide_counts_wide(t)
    assert wide.shape[0] == 33_170 and "Day22_RepC" in wide.columns


def test_pc9_counts_drop_two_unknown_ids(shared_data, tmp_path):
    study = import_guide_counts(shared_data / PG / "counts_pgPEN_PC9_example.tsv.gz",
                                tmp_path / "s.study", library=shared_data / PG / LIB)
    notes = study.provenance[-1]["notes"]
    assert notes["unmatched_ids"] == ["DHFR2_nt1_g1", "DHFR2_nt1_g2"]
    assert notes["n_constructs"] == 33_168
    assert study.read("guide_counts")["sample"].nunique() == 5


def _files(tmp_path, counts=None, lib=None):
    lib = lib if lib is not None else pd.DataFrame({
        "pgRNA_ID": ["A_B_pg1", "A_nt1", "NTpg1"], "target1": ["A", "A", None],
        "target2": ["B", None, None], "target_type": ["gene_gene", "gene_ntc", "ntc_ntc"]})
    counts = counts if counts is not None else pd.DataFrame({
        "id": ["A_B_pg1", "A_nt1", "NTpg1"], "Day00_RepA": [10, 20, 30],
        "Day14_RepA": [5, 25, 33]})
    cp, lp = tmp_path / "counts.tsv", tmp_path / "lib.csv"
    counts.to_csv(cp, sep="\t", index=False)
    lib.to_csv(lp, index=False)
    return cp, lp


def test_small_table_and_types(tmp_path):
    t = read_guide_counts(*_files(tmp_path))
    assert len(t) == 6
    assert t.drop_duplicates("pgrna_id").set_index("pgrna_id")["guide_type"].to_dict() == \
        {"A_B_pg1": "double", "A_nt1": "single_ntc", "NTpg1": "ntc_ntc"}
    assert sorted(t["timepoint"].unique()) == [0.0, 14.0]


def test_library_without_target_type(tmp_path):
    lib = pd.DataFrame({"pgRNA_ID": ["A_B_pg1"], "target1": ["A"], "target2": ["B"]})
    with pytest.raises(ValidationError, match="target_type"):
        read_guide_counts(*_files(tmp_path, lib=lib))


def test_wrong_library_and_negative_counts(tmp_path, snapshot):
    counts = pd.DataFrame({"id": ["x1", "x2", "x3"], "d0": [1, 2, 3]})
    with pytest.raises(ValidationError, match="not in library"):
        read_guide_counts(*_files(tmp_path, counts=counts))
    cp, lp = _files(tmp_path)
    import_guide_counts(cp, tmp_path / "s.study", library=lp)
    before = snapshot(tmp_path / "s.study")
    neg = pd.DataFrame({"id": ["A_B_pg1", "A_nt1", "NTpg1"], "d0": [1, -2, 3]})
    cp2, _ = _files(tmp_path / ".." / tmp_path.name, counts=neg)
    with pytest.raises(ValidationError, match="non-negative"):
        import_guide_counts(cp2, tmp_path / "s.study", library=lp)
    assert snapshot(tmp_path / "s.study") == before
