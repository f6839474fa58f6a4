"""Benchmark the demo-world simulator: crops rendered per second and peak memory.

Run ``python benchmarks/bench_simulate.py [--quick]``. For each demo size it measures

* the vectorised renderer (:func:`workbench.data.simulate.render_cells`) on 2,048 crops, and
  the same renderer called one crop at a time (the naive peer) on 128 crops, in the same run:
  the ratio is what vectorisation buys;
* the whole ``build_demo_study`` (world, layout, rendering, Zarr writes, velocity, JSON):
  wall time, CPU time, crops per second, and peak Python-heap memory (tracemalloc, which
  sees numpy's buffers).

Prints a markdown table. Wall times depend on how busy the machine is; CPU time does not as
much, so both are shown.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.data.simulate import (  # noqa: E402
    PROPERTIES, SIZES, TextureBank, build_demo_study, render_cells,
)


def _timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def bench_render(size: int, n: int, n_naive: int) -> dict:
    bank = TextureBank(size, seed=0)
    z = np.random.default_rng(0).standard_normal((n, len(PROPERTIES)))
    render_cells(z[:32], np.random.default_rng(0), bank)  # warm up
    _, wall, cpu = _timed(lambda: render_cells(z, np.random.default_rng(1), bank))
    rng = np.random.default_rng(2)
    _, wall1, cpu1 = _timed(lambda: [render_cells(z[i:i + 1], rng, bank) for i in range(n_naive)])
    return {"vec_wall": n / wall, "vec_cpu": n / cpu, "naive_wall": n_naive / wall1,
            "naive_cpu": n_naive / cpu1}


def bench_build(size: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tracemalloc.start()
        study, wall, cpu = _timed(lambda: build_demo_study(Path(tmp) / "d.study", size=size))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        n = len(study.read("images"))
        disk = sum(f.stat().st_size for f in Path(study.path).rglob("*") if f.is_file())
    return {"n": n, "wall": wall, "cpu": cpu, "peak_mb": peak / 2**20, "disk_mb": disk / 2**20}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny and quick sizes only")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    sizes = ["tiny", "quick"] if args.quick else ["tiny", "quick", "realistic"]
    with tempfile.TemporaryDirectory() as tmp:  # warm-up: imports and first-call costs
        build_demo_study(Path(tmp) / "w.study", size="tiny")
    print(f"# bench_simulate ({dt.date.today()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})\n")
    print("| size | crop | renderer crops/s (wall / CPU) | one-at-a-time crops/s (wall / CPU) "
          "| ratio (CPU) | build: crops | build wall s | build CPU s | build crops/s (CPU) "
          "| peak heap MiB | on disk MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for size in sizes:
        crop = SIZES[size]["crop_size"]
        r = bench_render(crop, 512 if args.quick else 2048, 64 if args.quick else 128)
        b = bench_build(size)
        print(f"| {size} | {crop}x{crop} | {r['vec_wall']:.0f} / {r['vec_cpu']:.0f} "
              f"| {r['naive_wall']:.0f} / {r['naive_cpu']:.0f} "
              f"| {r['vec_cpu'] / r['naive_cpu']:.1f}x | {b['n']} | {b['wall']:.1f} "
              f"| {b['cpu']:.1f} | {b['n'] / b['cpu']:.0f} | {b['peak_mb']:.0f} "
              f"| {b['disk_mb']:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
