"""Calibration of the interaction tests on the demo world: false-positive rate and power.

Draws latent samples of the quick demo world (``workbench.data.simulate``) for its pair
types, n = 18 cells per condition (36 controls), and reports the rejection rate at
alpha 0.05 of the disjointness test (additive RBF, 200 sign-flip permutations) and of the
separability test (Gaussian estimator, 300 parametric null data sets; the classifier
estimator as a score, with the normal-approximation p-value it used to report, for
comparison) over several independent draws.

Null for both tests: ``additive_disjoint`` pairs (322 per draw). Alternatives: buffering,
synergy and synthetic-lethal pairs (interacting) and ``additive_shared`` pairs (additive on
shared latent properties: not disjoint and not separable).

    python benchmarks/bench_separability_calibration.py [--quick]
"""

from __future__ import annotations

import argparse
import math

import numpy as np

N = 18


def draw(world, pairs, reps, seed):
    from workbench.data.simulate import sample_latents
    from workbench.models.interaction_tests import equalize_groups

    rng = np.random.default_rng(seed)
    groups = []
    for _ in range(reps):
        for p in pairs:
            a, b = p.split("+")
            groups.append({"ctrl": sample_latents(world, "control", 2 * N, rng),
                           "a": sample_latents(world, a, N, rng),
                           "b": sample_latents(world, b, N, rng),
                           "ab": sample_latents(world, p, N, rng, survival=False)})
    return equalize_groups(groups, N, need={"ctrl": 2}, seed=seed)[0]


def rates(S, seed, classifier):
    import torch

    from workbench.models.interaction_tests import disjointness_test, separability_score

    d = disjointness_test(S["ctrl"][:, :N], S["a"], S["b"], S["ab"], n_permutations=200,
                          seed=seed)
    g = separability_score(S["ctrl"], S["a"], S["b"], S["ab"], n_null=300, n_bootstrap=0,
                           seed=seed)
    out = {"disjointness": (d.p_value < 0.05).mean(), "separability": (g.p_value < 0.05).mean()}
    if classifier:
        c = separability_score(S["ctrl"], S["a"], S["b"], S["ab"], estimator="classifier",
                               n_bootstrap=20, seed=seed)
        z = torch.as_tensor(np.abs(c.effect_size))
        p = torch.special.erfc(z / math.sqrt(2.0)).numpy()  # the former normal-approx p
        out["classifier (normal approx.)"] = (p < 0.05).mean()
    return out, len(d.p_value)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="one draw, no classifier")
    args = ap.parse_args()
    import torch

    from workbench.data.simulate import make_world

    torch.set_num_threads(1)
    world = make_world(seed=0, size="quick")
    by: dict[str, list[str]] = {}
    for p in world.ground_truth()["all_pairs"]:
        by.setdefault(p["type"], []).append(p["pair"])
    kinds = {"null (additive disjoint)": (by["additive_disjoint"], 7),
             "interacting (buffering, synergy, synthetic lethal)":
                 (by["buffering"] + by["synergy"] + by["synthetic_lethal"], 10),
             "additive shared": (by["additive_shared"], 5)}
    seeds = (1,) if args.quick else (1, 5, 6, 7)
    print("| pairs | draw (seed) | n pairs | disjointness | separability (Gaussian) | "
          "separability classifier, former normal p |")
    print("|---|---|---|---|---|---|")
    for kind, (pairs, reps) in kinds.items():
        for seed in seeds:
            r, m = rates(draw(world, pairs, reps, seed), seed, classifier=not args.quick
                         and seed == seeds[0])
            cls = r.get("classifier (normal approx.)")
            print(f"| {kind} | {seed} | {m} | {r['disjointness']:.3f} | "
                  f"{r['separability']:.3f} | {'' if cls is None else f'{cls:.3f}'} |")


if __name__ == "__main__":
    main()
