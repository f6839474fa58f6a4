"""``workbench embed STUDY``: images -> ViT-MAE features -> best block -> TVN -> map."""

from __future__ import annotations

HELP = "embed a Study's images (ViT-MAE), pick the best block, normalise (TVN) and map"
DESCRIPTION = (
    "Pretrain (or load) a ViT masked autoencoder, embed every crop of the Study's image "
    "store with all blocks' features, choose the block by a linear probe with folds "
    "grouped by batch/plate/field, normalise on controls (TVN) and aggregate to a "
    "perturbation map with cosine similarities. A Study with precomputed profiles and no "
    "images (e.g. an imported CellProfiler table) is normalised and mapped directly.")


def add_arguments(parser) -> None:
    """Declare the arguments of ``workbench embed``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser; the arguments are added to it.
    """
    parser.add_argument("study", help="path of the Study (NAME.study)")
    parser.add_argument("--weights", help="encoder weights to use instead of training "
                        "(safetensors, timm / MAE / HuggingFace ViTMAE checkpoints)")
    parser.add_argument("--channel-adapt", choices=["repeat", "average", "tokens"],
                        help="3-channel weights on crops with more channels: repeat the "
                        "filters, average the channels, or per-channel tokens")
    parser.add_argument("--partial-weights", action="store_true",
                        help="load what fits and record the keys that do not (default: a "
                        "key too many or too few is an error)")
    parser.add_argument("--input-norm", default="auto",
                        choices=["auto", "mean_std", "percentile", "self", "none"],
                        help="input normalisation for outside weights (auto: the weights' "
                        "own, else a per-channel mean/std fitted on the crops)")
    parser.add_argument("--layout", default="auto", choices=["auto", "umap", "pca"],
                        help="2-D layout stored for the views (auto: UMAP, or PCA with a "
                        "recorded note when umap-learn is absent or the points are few)")
    parser.add_argument("--level", default="crop", choices=["crop", "cell", "well"],
                        help="unit of the profiles, on which the probe and TVN run (well: "
                        "EFAAR's unit for plates)")
    parser.add_argument("--aggregate", default="mean", choices=["mean", "median"],
                        help="how crops are aggregated to the level and to perturbations")
    parser.add_argument("--dose-key", help="obs column: one map row per perturbation and dose")
    parser.add_argument("--qc-exclude", metavar="COLUMN",
                        help="boolean obs column of crops to drop (e.g. crops with no cell)")
    parser.add_argument("--qc-max-intensity-z", type=float, metavar="Z",
                        help="drop crops whose mean intensity is more than Z robust "
                        "z-scores from the median")
    parser.add_argument("--size", default="tiny", choices=["tiny", "small", "base", "large"],
                        help="encoder size when training (default tiny: CPU friendly)")
    parser.add_argument("--steps", type=int, default=200, help="pretraining steps")
    parser.add_argument("--train-batch-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=256, help="crops per embedding batch")
    parser.add_argument("--label", default="perturbation",
                        help="probe task: perturbation (identity, the default), relationship "
                        "(the Study's known groups) or an obs column (a user label)")
    parser.add_argument("--block", type=int, help="use this block (1-based); skips the probe")
    parser.add_argument("--map-label", help="obs column kept on the map for retrieval mAP "
                        "(e.g. moa)")
    parser.add_argument("--arm-table", metavar="CSV",
                        help="chromosome-arm correction of a CRISPR gene map: a table with "
                        "columns gene, arm and expressed (true/false); each arm with enough "
                        "unexpressed genes is centred on them")
    parser.add_argument("--coral", action="store_true",
                        help="add the per-batch covariance (CORAL) step to TVN")
    parser.add_argument("--no-batch-center", action="store_true",
                        help="centre/scale on all controls together instead of per batch")
    parser.add_argument("--scheduler", help="dask.distributed scheduler address: embed on "
                        "that cluster (workers must see the Study's path)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    parser.add_argument("--seed", type=int, default=0)


def run(args) -> int:
    """Embed a Study's images (or normalise its precomputed profiles) and build the map.

    A Study with ``profiles`` and no ``images`` is normalised and mapped directly; the
    image-only options (``--level``, ``--qc-exclude``, ``--qc-max-intensity-z``) are then an
    error.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed arguments (see :func:`add_arguments`).

    Returns
    -------
    int
        0 once the profiles and the map are written.
    """
    from workbench.data.study import Study
    from workbench.errors import ValidationError

    study = Study.open(args.study)
    tvn_kw = {"coral": args.coral}
    if args.no_batch_center:
        tvn_kw["batch_center"] = False
    from workbench.data.readers.arms import read_arm_table

    arm_correction = read_arm_table(args.arm_table) if args.arm_table else None
    if not study.has("images") and study.has("profiles"):
        from workbench.tools.embed import normalize_study

        image_only = [flag for flag, given in (
            ("--level", args.level != "crop"), ("--qc-exclude", args.qc_exclude),
            ("--qc-max-intensity-z", args.qc_max_intensity_z is not None)) if given]
        if image_only:
            raise ValidationError(
                f"{', '.join(image_only)}: {'these options act' if len(image_only) > 1 else 'this option acts'} on image crops, and this Study has "
                "precomputed profiles and no images, already at their level.",
                "leave those options out (the map aggregation --aggregate and --dose-key "
                "still apply), or aggregate the table before importing it.")
        res = normalize_study(study, label_key=args.map_label, tvn_kw=tvn_kw, seed=args.seed,
                              layout=args.layout, aggregate=args.aggregate,
                              dose_key=args.dose_key, arm_correction=arm_correction)
        print(f"normalised precomputed profiles ({res['source']}) and mapped "
              f"{res['n_perturbations']} perturbations")
        return 0
    from workbench.tools.embed import embed_study

    res = embed_study(study, encoder=args.weights, size=args.size, train_steps=args.steps,
                      train_batch_size=args.train_batch_size, label=args.label,
                      block=args.block, scheduler=args.scheduler, batch_size=args.batch_size,
                      device=args.device, seed=args.seed, tvn_kw=tvn_kw,
                      label_key=args.map_label, channel_adapt=args.channel_adapt,
                      partial_weights=args.partial_weights, input_norm=args.input_norm,
                      layout=args.layout, level=args.level, aggregate=args.aggregate,
                      dose_key=args.dose_key, qc={k: v for k, v in (
                          ("exclude_column", args.qc_exclude),
                          ("max_intensity_z", args.qc_max_intensity_z)) if v is not None},
                      arm_correction=arm_correction)
    probe = res["probe"]
    if probe:
        curve = ", ".join(f"b{b}={a:.3f}" for b, a in zip(probe["blocks"],
                                                           probe["balanced_accuracy"]))
        print(f"probe ({probe['task']}, folds by {probe['group_key']}; chance "
              f"{probe['chance']:.3f}; reduction: {probe['reduction']}): {curve}")
    print(f"block {res['block']} chosen; profiles and perturbations written to {study.path}")
    return 0
