"""Benchmark: DynGFN posterior quality and speed on the synthetic unidentifiable systems.

Rebuilds DynGFN's benchmark (17 variables + 3 negated copies, 1000 trajectories of 2
points, 80/10/10 split by trajectory) with an asymmetric system matrix, for the linear and
the sigmoid system. For each system it trains :class:`workbench.models.gflownet.DynGFN`
and, in the same run on the same training data, the bootstrap Lasso baseline, and prints:

- time per training step, and time until ``KL(P* || Q)`` first drops below thresholds
  (KL evaluated exactly every ``--eval-every`` steps);
- final AUROC/AUPRC of edge marginals on the identifiable entries, Bayes-SHD, KL and
  coverage of the admissible set, for DynGFN and the baseline.

With ``--reference DIR --reference-python PY`` it also runs the reference implementation
(``lazaratan/dyn-gfn``, installed outside this repository) for one training epoch of its
shipped l-DynGFN linear config in a subprocess right after ours, timing its training epoch
with an observe-only Lightning callback, and prints the per-step ratio.

Usage::

    python benchmarks/bench_grn.py [--quick] [--reference DIR --reference-python PY]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SETTINGS = {
    # noise-free linear system: the data are sharp, so a 15-nat edge price keeps the
    # posterior on the admissible set (with lambda = 100 the reward itself puts ~10 % of
    # each row's mass on one extra edge)
    "linear": dict(temperature=0.01, sparsity=300.0),
    "sigmoid": dict(temperature=0.01, sparsity=300.0),
}
COMMON = dict(n_envs=64, lr=3e-3, hidden=64, epsilon=0.25, temper_min=0.1, temper_period=50,
              device="cpu")
KL_THRESHOLDS = (150.0, 20.0, 5.0)

TIMER = '''
import json, os, time
from pytorch_lightning.callbacks import Callback
class EpochTimer(Callback):
    def on_train_epoch_start(self, trainer, pl_module):
        self.t0 = time.perf_counter()
    def on_train_epoch_end(self, trainer, pl_module):
        with open(os.environ["EPOCH_TIMER_OUT"], "a") as f:
            f.write(json.dumps({"epoch": trainer.current_epoch,
                                "seconds": time.perf_counter() - self.t0}) + "\\n")
'''


def run_system(system: str, n_steps: int, eval_every: int, n_samples: int, n_boot: int,
               seed: int = 0) -> dict:
    import torch

    from workbench.models.gflownet import DynGFN
    from workbench.models.grn_params import BootstrapLassoPosterior
    from workbench.tools.grn import scale_for_grn
    from workbench.tools.grn_metrics import (AdmissibleSet, bernoulli_row_log_prob,
                                             kl_to_admissible, posterior_metrics)
    from workbench.tools.grn_synthetic import simulate_unidentifiable_system, split_by_trajectory

    torch.set_num_threads(1)
    sim = simulate_unidentifiable_system(system, seed=13)
    train, _, _ = split_by_trajectory(sim["trajectory"])
    x, v, _ = scale_for_grn(sim["x"][train], sim["v"][train])
    adm = AdmissibleSet.from_truth(sim["adjacency"], sim["groups"])
    model = DynGFN(n_steps=n_steps, seed=seed, **SETTINGS[system], **COMMON)
    curve, clock = [], {"train": 0.0, "last": time.perf_counter()}

    def on_step(m):
        now = time.perf_counter()
        clock["train"] += now - clock["last"]
        if m.step_ % eval_every == 0 or m.step_ == n_steps:
            kl = kl_to_admissible(m.log_prob_parent_set, adm)
            curve.append((m.step_, clock["train"], kl))
        clock["last"] = time.perf_counter()

    model.fit(x, v, callback=on_step)
    t_step = clock["train"] / n_steps
    samples = model.sample(n_samples, seed=seed + 1)
    dyn = posterior_metrics(samples, adm, log_q_row=model.log_prob_parent_set)
    t0 = time.perf_counter()
    base = BootstrapLassoPosterior(n_boot=n_boot, seed=seed).fit(x, v, groups=sim["trajectory"][train])
    t_base = time.perf_counter() - t0
    bl = posterior_metrics(base.samples_, adm,
                           log_q_row=bernoulli_row_log_prob(base.edge_probability_, n_boot))
    to_kl = {}
    for thr in KL_THRESHOLDS:
        hit = [(s, t) for s, t, kl in curve if kl <= thr]
        to_kl[thr] = hit[0] if hit else None
    return {"system": system, "t_step": t_step, "train_s": clock["train"], "curve": curve,
            "to_kl": to_kl, "dyngfn": dyn, "baseline": bl, "baseline_s": t_base,
            "admissible": adm.size, "n_train": int(train.sum())}


def run_reference(ref_dir: str, python: str) -> dict | None:
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "wb_epoch_timer.py").write_text(TIMER)
        out = Path(tmp, "epochs.jsonl")
        env = dict(os.environ, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1", EPOCH_TIMER_OUT=str(out),
                   PYTHONPATH=tmp, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        cmd = [python, "train.py", "experiment=linear_linsol_dyn_gfn", "trainer=cpu",
               "logger=csv", "trainer.max_epochs=1", "trainer.min_epochs=1",
               "+trainer.limit_val_batches=0", "test=False",
               "+callbacks.epoch_timer._target_=wb_epoch_timer.EpochTimer",
               f"hydra.run.dir={tmp}/run"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ref_dir, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0 or not out.exists():
            print(proc.stderr[-3000:], file=sys.stderr)
            return None
        epochs = [json.loads(line) for line in out.read_text().splitlines()]
        return {"epoch_s": epochs[0]["seconds"], "steps": 4, "envs": 1024, "wall_s": wall}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps (a smoke run)")
    ap.add_argument("--systems", default="linear,sigmoid")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--reference", help="checkout of lazaratan/dyn-gfn (outside this repo)")
    ap.add_argument("--reference-python", help="python of the reference's own venv")
    ap.add_argument("--json", help="also write the raw results here")
    args = ap.parse_args(argv)
    n_steps = args.steps or (60 if args.quick else 400)
    eval_every = 10 if args.quick else 25
    rows = [run_system(s, n_steps, eval_every, n_samples=300 if args.quick else 1000,
                       n_boot=10 if args.quick else 50)
            for s in args.systems.split(",")]
    ref = None
    if args.reference and args.reference_python:
        ref = run_reference(args.reference, args.reference_python)

    print(f"\n## DynGFN synthetic benchmark ({n_steps} steps, 64 roll-outs + 64 local-search "
          "trajectories per node per step, 2 CPU threads max, torch threads = 1)\n")
    print("| system | method | AUROC (identifiable) | AUPRC | Bayes-SHD | KL(P*‖Q) | coverage "
          "| share admissible | mean edges | fit time s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        for who, m, t in (("DynGFN (ours)", r["dyngfn"], r["train_s"]),
                          ("bootstrap Lasso", r["baseline"], r["baseline_s"])):
            print(f"| {r['system']} | {who} | {m['auroc']:.3f} | {m['auprc']:.3f} | "
                  f"{m['bayes_shd']:.2f} | {m['kl_pstar_q']:.1f} | {m['coverage']:.3f} "
                  f"(of {r['admissible']}) | {m['share_admissible']:.3f} | "
                  f"{m['mean_edges']:.1f} | {t:.1f} |")
    print("\n| system | s / training step | " + " | ".join(
        f"time to KL ≤ {t:g} (s, step)" for t in KL_THRESHOLDS) + " |")
    print("|---|---|" + "---|" * len(KL_THRESHOLDS))
    for r in rows:
        cells = [f"{v[1]:.1f} s (step {v[0]})" if v else "not reached"
                 for v in r["to_kl"].values()]
        print(f"| {r['system']} | {r['t_step']:.3f} | " + " | ".join(cells) + " |")
    if ref is not None:
        lin = next((r for r in rows if r["system"] == "linear"), rows[0])
        ref_step = ref["epoch_s"] / ref["steps"]
        print("\n| implementation | s / training step | roll-outs per node per step | "
              "s per 1000 roll-outs per node | ratio (reference / ours) per step |")
        print("|---|---|---|---|---|")
        print(f"| reference lazaratan/dyn-gfn (l-DynGFN linear, same machine, same run) | "
              f"{ref_step:.2f} | 1024 | {ref_step / 1.024:.2f} | |")
        ours_per_k = lin["t_step"] / 0.128
        print(f"| ours | {lin['t_step']:.3f} | 64 + 64 | {ours_per_k:.2f} | "
              f"{ref_step / lin['t_step']:.1f}x per step, {ref_step / 1.024 / ours_per_k:.1f}x "
              "per roll-out |")
        print(f"\nreference whole process (1 epoch, no validation): {ref['wall_s']:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "reference": ref}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
