"""``workbench concepts STUDY``: sparse concepts (ICFL or TopK SAE) over the profiles."""

from __future__ import annotations

HELP = "learn and annotate sparse concepts (ICFL dictionary, control whitening) of the profiles"
DESCRIPTION = (
    "Centre the profiles on controls, whiten them with the control covariance (unless they "
    "are already TVN output, which is whitened on the controls), learn a sparse "
    "dictionary (ICFL, or a TopK sparse autoencoder as the baseline), encode every sample "
    "into profiles.obsm['concepts_<run>'], and write the 'concepts' artefact: the atoms, and "
    "per concept its activation frequency, selectivity and FDR-controlled enrichment for "
    "perturbations and label columns (moa, target, ...), driving perturbations, a "
    "batch/plate flag, and exemplar pages for the dashboards and napari. The dictionary is "
    "fitted on part of the samples and judged on the held-out rest (--holdout). The fitted "
    "model is saved in the Study; `workbench concepts encode STUDY --model OTHER.study` "
    "encodes STUDY's profiles with the model of OTHER.study (same concept ids). "
    "Interrupted runs resume from a checkpoint.")


def add_arguments(parser) -> None:
    """Declare the arguments of ``workbench concepts``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser; the arguments are added to it.
    """
    parser.add_argument("study", help="path of the Study (NAME.study), or 'encode'")
    parser.add_argument("target", nargs="?",
                        help="with 'encode': the Study whose profiles are encoded")
    parser.add_argument("--model", help="with 'encode': the Study that holds the concept "
                        "model (written by an earlier `workbench concepts` run)")
    parser.add_argument("--method", default="icfl", choices=["icfl", "topk"],
                        help="ICFL (default) or the TopK sparse autoencoder baseline")
    parser.add_argument("--n-concepts", type=int,
                        help="dictionary size (default: samples/4, at most 256)")
    parser.add_argument("--sparsity", type=int, default=8,
                        help="nonzero codes per sample (ICFL: rounds x atoms per round)")
    parser.add_argument("--atoms-per-round", type=int,
                        help="ICFL atoms chosen per pursuit round (default min(5, sparsity); "
                             "the last round is partial so codes have exactly --sparsity)")
    parser.add_argument("--pursuit", default="signed", choices=["signed", "abs_refit"],
                        help="ICFL pursuit: the paper's signed selection (default), or "
                             "absolute selection with a joint least-squares re-fit")
    parser.add_argument("--holdout", default="replicate",
                        choices=["replicate", "dose", "plate", "none"],
                        help="how to split samples for the held-out evaluation (default: "
                             "half of each perturbation's replicates held out)")
    white = parser.add_mutually_exclusive_group()
    white.add_argument("--whiten", dest="whiten", action="store_const", const=True,
                       default=None, help="whiten on the controls even if an earlier step "
                       "(TVN in embed/normalise) already did")
    white.add_argument("--no-whiten", dest="whiten", action="store_const", const=False,
                       help="only centre on controls and unit-normalise (ablation); by "
                       "default the step whitens unless the profiles are already TVN output")
    parser.add_argument("--shrinkage", type=float, default=0.1,
                        help="whitening ridge as a fraction of the mean control eigenvalue")
    parser.add_argument("--use-rep", help="obsm key of profiles to use instead of X")
    parser.add_argument("--labels", nargs="*", default=[],
                        help="extra obs columns to annotate (moa, target, genes... are "
                             "taken when present)")
    parser.add_argument("--run", help="run name: codes go to profiles.obsm['concepts_<run>'] "
                        "(default: the method)")
    parser.add_argument("--steps", type=int, help="optimiser steps (default ~60 passes)")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--alpha", type=float, default=0.05, help="FDR level of enrichment")
    parser.add_argument("--no-resume", action="store_true",
                        help="ignore a checkpoint left by an interrupted run")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stability-seeds", type=int, default=1,
                        help="extra seeds fitted to score each concept's stability (matched "
                             "atom cosine; 0 skips it, each one costs about one more fit)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="with 'encode': a dask.distributed scheduler address; the "
                             "profiles are encoded chunk by chunk on its workers")
    parser.add_argument("--chunk-size", type=int, default=65536,
                        help="with 'encode': profiles whitened and encoded at a time (per "
                             "task with --scheduler)")


def _encode(args) -> int:
    from workbench.data.study import Study
    from workbench.errors import ValidationError
    from workbench.tools.concept_encode import encode_study

    if not args.target or not args.model:
        raise ValidationError("`workbench concepts encode` needs the Study to encode and "
                              "--model.", "run `workbench concepts encode STUDY --model "
                              "OTHER.study`.")
    res = encode_study(Study.open(args.target), Study.open(args.model), run=args.run,
                       use_rep=args.use_rep, labels=args.labels, alpha=args.alpha,
                       device=args.device, scheduler=args.scheduler,
                       chunk_size=args.chunk_size)
    print(f"{res['n_concepts']} concepts of {args.model} on {args.target}: R2 "
          f"{res['r2']:.3f}, dead {res['dead_fraction']:.1%}")
    return 0


def run(args) -> int:
    """Learn the concepts of a Study, or encode one Study with another's saved model.

    ``workbench concepts STUDY`` runs :func:`workbench.tools.concepts.run_concepts` and
    prints the training and held-out figures; ``workbench concepts encode STUDY --model
    OTHER.study`` runs :func:`workbench.tools.concept_encode.encode_study`.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed arguments (see :func:`add_arguments`).

    Returns
    -------
    int
        0 once the concepts are written and the summary printed.

    Raises
    ------
    ValidationError
        If ``encode`` lacks its target or ``--model``, or a target or ``--model`` is given
        without ``encode``.
    """
    from workbench.data.study import Study
    from workbench.errors import ValidationError
    from workbench.tools.concepts import run_concepts

    if args.study == "encode":
        return _encode(args)
    if args.target or args.model:
        raise ValidationError(f"unexpected {args.target or '--model'} after {args.study}.",
                              "to encode with a saved model run `workbench concepts encode "
                              "STUDY --model OTHER.study`.")
    study = Study.open(args.study)
    res = run_concepts(study, method=args.method, n_concepts=args.n_concepts,
                       sparsity=args.sparsity, atoms_per_round=args.atoms_per_round,
                       pursuit=args.pursuit, holdout=args.holdout, whiten=args.whiten, shrinkage=args.shrinkage,
                       use_rep=args.use_rep, labels=args.labels, run=args.run,
                       max_steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                       alpha=args.alpha, device=args.device, seed=args.seed,
                       stability_seeds=args.stability_seeds, resume=not args.no_resume)
    print(f"{res['n_concepts']} concepts ({args.method}), dead {res['dead_fraction']:.1%}, "
          f"R2 {res['r2']:.3f} (training), {res['n_technical']} flagged as batch/plate")
    if "heldout_r2" in res:
        print(f"  held out ({args.holdout}): R2 {res['heldout_r2']:.3f}, dead "
              f"{res['heldout_dead_fraction']:.1%}, dense {res['heldout_dense_fraction']:.1%}")
    for key in sorted(res):
        if key.endswith(("_selective_0.5", "_labels_enriched")) and "heldout" not in key:
            print(f"  {key}: {res[key]}")
    return 0
