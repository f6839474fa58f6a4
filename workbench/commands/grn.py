"""``workbench grn STUDY``: a DynGFN posterior over regulatory graphs from RNA velocity."""

from __future__ import annotations

HELP = "posterior over gene-regulatory networks (cycles allowed) from RNA velocity"
DESCRIPTION = (
    "Read the Study's 'velocity' artefact (spliced/unspliced counts, optionally velocity), "
    "choose genes (named, a transcription-factor list, or highly variable genes), compute "
    "steady-state velocity if none is given, compute the posterior over parent sets "
    "(exactly by enumeration when each gene has at most --max-parents parents and that fits, "
    "over each gene's screened candidate parents beyond that, or with per-gene GFlowNets, "
    "DynGFN, trained with checkpoints), and write edge probabilities, posterior samples, cycles and metrics to "
    "'grn' and 'grn_samples', next to a bootstrap sparse-regression baseline. "
    "edge_probability[i, j] is the probability that gene j regulates gene i. Interrupt with "
    "Ctrl-C and run the same command again to resume.")


def add_arguments(parser) -> None:
    """Declare the arguments of ``workbench grn``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser; the arguments are added to it.
    """
    parser.add_argument("study", help="path of the Study (NAME.study)")
    pick = parser.add_mutually_exclusive_group()
    pick.add_argument("--genes", help="comma-separated gene names")
    pick.add_argument("--tf-list", help="file with one transcription factor per line (or a "
                      "CSV whose first column holds them); those present are used")
    parser.add_argument("--n-top", type=int, default=20,
                        help="number of genes (highly variable, or TFs ranked by dispersion)")
    parser.add_argument("--size", default="quick", choices=["tiny", "quick", "realistic", "full"],
                        help="training preset (quick: CPU-friendly)")
    parser.add_argument("--steps", type=int, help="training steps (overrides the preset)")
    parser.add_argument("--samples", type=int, help="posterior samples to draw")
    parser.add_argument("--temperature", default="auto",
                        help="T of the reward MSE / T^2 (default auto: Gaussian likelihood)")
    parser.add_argument("--sparsity", type=float, default=70.0,
                        help="lambda of the edge prior lambda * |parents| / n_genes")
    parser.add_argument("--reward", default="linear", choices=["linear", "hyper"])
    parser.add_argument("--method", default="auto",
                        choices=["auto", "exact", "screened", "dyngfn"],
                        help="exact: enumerate every bounded parent set (settings chosen from "
                        "the data); screened: the same over each gene's screened candidate "
                        "parents (large panels); dyngfn: GFlowNet sampler; auto: exact where "
                        "it fits, screened beyond")
    parser.add_argument("--candidates", type=int, default=12,
                        help="candidate parents per gene of --method screened")
    parser.add_argument("--loss", default="ftb", choices=["db", "ftb"],
                        help="DynGFN's loss: ftb (f-trajectory balance, with --ftb-alpha; "
                             "the default) or db (modified detailed balance)")
    parser.add_argument("--ftb-alpha", default="1",
                        help="the f-divergence of --loss ftb: forward_kl (1, the default), "
                             "hellinger (0.5), reverse_kl (0) or any number")
    parser.add_argument("--warm-start", type=int, default=0, metavar="N",
                        help="with --reward hyper: N steps of the linear reward first, then "
                             "the hypernetwork from that policy (0: none)")
    parser.add_argument("--warm-start-fit", type=int, default=0, metavar="M",
                        help="hypernetwork updates at the switch of --warm-start")
    parser.add_argument("--max-parents", type=int, default=None,
                        help="largest parent set per gene (default 4 for the exact posterior "
                        "and DynGFN, 6 candidates for the screened posterior)")
    parser.add_argument("--reference", action="append", default=[], metavar="NAME=FILE",
                        help="reference network edge list (CSV/TSV with source,target or "
                        "Gene1,Gene2 or tf,target columns) to score against; repeatable")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--export-edges", metavar="CSV",
                        help="also write the likely edges (probability, weight, activates / "
                             "represses) to this CSV file")
    parser.add_argument("--export-threshold", type=float, default=0.5,
                        help="edge probability cut-off for --export-edges")
    parser.add_argument("--progress", action="store_true", help="show a progress bar")


def _read_list(path: str) -> list[str]:
    from pathlib import Path

    from workbench.errors import InputFormatError

    p = Path(path)
    if not p.is_file():
        raise InputFormatError(f"TF list {p} does not exist.", "give a text file, one per line.")
    names = []
    for line in p.read_text().splitlines():
        first = line.split(",")[0].split("\t")[0].strip()
        if first and not first.startswith("#"):
            names.append(first)
    return names


def _alpha(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text  # a divergence name; the step checks it


def run(args) -> int:
    """Fit the regulatory-network posterior of a Study and print a summary.

    Writes the ``grn`` and ``grn_samples`` artefacts (see :func:`workbench.tools.grn.run_grn`),
    prints the genes, the metrics against the truth or the given references and the most
    frequent cycles, and, with ``--export-edges``, writes the likely edges to a CSV file.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed arguments (see :func:`add_arguments`).

    Returns
    -------
    int
        0 once the posterior is written and the summary printed.
    """
    from workbench.data.study import Study
    from workbench.tools.grn import run_grn
    import numpy as np

    from workbench.tools.grn_metrics import read_edge_list

    study = Study.open(args.study)
    refs = {}
    for item in args.reference:
        name, _, path = item.partition("=")
        refs[name if path else name.rsplit("/", 1)[-1]] = read_edge_list(path or name)
    temperature = args.temperature if args.temperature == "auto" else float(args.temperature)
    info = run_grn(study, genes=args.genes.split(",") if args.genes else None,
                   tf_list=_read_list(args.tf_list) if args.tf_list else None,
                   n_top=args.n_top, size=args.size, n_steps=args.steps,
                   n_samples=args.samples, temperature=temperature, sparsity=args.sparsity,
                   reward=args.reward, method=args.method, max_parents=args.max_parents,
                   n_candidates=args.candidates,
                   loss=args.loss, ftb_alpha=_alpha(args.ftb_alpha),
                   warm_start=args.warm_start, warm_start_fit=args.warm_start_fit,
                   references=refs or None, seed=args.seed,
                   device=args.device, progress=args.progress)
    genes = info["settings"]["genes"]
    temp = np.atleast_1d(info["settings"]["temperature"])
    print(f"grn ({info['settings']['method']}): {len(genes)} genes "
          f"({', '.join(genes[:8])}{'...' if len(genes) > 8 else ''}), T = {np.median(temp):.3g}"
          f"{' (median over genes)' if temp.size > 1 else ''}, "
          f"{info['mean_edges_per_sample']:.1f} edges per sample")
    for who, m in info.get("metrics", {}).items():
        if isinstance(m, dict):
            print(f"  {who:9s} AUROC {m['auroc']:.3f}  Bayes-SHD {m['bayes_shd']:.2f}  "
                  f"KL(P*||Q) {m.get('kl_pstar_q', float('nan')):.2f}")
    for who, per_ref in info.get("reference_metrics", {}).items():
        for ref, m in per_ref.items():
            print(f"  {who:9s} vs {ref}: AUROC {m['auroc']:.3f} (p {m['p_auroc']:.3f}), "
                  f"AUPRC {m['auprc']:.3f} (random {m['random_auprc']:.3f})")
    for c in info["cycles"][:5]:
        print(f"  cycle {' -> '.join(c['cycle'])}: {c['frequency']:.2f} of samples")
    from workbench.tools.grn import density_warnings

    for text in density_warnings(info):
        print(f"  warning: {text}")
    if args.export_edges:
        from workbench.tools.grn import export_edges

        df = export_edges(Study.open(args.study), args.export_edges, args.export_threshold)
        counts = df["effect"].value_counts().to_dict() if "effect" in df else {}
        print(f"  {len(df)} edges (p >= {args.export_threshold:g}) written to "
              f"{args.export_edges}: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    return 0
