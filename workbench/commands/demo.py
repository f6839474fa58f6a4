"""``workbench demo``: build the demo world end to end, then serve its dashboards.

The demo Study is a simulated screen in which the same genes appear in all four views
(images and embeddings, concepts, pairwise interactions, GRN posterior), with the planted
truth saved beside the results. Steps that are already in the Study are skipped, so an
interrupted build resumes where it stopped (``--overwrite`` starts again).
"""

from __future__ import annotations

import importlib
import time

HELP = "build the demo Study (simulated screen + every analysis step) and serve it"
DESCRIPTION = __doc__

#: (step name, module with ``demo_step(study, size, seed)``, artefact that marks it done)
DEMO_STEPS = [
    ("embed", "workbench.tools.embed", "perturbations"),
    ("concepts", "workbench.tools.concept_demo", "concepts"),
    ("interactions", "workbench.tools.interactions", "interactions"),
    ("grn", "workbench.tools.grn", "grn"),
]
SIZES = ("tiny", "quick", "realistic")
#: Typical seconds per step on a quiet 2-core machine without a GPU, for the progress line's
#: estimate of the time left (scaled by how fast the steps so far ran on this machine).
TYPICAL_SECONDS = {
    "tiny": {"simulate": 2, "embed": 8, "concepts": 4, "interactions": 5, "grn": 3},
    "quick": {"simulate": 4, "embed": 30, "concepts": 13, "interactions": 15, "grn": 5},
    "realistic": {"simulate": 13, "embed": 44, "concepts": 22, "interactions": 40, "grn": 10},
}


def _eta(size: str, done: dict[str, float], todo: list[str]) -> str:
    """'about N s/min left' from the typical step times, scaled by the steps run so far."""
    typical = TYPICAL_SECONDS.get(size, TYPICAL_SECONDS["quick"])
    expected = sum(typical.get(n, 0) for n in done)
    speed = (sum(done.values()) / expected) if done and expected > 0 else 1.0
    left = speed * sum(typical.get(n, 0) for n in todo)
    if left < 1:
        return "almost done"
    return f"about {left:.0f} s left" if left < 90 else f"about {left / 60:.1f} min left"


def add_arguments(parser) -> None:
    """Declare the arguments of ``workbench demo``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser; the arguments are added to it.
    """
    parser.add_argument("--out", default="demo.study", help="where to write the Study "
                        "(default: demo.study)")
    parser.add_argument("--size", choices=SIZES, default="realistic",
                        help="quick: seconds, for tests; realistic (default): thousands of "
                             "crops per plate")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the demo world")
    parser.add_argument("--overwrite", action="store_true",
                        help="rebuild from scratch instead of resuming")
    parser.add_argument("--steps", default="all",
                        help="comma-separated subset of: simulate,"
                             + ",".join(s[0] for s in DEMO_STEPS))
    parser.add_argument("--no-serve", action="store_true", help="build only, do not serve")
    parser.add_argument("--address", default="127.0.0.1", help="address to serve on")
    parser.add_argument("--port", type=int, default=5006, help="port to serve on")
    parser.add_argument("--show", action="store_true", help="open a browser tab")


def build_demo(out, size: str = "quick", seed: int = 0, overwrite: bool = False,
               steps: str | list[str] = "all", log=print):
    """Build (or resume) the demo Study at ``out`` and return it.

    Parameters
    ----------
    out : str or os.PathLike
        The ``NAME.study`` folder to write.
    size : str
        Size of the demo world: ``"tiny"``, ``"quick"`` or ``"realistic"``.
    seed : int
        Seed of the demo world and of every step.
    overwrite : bool
        Rebuild from scratch; otherwise an existing demo of the same size and seed is resumed
        (a different one is an error).
    steps : str or list of str
        ``"all"``, or the steps to run (a comma-separated string or a list) among
        ``simulate`` and the analysis steps; a step whose artefact is present is skipped.
    log : callable
        Called with one progress line per step (name, ETA, time taken).

    Returns
    -------
    Study
        The demo Study, refreshed after the last step.
    """
    from pathlib import Path

    from workbench.data.study import Study
    from workbench.errors import WorkbenchError

    out = Path(out)
    wanted = (["simulate"] + [s[0] for s in DEMO_STEPS]) if steps == "all" else (
        steps.split(",") if isinstance(steps, str) else list(steps))
    study = None
    if out.exists() and (out / "study.json").exists() and not overwrite:
        study = Study.open(out)
        made = next((p["params"] for p in study.provenance if p["tool"] == "simulate"), {})
        if made and (made.get("size"), made.get("seed")) != (size, seed):
            raise WorkbenchError(
                f"{out} holds a demo of size {made.get('size')!r}, seed {made.get('seed')}; "
                f"you asked for size {size!r}, seed {seed}.",
                "pass --overwrite to rebuild it, or --out another path.",
            )
        log(f"resuming the demo Study at {out}")
    todo = [n for n in wanted if n == "simulate" or n in {s[0] for s in DEMO_STEPS}]
    done: dict[str, float] = {}
    if study is None or not study.has("images"):
        if "simulate" in wanted:
            from workbench.data.simulate import build_demo_study

            t0 = time.perf_counter()
            log(f"[simulate] building the demo world (size {size}, seed {seed}; "
                f"{_eta(size, done, todo)}) ...")
            study = build_demo_study(out, size=size, seed=seed, overwrite=True)
            done["simulate"] = time.perf_counter() - t0
            log(f"[simulate] done in {done['simulate']:.1f} s")
    if "simulate" in todo:
        todo.remove("simulate")
    if study is None:
        raise WorkbenchError(f"{out} has no demo world yet.", "include 'simulate' in --steps.")
    for name, module, marker in DEMO_STEPS:
        if name not in wanted:
            continue
        if study.has(marker):
            todo.remove(name)
            log(f"[{name}] already done ({marker!r} present)")
            continue
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            todo.remove(name)
            log(f"[{name}] skipped: {exc.name} is not installed")
            continue
        t0 = time.perf_counter()
        log(f"[{name}] running ({_eta(size, done, todo)}) ...")
        mod.demo_step(study, size=size, seed=seed)
        study.refresh()
        todo.remove(name)
        done[name] = time.perf_counter() - t0
        log(f"[{name}] done in {done[name]:.1f} s")
    return study


def run(args) -> int:
    """Build (or resume) the demo Study, print its summary and serve it unless ``--no-serve``.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed arguments (see :func:`add_arguments`).

    Returns
    -------
    int
        0 once the Study is built (and the server stopped).
    """
    from workbench.commands.info import format_summary

    study = build_demo(args.out, size=args.size, seed=args.seed, overwrite=args.overwrite,
                       steps=args.steps)
    print()
    print(format_summary(study.summary()))
    if args.no_serve:
        print(f"\nServe it with:  workbench serve {study.path}")
        return 0
    from workbench.dashboards import serve_study

    serve_study(study.path, address=args.address, port=args.port, show=args.show)
    return 0
