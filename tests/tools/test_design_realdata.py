"""Design planners on real tables from the public data folder (skipped when it is absent)."""

import numpy as np

from workbench.tools.design.hits import hit_campaign
from workbench.tools.design.pools import lincs_moa_pool, norman_hit_table
from workbench.tools.design.screen import screen_campaign

LINCS = "lincs_cellpainting_profiles/SQ00015054_normalized_feature_select.csv.gz"


def test_lincs_moa_pool_certified_stop(shared_data):
    X, y, names = lincs_moa_pool(shared_data / LINCS)
    assert X.shape == (342, 454) and len(set(y)) == 50 and len(set(names)) == 342
    r = screen_campaign(X, y, policy="hardest", seed=0, gamma=0.9, delta=0.05)
    assert r["stop_fraction"] < 1.0 and r["stop_accuracy"] >= 0.9
    h = r["history"]
    # the model learns the plate: its accuracy on the rest grows with what is measured
    rest = (h.system_accuracy - h.fraction_measured) / (1 - h.fraction_measured)
    assert rest.iloc[-1] > rest.iloc[0] + 0.2


def test_norman_hit_table_and_ucb(shared_data):
    X, s, h, genes = norman_hit_table(shared_data / "norman2019_perturbseq_gi")
    assert X.shape == (112, 112) and h.sum() == 12 and len(set(genes)) == 112
    assert np.all(s[h] >= s[~h].max())  # hits are the strongest growth defects
    ucb = np.mean([hit_campaign(X, s, h, policy="ucb", batch_size=8, seed=k).hit_recall.iloc[-1]
                   for k in range(4)])
    rand = np.mean([hit_campaign(X, s, h, policy="random", batch_size=8, seed=k)
                    .hit_recall.iloc[-1] for k in range(4)])
    assert ucb > rand
