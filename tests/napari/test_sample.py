"""The npe2 sample data: the tiny demo Study, built by the real steps and reused once whole."""

from __future__ import annotations

import pytest

from workbench.napari import _sample

pytestmark = pytest.mark.napari


def _tools(path):
    from workbench.data.study import Study

    return [p["tool"] for p in Study.open(path).meta["provenance"]]


def test_a_whole_sample_is_reused_and_a_partial_one_rebuilt(tiny, study_without_concepts,
                                                            tmp_path, monkeypatch):
    from workbench import testing

    built = []

    def fake_build(path, **kw):  # stands in for the real build; records that it ran
        built.append(kw)
        return testing.copy_study(tiny["path"], path)

    monkeypatch.setattr(testing, "make_demo_study", fake_build)
    # a Study that stopped before the concepts step is not taken for the sample
    testing.copy_study(study_without_concepts, tmp_path / "demo_tiny.study")
    path = _sample.demo_study_path(root=tmp_path)
    assert path == tmp_path / "demo_tiny.study"
    assert built == [{"size": "tiny", "seed": 0}]
    assert _tools(path) == _tools(tiny["path"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo_tiny.study"]  # no staging left
    # a whole one is reused
    assert _sample.demo_study_path(root=tmp_path) == path and len(built) == 1


@pytest.mark.slow
def test_the_sample_is_built_by_the_real_steps(tmp_path, tiny):
    path = _sample.demo_study_path(root=tmp_path)
    assert _tools(path) == _tools(tiny["path"])  # the same steps as `workbench demo`
    from workbench.napari._source import StudySource

    src = StudySource(path)
    assert src.perturbations() == StudySource(tiny["path"]).perturbations()
    assert src.concept_names() and src.pairs()
    layers = src.open_layers()
    assert layers[0][1]["name"][0].endswith(": DNA")
