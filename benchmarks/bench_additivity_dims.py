"""Level of the additivity test at the dimensions of real embeddings (16 to 64 features).

The calibration table of ``bench_interaction_calibration.py`` simulates 6-8 observed
coordinates. Embeddings have tens to hundreds, strongly correlated, and a well holds fewer
cells than that. This run draws additive (null) pairs in ``d`` correlated features (five
shared factors plus independent noise, a well effect of sd ``--well-sd`` per well), tests
them with :func:`workbench.models.additivity.additivity_test` at the step's replicate level,
and prints the null rejection rate at alpha 0.05 with its Wilson 95% interval. ``--power``
adds one interaction of fixed norm in a random direction to every double.

    python benchmarks/bench_additivity_dims.py --dims 8,16,32,64 --wells 2 --cells 20

``--target pooled`` shrinks each condition's cell covariance towards the correlation pooled
over the call instead of towards its diagonal.
"""

from __future__ import annotations

import argparse
from math import sqrt

import numpy as np

from workbench.models.additivity import additivity_test


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    ph = k / n
    den = 1 + z * z / n
    c = (ph + z * z / (2 * n)) / den
    h = z * sqrt(ph * (1 - ph) / n + z * z / (4 * n * n)) / den
    return c - h, c + h


def world(d: int, wells: int, cells: int, n_pairs: int, well_sd: float, power: float,
          seed: int):
    rng = np.random.default_rng(seed)
    loadings = rng.normal(size=(d, 5)) * 1.5

    def condition(mu, n_wells):
        xs, us = [], []
        for w in range(n_wells):
            shift = rng.normal(size=d) * well_sd
            z = rng.normal(size=(cells, 5)) @ loadings.T + rng.normal(size=(cells, d))
            xs.append(mu + shift + z)
            us += [f"w{w}"] * cells
        return np.vstack(xs), np.array(us)

    groups, units = [], []
    for _ in range(n_pairs):
        ea, eb = rng.normal(size=d) * 0.5, rng.normal(size=d) * 0.5
        inter = rng.normal(size=d)
        inter *= power / np.linalg.norm(inter)
        g, u = {}, {}
        for c, mu, nw in (("ctrl", 0.0, 2 * wells), ("a", ea, wells), ("b", eb, wells),
                          ("ab", ea + eb + inter, wells)):
            g[c], u[c] = condition(mu, nw)
        groups.append(g)
        units.append(u)
    return groups, units


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dims", default="8,16,32,64")
    ap.add_argument("--wells", type=int, default=2)
    ap.add_argument("--cells", type=int, default=20)
    ap.add_argument("--pairs", type=int, default=100)
    ap.add_argument("--well-sd", type=float, default=0.33)
    ap.add_argument("--power", type=float, default=0.0,
                    help="norm of the planted interaction (0: the null)")
    ap.add_argument("--n-bootstrap", type=int, default=200)
    ap.add_argument("--target", default="diagonal", choices=["diagonal", "pooled"],
                    help="shrinkage target of the cell covariances (see additivity_test)")
    ap.add_argument("--quick", action="store_true", help="a small run (make bench)")
    args = ap.parse_args(argv)
    dims = [8, 16] if args.quick else [int(x) for x in args.dims.split(",")]
    pairs = 20 if args.quick else args.pairs
    print("| features | wells/cond | cells/well | well sd | interaction norm | shrinkage target "
          "| rejected at 0.05 [95% CI] (pairs) |")
    print("|---|---|---|---|---|---|---|")
    for d in dims:
        groups, units = world(d, args.wells, args.cells, pairs, args.well_sd, args.power,
                              seed=1000 + d)
        r = additivity_test(groups, units, n_bootstrap=args.n_bootstrap, seed=0,
                            device="cpu", target=args.target)
        p = r.p_value[np.isfinite(r.p_value)]
        k, n = int((p <= 0.05).sum()), len(p)
        lo, hi = wilson(k, n)
        print(f"| {d} | {args.wells} | {args.cells} | {args.well_sd:g} | {args.power:g} | "
              f"{args.target} | {k / n:.3f} [{lo:.3f}, {hi:.3f}] ({n}) |", flush=True)


if __name__ == "__main__":
    main()
