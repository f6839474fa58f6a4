"""Guided phenotype search against random and least-confidence sampling (quality numbers).

Pool: Gaussian clusters in 32-d (Hartford et al. 2020's synthetic check), one compact class
planted at ``--common`` (default 1 %) and, separately, one at ``--rare`` (0.1 %), an exemplar
from the class. For each seed and policy the search runs until its stop rule decides
(guided: betting interval on importance-weighted draws; random: Clopper-Pearson, delta split
over looks; least confidence has no valid interval) or the label budget is spent.

Printed: labels to confirm the common class (lower bound > tau), labels to find 10 of its
crops, and for the rare class the share of seeds certified below tau with the labels used.
Median and inter-quartile range over seeds.

    python benchmarks/bench_find.py --seeds 10 --n 10000

``--demo``: the demo world's planted phenotype on a quick demo Study (built with the
simulate and embed steps unless ``--study`` names one): the crops of the synthetic-lethal
pair (about 1 % of crops) answered from the ``perturbation`` column through the step's
label-column oracle, each policy run through :class:`workbench.tools.find.FindSession`.

``--real``: the LINCS Cell Painting plate of the public data folder (384 wells, the
normalised CellProfiler features as the embedding), each 12-well MOA in turn as the
phenotype answered from its ``moa`` column; then one search through the step with its
enrichment (which compounds carry the phenotype).

``--demo-rare``: a phenotype of ``--rare-share`` (0.1 %, at least one crop) of a demo
Study's crops, taken from the crops of one perturbation (``--phenotype``), certified below
tau; guided against uniform draws under the same betting interval and against the step's
random baseline, with the crops of ``--rare-control`` (default the whole ``--phenotype``) as
a phenotype above tau that must not be certified rare. On the quick Study that is one crop
of the pair (0.2 % of 489 crops); on a realistic one (``workbench demo --size realistic
--steps simulate,embed``) 8 of the 14 crops of G15+G19 with G04 as the control.

``--real-nf1``: the NF1 plate-2 fields imported (``workbench import images``) and embedded
(``workbench embed --size tiny``) unless ``--nf1-study`` names the result, each genotype as
the phenotype answered from the ``genotype`` column, then one step run with its enrichment.

    python benchmarks/bench_find.py --demo --seeds 10
    python benchmarks/bench_find.py --demo-rare --seeds 10
    python benchmarks/bench_find.py --demo-rare --study realistic.study --phenotype G15+G19 \
        --rare-control G04 --seeds 10
    python benchmarks/bench_find.py --real --seeds 5
    python benchmarks/bench_find.py --real-nf1 --seeds 5
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.models.guided_search import simulate_search


def pool(n, prev, seed, dim=32):
    rng = np.random.default_rng([seed, 99])
    centers = rng.normal(0, 3, (8, dim))
    X = centers[rng.integers(0, 8, n)] + rng.normal(0, 1, (n, dim))
    k = max(1, int(round(prev * n)))
    pos = rng.choice(n, k, replace=False)
    X[pos] = rng.normal(0, 3, dim) + rng.normal(0, 1, (k, dim))
    y = np.zeros(n, bool)
    y[pos] = True
    return X, y, int(pos[0])


def first_positives(hist, k=10):
    for h in hist:
        if h["positives"] >= k:
            return h["labels"]
    return None


def summary(values, cap):
    v = np.array([cap if x is None else x for x in values], float)
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    more = sum(x is None for x in values)
    tail = f" ({more} not within {cap})" if more else ""
    return f"{med:.0f} [{q1:.0f}, {q3:.0f}]{tail}"


def session_run(study, exemplar, truth, *, policy, tau, batch, budget, seed):
    """One search through the step's session (no save), answered from ``truth`` (a bool
    Series over the profiles' ids, what the label-column oracle returns): per round the
    labels spent and positives found; stops at the decision or the budget."""
    from workbench.tools.find import FindSession

    s = FindSession.open(study, [exemplar], tau=tau, batch=batch, policy=policy, seed=seed,
                         restart=True)
    while s.status == "open" and len(s.search.state.labels) < budget:
        ids = s.next_batch()
        if not ids and len(s.search.state.labels) >= len(s.crop_ids) - 1:
            break
        s.record({i: bool(truth[i]) for i in ids})
    return s


def _labels_to(rows, key, value):
    for r in rows:
        if r[key] >= value if key == "positives" else r[key] == value:
            return r["labels"]
    return None


def policy_table(study, truth, exemplars, *, tau, batch, budget, seeds, find_k, lc_budget):
    """Rows of the table: per policy, labels to confirm above tau and to find ``find_k``
    positives, median [IQR] over seeds (exemplar ``exemplars[seed % len]``)."""
    out = []
    for pol in ("guided", "random", "least_confidence"):
        cap = budget if pol != "least_confidence" else lc_budget
        conf, find = [], []
        for seed in range(seeds):
            ex = exemplars[seed % len(exemplars)]
            # least confidence never decides, so it runs to its budget
            s = session_run(study, ex, truth, policy=pol, tau=tau, batch=batch, budget=cap,
                            seed=seed)
            conf.append(_labels_to(s.rounds, "status", "confirmed_common"))
            find.append(_labels_to(s.rounds, "positives", find_k))
            if pol != "least_confidence" and s.status == "confirmed_common" and find[-1] is None:
                # keep asking (the classifier's least-confident crops) to count the finds
                while len(s.search.state.labels) < cap and find[-1] is None:
                    ids = s.next_batch()
                    if not ids and len(s.search.state.labels) >= len(s.crop_ids) - 1:
                        break
                    s.record({i: bool(truth[i]) for i in ids})
                    find[-1] = _labels_to(s.rounds, "positives", find_k)
        c = "no valid interval" if pol == "least_confidence" else summary(conf, cap)
        out.append((pol, c, summary(find, cap)))
    return out


def demo(a):
    study = _demo_study(a)
    obs = study.read_obs("profiles")
    pert = obs["perturbation"].astype(str)
    tau = a.demo_tau
    nucleus = obs["latent_nucleus_size"].astype(float)
    phenotypes = [
        (f"synthetic-lethal pair {a.phenotype}", pert == a.phenotype),
        ("largest nuclei: top 1 % of the truth column latent_nucleus_size",
         nucleus >= nucleus.quantile(0.99)),
    ]
    print(f"quick demo Study: {len(obs)} crops; tau {tau:.1%}, batch {a.demo_batch}, "
          f"{a.seeds} seeds (exemplar: one of the phenotype's crops in turn); median "
          "[IQR]; labels capped at the pool size\n")
    print("| phenotype | crops | policy | labels to confirm above tau | labels to find half "
          "of its crops |")
    print("|---|---|---|---|---|")
    for name, truth in phenotypes:
        ex = [str(i) for i in obs.index[truth]]
        k = max(1, int(truth.sum()) // 2)
        for pol, c, f in policy_table(study, truth, ex, tau=tau, batch=a.demo_batch,
                                      budget=len(obs), seeds=a.seeds, find_k=k,
                                      lc_budget=len(obs)):
            print(f"| {name} | {int(truth.sum())} ({truth.mean():.1%}) | {pol} | {c} | "
                  f"{f} (k = {k}) |", flush=True)


def rare_run(study, exemplar, truth, *, arm, tau, delta, batch, max_draws, seed):
    """One search to its decision, answered from ``truth``. ``arm``: ``"guided"`` the
    guided session; ``"uniform"`` the same session with its proposal set to uniform draws
    (random sampling under the same betting interval: every draw has probability 1 / N and
    range 1); ``"random"`` the step's random baseline (no replacement, Clopper-Pearson with
    delta split over the looks). Guided and uniform draws that land on a crop already
    answered cost no label, so those go on past the last unanswered crop; a search stops
    when decided, after ``max_draws`` draws, or when nothing is left to ask."""
    from workbench.tools.find import FindSession

    s = FindSession.open(study, [exemplar], tau=tau, delta=delta, batch=batch,
                         policy="random" if arm == "random" else "guided", seed=seed,
                         restart=True)
    if arm == "uniform":
        s.search.floor = 1.0
    while s.status == "open" and len(s.search.state.item) < max_draws:
        ids = s.next_batch()
        if not ids and arm == "random":
            break
        s.record({i: bool(truth[i]) for i in ids})
    return s


def demo_rare(a):
    """The certify-rare check on the quick demo Study (``--demo-rare``)."""
    study = _demo_study(a)
    obs = study.read_obs("profiles")
    pert = obs["perturbation"].astype(str)
    tau, delta, n = a.demo_tau, a.delta, len(obs)
    pair = [str(i) for i in obs.index[pert == a.phenotype]]
    k = max(1, int(round(a.rare_share * n)))
    if k > len(pair):
        raise SystemExit(f"{a.phenotype} has {len(pair)} crops, fewer than the {k} asked for")
    ctrl_name = a.rare_control or a.phenotype
    ctrl = [str(i) for i in obs.index[pert == ctrl_name]]
    if len(ctrl) / n <= 2 * tau:
        raise SystemExit(f"the control {ctrl_name} holds {len(ctrl) / n:.2%} of crops, not "
                         f"clearly above tau; name a larger one (--rare-control)")
    max_draws = a.rare_max_draws
    print(f"demo Study: {n} crops; tau {tau:.1%}, delta {delta}, batch {a.rare_batch}, "
          f"{a.seeds} seeds, at most {max_draws} draws; rare phenotype: {k} crop(s) of "
          f"{a.phenotype} ({len(pair)} crops), crops (seed + j) % {len(pair)} of them, "
          f"{k / n:.2%} of crops; control: all {len(ctrl)} crops of {ctrl_name} "
          f"({len(ctrl) / n:.1%}), which must not be certified rare\n")
    print("| phenotype | sampling | certified rare | confirmed common "
          "| undecided | labels spent, median [IQR] (min-max) | draws, median |")
    print("|---|---|---|---|---|---|---|")
    for name, which in ((f"{k} crop(s) of {a.phenotype} ({k / n:.2%})", "one"),
                        (f"all of {ctrl_name} ({len(ctrl) / n:.1%}, control)", "all")):
        for label, arm in (("guided (ours)", "guided"),
                           ("uniform random, same betting interval", "uniform"),
                           ("random, Clopper-Pearson split over looks", "random")):
            dec, labels, draws = [], [], []
            for seed in range(a.seeds):
                truth = pd.Series(False, index=obs.index.astype(str))
                if which == "one":
                    ex = pair[seed % len(pair)]
                    truth[[pair[(seed + j) % len(pair)] for j in range(k)]] = True
                else:
                    ex = ctrl[seed % len(ctrl)]
                    truth[ctrl] = True
                s = rare_run(study, ex, truth, arm=arm, tau=tau, delta=delta,
                             batch=a.rare_batch, max_draws=max_draws, seed=seed)
                dec.append(s.status)
                labels.append(len(s.search.state.labels))
                draws.append(len(s.search.state.item))
            lab = np.array(labels, float)
            q1, med, q3 = np.percentile(lab, [25, 50, 75])
            print(f"| {name} | {label} | {dec.count('certified_rare')}/{a.seeds} | "
                  f"{dec.count('confirmed_common')}/{a.seeds} | {dec.count('open')}/{a.seeds} "
                  f"| {med:.0f} [{q1:.0f}, {q3:.0f}] ({lab.min():.0f}-{lab.max():.0f}) | "
                  f"{np.median(draws):.0f} |", flush=True)


def _demo_study(a):
    import tempfile

    from workbench.data.study import Study
    from workbench.testing import make_demo_study

    if a.study:
        return Study.open(a.study)
    tmp = Path(tempfile.mkdtemp()) / "quick.study"
    print("building the quick demo Study (simulate, embed) ...", flush=True)
    return make_demo_study(tmp, size="quick", seed=0, steps="simulate,embed")


LINCS = "lincs_cellpainting_profiles/SQ00015054_normalized_feature_select.csv.gz"


def real(a):
    import tempfile

    from workbench.data.readers.profiles import import_profiles
    from workbench.tools.find import run_find

    path = Path(a.data) / LINCS
    if not path.is_file():
        raise SystemExit(f"{LINCS} is not under {a.data}")
    study = import_profiles(path, Path(tempfile.mkdtemp()) / "lincs.study")
    obs = study.read_obs("profiles")
    moa = obs["moa"].astype(str)
    counts = moa[obs["moa"].notna()].value_counts()
    moas = sorted(counts.index[counts == counts.max()])
    tau = a.real_tau
    print(f"LINCS plate: {len(obs)} wells, {len(counts)} MOAs; each MOA of {counts.max()} "
          f"wells ({counts.max() / len(obs):.1%}) as the phenotype, tau {tau:.0%}, batch "
          f"{a.real_batch}, {a.seeds} seeds per MOA (exemplar: one of its wells in turn); "
          "median [IQR]\n")
    print("| MOA (12 wells) | guided: labels to confirm | random: labels to confirm | "
          "guided: to find 6 | random: to find 6 | least confidence: to find 6 |")
    print("|---|---|---|---|---|---|")
    for m in moas:
        truth = moa == m
        ex = [str(i) for i in obs.index[truth]]
        rows = {p: (c, f) for p, c, f in policy_table(
            study, truth, ex, tau=tau, batch=a.real_batch, budget=len(obs), seeds=a.seeds,
            find_k=6, lc_budget=len(obs))}
        print(f"| {m.replace('|', ' / ')} | {rows['guided'][0]} | {rows['random'][0]} | {rows['guided'][1]} | "
              f"{rows['random'][1]} | {rows['least_confidence'][1]} |", flush=True)
    # one search through the step, answered from the moa column, and its enrichment
    m = a.real_moa
    dose = obs["dose"].where(moa == m, -1.0)
    ex = str(dose.idxmax())
    s = run_find(study, [ex], tau=tau, label_column="moa", batch=a.real_batch,
                 budget=len(obs), seed=0)
    lo, hi = s.interval
    print(f"\nstep run on {m!r} from well {ex}: {len(s.search.state.labels)} answers, "
          f"status {s.status}, prevalence in [{lo:.1%}, {hi:.1%}] (true "
          f"{(moa == m).mean():.1%})")
    enr = s.enrichment()
    moa_of = dict(zip(obs["perturbation"].astype(str), moa))
    print("perturbations with q < 0.05: " + "; ".join(
        f"{r.perturbation} (MOA {moa_of[r.perturbation]}, {r.n_positive}/{r.n_crops}, "
        f"q {r.q:.2g})" for r in enr[enr["q"] < 0.05].itertuples()))


NF1 = "cellpainting_images_wayscience/nf1_plate2"


def nf1_study(a):
    """The NF1 plate-2 fields imported and embedded with the CLI's own commands (or the
    Study named by ``--nf1-study``)."""
    import subprocess
    import sys
    import tempfile

    from workbench.data.study import Study

    if a.nf1_study:
        return Study.open(a.nf1_study)
    folder = Path(a.data) / NF1
    if not folder.is_dir():
        raise SystemExit(f"{NF1} is not under {a.data}")
    out = Path(tempfile.mkdtemp()) / "nf1.study"
    wb = [sys.executable, "-m", "workbench"]
    print("importing and embedding the NF1 fields ...", flush=True)
    subprocess.run(wb + ["import", "images", str(folder), "--out", str(out), "--platemap",
                         str(folder / "platemap_NF1_plate2.csv"), "--perturbation-column",
                         "genotype", "--control", "WT"], check=True)
    subprocess.run(wb + ["embed", str(out), "--size", "tiny", "--seed", "0"], check=True)
    return Study.open(out)


def real_nf1(a):
    """The NF1 fields, genotype as the oracle (``--real-nf1``)."""
    from workbench.tools.find import run_find

    study = nf1_study(a)
    obs = study.read_obs("profiles")
    geno = obs["genotype"].astype(str)
    tau = a.nf1_tau
    print(f"NF1 plate 2: {len(obs)} crops from {obs['well'].nunique()} wells "
          f"({dict(geno.value_counts())}); tau {tau:.0%}, delta {a.delta}, batch "
          f"{a.real_batch}, {a.seeds} seeds per genotype (exemplar one of its crops in turn); "
          "median [IQR], labels capped at the crops\n")
    print("| phenotype (genotype) | crops | policy | labels to confirm above tau | labels to "
          "find half of its crops |")
    print("|---|---|---|---|---|")
    for g in sorted(set(geno)):
        truth = geno == g
        ex = [str(i) for i in obs.index[truth]]
        k = int(truth.sum()) // 2
        for pol, c, f in policy_table(study, truth, ex, tau=tau, batch=a.real_batch,
                                      budget=len(obs), seeds=a.seeds, find_k=k,
                                      lc_budget=len(obs)):
            print(f"| {g} | {int(truth.sum())} ({truth.mean():.0%}) | {pol} | {c} | {f} "
                  f"(k = {k}) |", flush=True)
    ex = str(obs.index[geno == "WT"][0])
    s = run_find(study, [ex], tau=tau, label_column="genotype", batch=a.real_batch,
                 budget=len(obs), seed=0)
    lo, hi = s.interval
    print(f"\nstep run on WT from crop {ex}: {len(s.search.state.labels)} answers, status "
          f"{s.status}, prevalence in [{lo:.1%}, {hi:.1%}] (true {(geno == 'WT').mean():.1%})")
    call = s.positive_calls()
    print("enrichment (perturbation = genotype): " + "; ".join(
        f"{r.perturbation} {r.n_positive}/{r.n_crops} q {r.q:.2g}"
        for r in s.enrichment().itertuples()))
    print("positive calls per well: " + "; ".join(
        f"{w} ({geno[obs['well'] == w].iloc[0]}) {int(call[(obs['well'] == w).to_numpy()].sum())}"
        f"/{int((obs['well'] == w).sum())}" for w in sorted(obs["well"].astype(str).unique())))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--common", type=float, default=0.01)
    ap.add_argument("--rare", type=float, default=0.001)
    ap.add_argument("--tau", type=float, default=0.005)
    ap.add_argument("--delta", type=float, default=0.05)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--budget", type=int, default=4000)
    ap.add_argument("--lc-budget", type=int, default=600)
    ap.add_argument("--demo", action="store_true", help="the quick demo Study's pair")
    ap.add_argument("--demo-rare", action="store_true",
                    help="certify one crop of the quick demo Study's pair as rare")
    ap.add_argument("--rare-share", type=float, default=0.001,
                    help="share of crops in the rare phenotype (at least one crop)")
    ap.add_argument("--rare-control", help="perturbation whose crops are the control "
                    "phenotype above tau (default: the whole --phenotype)")
    ap.add_argument("--rare-batch", type=int, default=50)
    ap.add_argument("--rare-max-draws", type=int, default=20000)
    ap.add_argument("--study", help="a quick demo Study built before (for --demo)")
    ap.add_argument("--phenotype", default="G03+G08")
    ap.add_argument("--demo-tau", type=float, default=0.005)
    ap.add_argument("--demo-batch", type=int, default=10)
    ap.add_argument("--real", action="store_true", help="the LINCS plate's MOAs")
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent
                                          / "shared" / "data"))
    ap.add_argument("--real-tau", type=float, default=0.01)
    ap.add_argument("--real-batch", type=int, default=10)
    ap.add_argument("--real-nf1", action="store_true",
                    help="the NF1 fields, genotype as the oracle")
    ap.add_argument("--nf1-study", help="an NF1 Study imported and embedded before")
    ap.add_argument("--nf1-tau", type=float, default=0.1)
    ap.add_argument("--real-moa", default="proteasome inhibitor")
    a = ap.parse_args(argv)
    if a.demo_rare:
        return demo_rare(a)
    if a.demo:
        return demo(a)
    if a.real_nf1:
        return real_nf1(a)
    if a.real:
        return real(a)
    print(f"pool {a.n} crops, tau {a.tau}, delta {a.delta}, batch {a.batch}, "
          f"{a.seeds} seeds; median [IQR]\n")
    print(f"| policy | labels to confirm {a.common:.1%} | labels to find 10 | "
          f"{a.rare:.1%} certified rare | labels to certify |")
    print("|---|---|---|---|---|")
    for pol in ("guided", "random", "least_confidence"):
        budget = a.budget if pol != "least_confidence" else a.lc_budget
        conf, find, cert, cert_n = [], [], 0, []
        for s in range(a.seeds):
            X, y, ex = pool(a.n, a.common, s)
            r = simulate_search(X, y, [ex], policy=pol, tau=a.tau, delta=a.delta,
                                batch=a.batch, max_labels=budget, seed=s,
                                stop_at_decision=True)
            conf.append(r["labels_to_decision"] if r["decision"] == "confirmed_common"
                        else None)
            find.append(first_positives(r["history"]))
            if pol == "least_confidence":
                continue
            X, y, ex = pool(a.n, a.rare, s + 1000)
            r = simulate_search(X, y, [ex], policy=pol, tau=a.tau, delta=a.delta,
                                batch=a.batch, max_labels=budget, seed=s)
            cert += r["decision"] == "certified_rare"
            cert_n.append(r["labels_to_decision"] if r["decision"] == "certified_rare"
                          else None)
        rare = ("no valid interval", "-") if pol == "least_confidence" else \
            (f"{cert}/{a.seeds}", summary(cert_n, budget))
        c = "no valid interval" if pol == "least_confidence" else summary(conf, budget)
        print(f"| {pol} | {c} | {summary(find, budget)} | {rare[0]} | {rare[1]} |",
              flush=True)


if __name__ == "__main__":
    main()
