"""``workbench import``: help text, each kind on a small input, errors without tracebacks."""

from __future__ import annotations

import pandas as pd
import pytest

from workbench.cli import main
from workbench.data.study import Study


def test_help_lists_every_kind(capsys):
    with pytest.raises(SystemExit):
        main(["import", "--help"])
    out = capsys.readouterr().out
    for kind in ("images", "profiles", "velocity", "gi", "guides", "relationships"):
        assert kind in out
    with pytest.raises(SystemExit):
        main(["import", "images", "--help"])
    out = capsys.readouterr().out
    assert "--pattern" in out and "--platemap" in out and "--crop-size" in out


def test_profiles_and_relationships_into_one_study(shared_data, tmp_path, capsys):
    out = tmp_path / "s.study"
    lincs = shared_data / "lincs_cellpainting_profiles/SQ00015054_normalized_feature_select.csv.gz"
    assert main(["import", "profiles", str(lincs), "--out", str(out)]) == 0
    rel = shared_data / "efaar_benchmark_annotations/SIGNOR.txt.gz"
    assert main(["import", "relationships", str(rel), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "n_controls=24" in text and "n_pairs_undirected=11617" in text
    study = Study.open(out)
    assert set(study.artefacts) == {"profiles", "relationships"}
    assert [p["tool"] for p in study.provenance] == ["import_profiles", "import_relationships"]


def test_images_from_the_command_line(shared_data, tmp_path):
    folder = shared_data / "cellpainting_images_wayscience/pediatric_cancer_atlas_BR00143976_C03_f03"
    out = tmp_path / "j.study"
    rc = main(["import", "images", str(folder), "--out", str(out), "--pattern", "jump",
               "--channels", "5=DNA,2=ER,6=RNA,3=AGP,4=Mito", "--perturbation", "DMSO",
               "--crop-size", "128", "--no-fields"])
    assert rc == 0
    store = Study.open(out).read("images")
    assert store.shape == (64, 5, 128, 128) and store.channel_names[0] == "DNA"


def test_bad_input_prints_the_fix_and_leaves_the_study(tmp_path, capsys):
    good = tmp_path / "rel.csv"
    pd.DataFrame({"entity1": ["A"], "entity2": ["B"]}).to_csv(good, index=False)
    out = tmp_path / "s.study"
    assert main(["import", "relationships", str(good), "--out", str(out)]) == 0
    before = (out / "study.json").read_bytes()
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"a": ["A"], "b": ["B"]}).to_csv(bad, index=False)
    assert main(["import", "relationships", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "bad.csv" in err and "entity1" in err and "How to fix" in err
    assert (out / "study.json").read_bytes() == before
    assert main(["import", "velocity", str(tmp_path / "missing.h5ad"), "--out",
                 str(tmp_path / "v.study")]) == 2
    assert not (tmp_path / "v.study").exists()
