"""``workbench embed`` on a Study of precomputed profiles (no images): TVN and the map,
the chromosome-arm correction from a table, and the image-only options refused."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.cli import main
from workbench.data.study import Study


def crispr_table(tmp_path, seed=0):
    """Well profiles of a gene screen: the genes of arm 1p share a truncation offset, which
    its 24 unexpressed genes carry alone; one expressed 1p gene also has a real effect."""
    rng = np.random.default_rng(seed)
    d = 6
    offset = np.r_[4.0, np.zeros(d - 1)]
    genes = [f"U{i}" for i in range(24)] + ["E1"] + [f"Q{i}" for i in range(24)]
    arm = {g: "1p" for g in genes[:25]} | {g: "2q" for g in genes[25:]}
    rows = []
    for plate in ("P1", "P2"):
        for w in range(12):
            rows.append({"Metadata_Plate": plate, "Metadata_Well": f"c{w}",
                         "Metadata_gene": "NTC", **dict(enumerate(rng.normal(size=d)))})
        for g in genes:
            effect = (offset if arm[g] == "1p" else 0) + (np.r_[0, 3.0, np.zeros(d - 2)]
                                                         if g == "E1" else 0)
            rows.append({"Metadata_Plate": plate, "Metadata_Well": g, "Metadata_gene": g,
                         **dict(enumerate(effect + rng.normal(size=d)))})
    table = pd.DataFrame(rows).rename(columns={i: f"feature_{i}" for i in range(d)})
    table.to_csv(tmp_path / "screen.csv", index=False)
    arms = pd.DataFrame({"gene": genes, "arm": [arm[g] for g in genes],
                         "expressed": [not g.startswith("U") for g in genes]})
    arms.to_csv(tmp_path / "arms.csv", index=False)
    return tmp_path / "screen.csv", tmp_path / "arms.csv"


def test_profiles_study_is_normalised_mapped_and_arm_corrected(tmp_path, capsys):
    table, arms = crispr_table(tmp_path)
    out = tmp_path / "g.study"
    assert main(["import", "profiles", str(table), "--out", str(out), "--control", "NTC",
                 "--perturbation-column", "Metadata_gene"]) == 0
    plain = tmp_path / "plain.study"
    assert main(["import", "profiles", str(table), "--out", str(plain), "--control", "NTC",
                 "--perturbation-column", "Metadata_gene"]) == 0
    assert main(["embed", str(plain), "--layout", "pca"]) == 0
    assert main(["embed", str(out), "--layout", "pca", "--arm-table", str(arms)]) == 0
    assert "normalised precomputed profiles" in capsys.readouterr().out
    study = Study.open(out)
    step = study.provenance[-1]
    assert step["tool"] == "normalize"
    assert step["params"]["arm_correction"]["arms"] == ["1p"]     # 2q has no unexpressed gene
    assert Study.open(plain).provenance[-1]["params"]["arm_correction"] == "none"
    fixed = study.read("perturbations")
    raw = Study.open(plain).read("perturbations")
    unexpressed = [f"U{i}" for i in range(24)]
    # the arm's shared offset is gone from its genes, and only from them
    assert np.abs(np.asarray(fixed[unexpressed].X).mean(0)).max() < 1e-5
    assert np.abs(np.asarray(raw[unexpressed].X).mean(0)).max() > 1.0
    q = [f"Q{i}" for i in range(24)]
    np.testing.assert_allclose(fixed[q].X, raw[q].X, atol=1e-6)
    # the expressed gene keeps its own effect after the arm is centred
    e1 = np.asarray(fixed["E1"].X)[0]
    assert abs(e1[1]) > 1.0 and abs(e1[0]) < abs(np.asarray(raw["E1"].X)[0][0]) / 2


def test_image_options_on_a_profiles_study_are_refused_and_the_study_is_kept(tmp_path, capsys):
    table, arms = crispr_table(tmp_path)
    out = tmp_path / "g.study"
    assert main(["import", "profiles", str(table), "--out", str(out), "--control", "NTC",
                 "--perturbation-column", "Metadata_gene"]) == 0
    before = set(Study.open(out).artefacts)
    assert main(["embed", str(out), "--level", "well", "--qc-exclude", "no_cell"]) != 0
    err = capsys.readouterr().err
    assert "--level, --qc-exclude" in err and "act on image crops" in err
    pd.DataFrame({"gene": ["A"], "arm": ["1p"], "expressed": ["maybe"]}).to_csv(
        tmp_path / "bad.csv", index=False)
    assert main(["embed", str(out), "--arm-table", str(tmp_path / "bad.csv")]) != 0
    assert "expressed column" in capsys.readouterr().err
    pd.DataFrame({"gene": ["A"], "chrom_arm": ["1p"]}).to_csv(tmp_path / "bad2.csv", index=False)
    assert main(["embed", str(out), "--arm-table", str(tmp_path / "bad2.csv")]) != 0
    assert "lacks the column(s) ['arm', 'expressed']" in capsys.readouterr().err
    assert set(Study.open(out).artefacts) == before


@pytest.mark.parametrize("flag", [["--dose-key", "Metadata_Plate"]])
def test_map_options_reach_the_profiles_path(tmp_path, flag):
    table, _ = crispr_table(tmp_path)
    out = tmp_path / "g.study"
    assert main(["import", "profiles", str(table), "--out", str(out), "--control", "NTC",
                 "--perturbation-column", "Metadata_gene"]) == 0
    assert main(["embed", str(out), "--layout", "pca", *flag]) == 0
    pert = Study.open(out).read("perturbations")
    assert "E1@P1" in pert.obs_names and "E1@P2" in pert.obs_names


def test_python_face_takes_the_same_arm_table(tmp_path):
    import workbench as wb

    table, arms = crispr_table(tmp_path)
    study = wb.io.import_profiles(table, tmp_path / "g.study", control="NTC",
                                  perturbation_column="Metadata_gene")
    wb.tl.embed(study, arm_table=arms)
    step = Study.open(tmp_path / "g.study").provenance[-1]
    assert step["tool"] == "normalize" and step["params"]["arm_correction"]["arms"] == ["1p"]
