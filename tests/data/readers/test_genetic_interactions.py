"""Norman 2019 GI map into tidy pairs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.data.readers import import_gi, read_gi_matrix
from workbench.errors import InputFormatError, ValidationError

NORMAN = "norman2019_perturbseq_gi"


def test_norman_folder(shared_data, tmp_path):
    gi = read_gi_matrix(shared_data / NORMAN)
    assert gi.matrix.shape == (112, 112)
    t = gi.table
    assert len(t) == 112 * 111 // 2
    assert list(t.columns) == ["gene_a", "gene_b", "gi_score", "phenotype_a", "phenotype_b",
                               "phenotype_ab"]
    assert (t["gene_a"] < t["gene_b"]).all()
    raw = pd.read_csv(shared_data / NORMAN / "processed_emap.csv.gz", index_col=0)
    row = t[(t["gene_a"] == "AHR") & (t["gene_b"] == "ARID1A")].iloc[0]
    assert row["gi_score"] == pytest.approx(raw.loc["AHR", "ARID1A"])
    assert row["phenotype_a"] == pytest.approx(-0.3338579129215)  # AHR average fitness
    assert t[["phenotype_a", "phenotype_b", "phenotype_ab"]].notna().all().all()
    study = import_gi(shared_data / NORMAN, tmp_path / "s.study")
    assert study.read("gi_scores").shape == (6216, 6)


def test_tab_separated_gene_matrix(shared_data):
    gi = read_gi_matrix(shared_data / NORMAN / "CRISPRa_K562_phenotypeMatrix_gene.txt.gz")
    assert gi.matrix.shape == (113, 113) and len(gi.table) == 113 * 112 // 2


def _matrix(tmp_path, genes_rows, genes_cols, values=None):
    vals = values if values is not None else np.arange(len(genes_rows) * len(genes_cols),
                                                       dtype=float).reshape(len(genes_rows), -1)
    p = tmp_path / "gi.csv"
    pd.DataFrame(vals, index=genes_rows, columns=genes_cols).to_csv(p)
    return p


def test_asymmetric_matrix_is_averaged(tmp_path):
    gi = read_gi_matrix(_matrix(tmp_path, list("ABC"), list("ABC")))
    t = gi.table.set_index(["gene_a", "gene_b"])
    assert t.loc[("A", "B"), "gi_score"] == pytest.approx((1 + 3) / 2)
    assert gi.table.attrs["max_asymmetry"] == pytest.approx(4)


def test_rows_and_columns_differ(tmp_path):
    with pytest.raises(ValidationError, match="only in rows"):
        read_gi_matrix(_matrix(tmp_path, list("ABC"), list("ABD")))


def test_text_cells_and_singles_without_overlap(tmp_path):
    p = tmp_path / "gi.csv"
    pd.DataFrame({"A": ["x", "1"], "B": ["1", "y"]}, index=["A", "B"]).to_csv(p)
    with pytest.raises(InputFormatError, match="not numeric"):
        read_gi_matrix(p)
    m = _matrix(tmp_path, list("AB"), list("AB"), np.eye(2))
    s = tmp_path / "singles.csv"
    pd.DataFrame({"gene": ["X", "Y"], "average_fitness": [0.1, 0.2]}).to_csv(s, index=False)
    with pytest.raises(ValidationError, match="shares no gene"):
        read_gi_matrix(m, singles=s)


def test_failed_import_leaves_study_unchanged(tmp_path, snapshot):
    good = _matrix(tmp_path, list("AB"), list("AB"), np.eye(2))
    import_gi(good, tmp_path / "s.study")
    before = snapshot(tmp_path / "s.study")
    bad = tmp_path / "bad.csv"
    pd.DataFrame(np.eye(2), index=["A", "B"], columns=["A", "C"]).to_csv(bad)
    with pytest.raises(ValidationError):
        import_gi(bad, tmp_path / "s.study")
    assert snapshot(tmp_path / "s.study") == before
