"""The find step on real profiles: the LINCS Cell Painting plate (384 wells), a
mechanism of action the plate map carries as the oracle."""

from __future__ import annotations

import pytest

LINCS = "lincs_cellpainting_profiles/SQ00015054_normalized_feature_select.csv.gz"
MOA = "proteasome inhibitor"  # 12 wells: one compound at twelve replicate wells


@pytest.fixture(scope="module")
def lincs_study(shared_data, tmp_path_factory):
    from workbench.data.readers.profiles import import_profiles

    path = shared_data / LINCS
    if not path.is_file():
        pytest.skip(f"{LINCS} is not in the public data folder")
    return import_profiles(path, tmp_path_factory.mktemp("find") / "lincs.study")


def test_lincs_moa_is_confirmed_and_its_compound_enriched(lincs_study):
    from workbench.tools.find import run_find

    obs = lincs_study.read_obs("profiles")
    moa = obs["moa"].astype(str)
    truth = moa == MOA
    ex = str(obs.index[truth][0])
    s = run_find(lincs_study, [ex], tau=0.01, label_column="moa", batch=10,
                 budget=len(obs), seed=0)
    lo, hi = s.interval
    n = len(s.search.state.labels)
    # confirmed above 1 %, the interval holding the plate's true share, in fewer answers
    # than wells on the plate
    assert s.status == "confirmed_common"
    assert lo <= truth.mean() <= hi and lo > 0.01
    assert n < len(obs)
    kept = lincs_study.read("phenotype_search")
    answered = kept.obs["answer"] != ""
    assert int(answered.sum()) == n
    assert (kept.obs.loc[answered, "answer"] == truth[answered].map(
        {True: "yes", False: "no"})).all()
    # the compound carrying the MOA tops the enrichment
    enr = kept.uns["workbench"]["enrichment"]
    compound = set(obs.loc[truth, "perturbation"].astype(str))
    assert enr["perturbation"].iloc[0] in compound and enr["q"].iloc[0] < 0.05
    # the baseline: random draws with their exact binomial bound, given as many answers,
    # have not confirmed it
    r = run_find(lincs_study, [ex], tau=0.01, label_column="moa", batch=10, budget=n,
                 policy="random", seed=0, restart=True)
    assert len(r.search.state.labels) >= n and r.status == "open"
