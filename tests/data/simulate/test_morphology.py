"""Latent truth: knockouts follow their programs, pairs are (non-)additive as planted."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.data.simulate import PROPERTIES, make_world, pair_type, sample_latents
from workbench.errors import UnknownGeneError

N = 3000  # cells per condition: the standard error of a mean shift is ~0.02 sd


def _mean(world, cond, rng, n=N):
    return sample_latents(world, cond, n, rng).mean(0)


def test_knockout_shift_matches_programs(realistic_world):
    """The mean latent shift of each effect gene correlates with its planted effect (>0.99)
    and with its own program (>0.9): the network spreads but does not scramble it."""
    rng = np.random.default_rng(0)
    w, m = realistic_world, realistic_world.morphology
    ctrl = _mean(w, "control", rng)
    r_eff, r_prog = [], []
    for i, g in enumerate(w.genes):
        if i in w.grn.no_effect:
            continue
        shift = _mean(w, g, rng) - ctrl
        r_eff.append(np.corrcoef(shift, m.effects[i])[0, 1])
        r_prog.append(np.corrcoef(shift, m.programs[i])[0, 1])
    assert min(r_eff) > 0.99, min(r_eff)
    assert np.median(r_prog) > 0.9, np.median(r_prog)
    assert min(r_prog) > 0.6, min(r_prog)


def test_no_effect_genes_shift_within_noise(realistic_world):
    rng = np.random.default_rng(1)
    w = realistic_world
    ctrl = sample_latents(w, "control", N, rng)
    se = np.sqrt(2.0 / N)
    for g in w.ground_truth()["no_effect"]:
        shift = sample_latents(w, g, N, rng).mean(0) - ctrl.mean(0)
        assert np.abs(shift).max() < 4.5 * se, (g, shift)
    # while every effect gene moves at least one property by far more than the noise
    for i in range(len(w.genes)):
        if i not in w.grn.no_effect:
            assert np.abs(w.morphology.effects[i]).max() > 0.5


def _deviation(w, pair, rng, n=N):
    a, b = pair.split("+")
    return (_mean(w, pair, rng, n) - _mean(w, a, rng, n) - _mean(w, b, rng, n)
            + _mean(w, "control", rng, n))


def test_interacting_pairs_deviate_from_additivity_and_additive_pairs_do_not(realistic_world):
    """Deviation = mean(AB) - mean(A) - mean(B) + mean(control): its norm has noise sd
    ~ sqrt(4 * 11 / N) = 0.12; additive pairs stay below 0.35, interacting above 1."""
    rng = np.random.default_rng(2)
    w = realistic_world
    truth = w.ground_truth()["pairs"]
    assert {p["type"] for p in truth["interacting"]} == {"buffering", "synergy",
                                                          "synthetic_lethal"}
    inter = [np.linalg.norm(_deviation(w, p["pair"], rng)) for p in truth["interacting"]]
    additive = [np.linalg.norm(_deviation(w, p["pair"], rng))
                for kind in ("additive_disjoint", "additive_shared") for p in truth[kind]]
    assert len(additive) >= 10
    assert min(inter) > 1.0, inter
    assert max(additive) < 0.35, additive


def test_pair_types_behave_as_named(realistic_world):
    rng = np.random.default_rng(3)
    w, m = realistic_world, realistic_world.morphology
    ctrl = _mean(w, "control", rng)
    for p in w.ground_truth()["pairs"]["interacting"]:
        a, b = p["pair"].split("+")
        sa, sb = _mean(w, a, rng) - ctrl, _mean(w, b, rng) - ctrl
        both = sample_latents(w, p["pair"], N, rng)
        sab = both.mean(0) - ctrl
        if p["type"] == "buffering":  # the double looks like the stronger single
            strong = sa if np.linalg.norm(sa) > np.linalg.norm(sb) else sb
            assert np.linalg.norm(sab - strong) < 0.25
            assert np.linalg.norm(sab - sa - sb) > 0.5
        elif p["type"] == "synergy":  # more than the sum, in the same direction
            add = sa + sb
            assert np.linalg.norm(sab) > 1.5 * np.linalg.norm(add)
            assert np.corrcoef(sab, add)[0, 1] > 0.95
        else:  # synthetic lethal: few survivors, shrunken nuclei, wider spread
            assert len(both) < 0.35 * N
            assert sab[PROPERTIES.index("nucleus_size")] < -1.5
            assert both.std(0).mean() > 1.3
    # additive pairs: disjoint ones touch disjoint properties, shared ones overlap
    for kind, overlap in (("additive_disjoint", False), ("additive_shared", True)):
        for p in w.ground_truth()["pairs"][kind]:
            a, b = (m.index(g) for g in p["pair"].split("+"))
            both = (m.effects[a] != 0) & (m.effects[b] != 0)
            assert both.any() == overlap
            assert pair_type(w, *p["pair"].split("+")) == kind


def test_enough_null_pairs_for_false_positive_rates(realistic_world):
    types = [p["type"] for p in realistic_world.ground_truth()["all_pairs"]]
    assert types.count("additive_disjoint") + types.count("additive_shared") >= 200
    # null pairs really are additive in expectation
    for p in realistic_world.ground_truth()["all_pairs"]:
        if p["type"].startswith("additive"):
            assert p["deviation"] < 1e-9


def test_groups_share_program_direction(realistic_world):
    m, w = realistic_world.morphology, realistic_world
    gt = w.ground_truth()
    unit = m.programs / np.maximum(np.linalg.norm(m.programs, axis=1, keepdims=True), 1e-12)
    cos = unit @ unit.T
    same, diff = [], []
    members = {g: k for k, genes in gt["groups"].items() for g in genes}
    for i, a in enumerate(w.genes):
        for j, b in enumerate(w.genes[:i]):
            if a in members and b in members:
                (same if members[a] == members[b] else diff).append(cos[i, j])
    assert min(same) > 0.9
    assert np.mean(np.abs(diff)) < 0.3
    rel = w.relationships()
    assert len(rel) == sum(len(v) * (len(v) - 1) for v in gt["groups"].values())
    pairs = set(zip(rel.entity1, rel.entity2))
    assert all((b, a) in pairs for a, b in pairs)
    assert not set(gt["no_effect"]) & set(rel.entity1)


def test_unknown_gene_is_our_error(quick_world):
    with pytest.raises(UnknownGeneError, match="G99"):
        sample_latents(quick_world, "G01+G99", 5, np.random.default_rng(0))


def test_tiny_world_has_every_pair_kind():
    gt = make_world(0, "tiny").ground_truth()
    kinds = {p["type"] for p in gt["pairs"]["interacting"]}
    assert kinds == {"buffering", "synergy", "synthetic_lethal"}
    assert gt["pairs"]["additive_disjoint"] and gt["pairs"]["additive_shared"]
