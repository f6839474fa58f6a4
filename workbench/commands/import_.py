"""``workbench import KIND PATH --out STUDY``: bring real data into a Study.

One sub-subcommand per reader in :mod:`workbench.data.readers`. Every import checks the
input completely before writing, then writes in one transaction with provenance; a failed
import leaves an existing Study as it was (and creates none).
"""

from __future__ import annotations

import argparse

HELP = "import real data (images, profiles, velocity, gi, guides, relationships) into a Study"
DESCRIPTION = (
    "Bring real data into a Study (created if --out does not exist). Kinds:\n"
    "  images         folder of TIFF fields (+ plate map) -> 'images' crops and 'fields'\n"
    "  profiles       well-level profile table with Metadata_ columns, or DeepProfiler .npz\n"
    "  velocity       AnnData (.h5ad/.zarr) with layers spliced/unspliced -> 'velocity'\n"
    "  gi             square genetic-interaction matrix (Norman 2019 layout) -> 'gi_scores'\n"
    "  guides         paired-guide count table + library annotation -> 'guide_counts'\n"
    "  relationships  EFAAR pair files (entity1,entity2) or complex clusters -> 'relationships'\n"
    "Run `workbench import KIND --help` for the options of each kind."
)


def _channels(text: str):
    """``"5=DNA,2=ER"`` -> {"5": "DNA", "2": "ER"}; ``"DAPI,GFP"`` -> ["DAPI", "GFP"]."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if all("=" in t for t in items):
        return {k.strip(): v.strip() for k, v in (t.split("=", 1) for t in items)}
    if any("=" in t for t in items):
        raise argparse.ArgumentTypeError("write either KEY=NAME pairs or plain keys, not both")
    return items


def _common(p, what: str) -> None:
    p.add_argument("--out", "-o", required=True, metavar="STUDY",
                   help=f"Study folder to write {what} into (created if it does not exist)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing Study at --out instead of adding to it")


def add_arguments(parser) -> None:
    """Declare the ``workbench import`` kinds (images, profiles, velocity, gi, guides, relationships) and their arguments.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser; the arguments are added to it.
    """
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = parser.add_subparsers(dest="kind", metavar="KIND", required=True)

    p = sub.add_parser("images", help="folder of TIFF fields + plate map -> crops with masks",
                       description="Tile microscope fields into single-cell crops centred on "
                       "nuclei (from *_MaskNuclei.tiff masks) or a regular grid; write "
                       "'images' (crops, masks, screen table) and 'fields' (whole fields).")
    p.add_argument("path", help="folder with the TIFFs (searched recursively)")
    _common(p, "'images' and 'fields'")
    p.add_argument("--platemap", help="CSV/TSV with a well column and a perturbation column")
    p.add_argument("--perturbation-column", help="plate-map column with the perturbation "
                   "(default: perturbation, genotype, treatment, ...)")
    p.add_argument("--well-column", help="plate-map column with the well (default: well, "
                   "well_position, Metadata_Well, or WellRow+WellCol)")
    p.add_argument("--control", help="control label, e.g. WT or DMSO (default: a usual one)")
    p.add_argument("--perturbation", help="without a plate map: the perturbation of all fields")
    p.add_argument("--pattern", default="nf1",
                   help="file-name regex with groups well (or row, col), site, channel, matched "
                   "against the name without .tif; presets: nf1 (D6_01_1_2_DAPI_001.tif), jump "
                   "(r03c03f03p01-ch5sk1fk1fl1.tiff). Default: nf1")
    p.add_argument("--channels", type=_channels,
                   help="channels to keep, in order: KEY=NAME pairs (5=DNA,2=ER,...) or keys "
                   "(DAPI,GFP,RFP). Default: all found, sorted")
    p.add_argument("--plate", help="plate name (default: the folder's name)")
    p.add_argument("--batch", help="batch name (default: the plate)")
    p.add_argument("--crop-size", type=int, default=96, help="crop side in pixels (default 96)")
    p.add_argument("--center-on", help="mask kind to centre crops on (default: nuclei if present)")
    p.add_argument("--min-area", type=int, default=50,
                   help="smallest object (pixels) that gets a crop (default 50)")
    p.add_argument("--no-fields", action="store_true", help="do not keep the whole fields")
    p.add_argument("--pixel-size-um", type=float, help="pixel size in micrometres")

    p = sub.add_parser("profiles", help="profile table (Metadata_ columns) or DeepProfiler .npz",
                       description="Read a well-level profile table (pycytominer: Metadata_* "
                       "columns + features) or DeepProfiler single-cell .npz files into "
                       "'profiles'.")
    p.add_argument("path", nargs="+", help="table (.csv[.gz]/.tsv/.parquet), or .npz file(s) "
                   "or a folder of them")
    _common(p, "'profiles'")
    p.add_argument("--kind", choices=["auto", "table", "deepprofiler"], default="auto",
                   dest="profile_kind", help="input format (default: from the extension)")
    p.add_argument("--control", help="control label (default: found, e.g. DMSO)")
    p.add_argument("--perturbation-column", help="column (or DeepProfiler metadata key) with "
                   "the perturbation (default: Metadata_broad_sample, ... / Compound)")
    p.add_argument("--plate-column", help="default Metadata_Plate")
    p.add_argument("--well-column", help="default Metadata_Well")
    p.add_argument("--batch-column", help="default: batch = plate")
    p.add_argument("--dose-column", help="default Metadata_mmoles_per_liter / Metadata_dose")
    p.add_argument("--nan", choices=["error", "drop-features", "drop-rows"], default="error",
                   help="what to do with NaN features (default: error)")
    p.add_argument("--index", help="DeepProfiler index CSV (plate, well, site, treatment)")

    p = sub.add_parser("velocity", help="AnnData with spliced/unspliced layers",
                       description="Check and import spliced/unspliced counts as 'velocity'.")
    p.add_argument("path", help=".h5ad or .zarr AnnData")
    _common(p, "'velocity'")
    p.add_argument("--allow-normalized", action="store_true",
                   help="accept non-integer (pre-processed) layers")
    p.add_argument("--cell-type-key", help="obs column with cell types (default: clusters, ...)")

    p = sub.add_parser("gi", help="genetic-interaction matrix -> tidy pairs",
                       description="Read a square gene x gene GI score matrix (or a folder laid "
                       "out like Norman 2019) into the 'gi_scores' pair table.")
    p.add_argument("path", help="matrix CSV/TSV, or a folder with processed_emap.csv[.gz]")
    _common(p, "'gi_scores'")
    p.add_argument("--singles", help="single-phenotype table (gene, value)")
    p.add_argument("--doubles", help="square matrix of double-perturbation phenotypes")
    p.add_argument("--single-column", help="value column of --singles")

    p = sub.add_parser("guides", help="paired-guide counts + library -> tidy counts",
                       description="Join a pgRNA count table with its library annotation into "
                       "'guide_counts' (one row per construct x sample).")
    p.add_argument("path", help="count table: id + one integer column per sample")
    _common(p, "'guide_counts'")
    p.add_argument("--library", required=True,
                   help="library annotation (pgRNA_ID, target1, target2, target_type)")
    p.add_argument("--id-column", help="id column of the count table (default: id)")

    p = sub.add_parser("relationships", help="EFAAR pair files or complex clusters",
                       description="Read known relationships (entity1,entity2 CSV, or "
                       "NAME<TAB>GENES cluster files) into 'relationships', symmetric and "
                       "deduplicated, with a source column.")
    p.add_argument("path", nargs="+", help="one or more annotation files")
    _common(p, "'relationships'")
    p.add_argument("--sources", help="comma-separated source names, one per file")


def run(args) -> int:
    """Import the user's files into a Study with the reader of the chosen kind and print what was written.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed arguments (see :func:`add_arguments`).

    Returns
    -------
    int
        0 once the artefacts are written.
    """
    from workbench.data import readers

    kind = args.kind
    if kind == "images":
        study = readers.import_images(
            args.path, args.out, args.platemap, crop_size=args.crop_size,
            center_on=args.center_on, min_area=args.min_area, keep_fields=not args.no_fields,
            pixel_size_um=args.pixel_size_um, overwrite=args.overwrite, pattern=args.pattern,
            channels=args.channels, perturbation_column=args.perturbation_column,
            well_column=args.well_column, control=args.control,
            perturbation=args.perturbation, plate=args.plate, batch=args.batch)
    elif kind == "profiles":
        opts = {}
        pk = args.profile_kind
        is_dp = pk == "deepprofiler" or (pk == "auto" and args.path[0].endswith(".npz"))
        if is_dp:
            if args.perturbation_column:
                opts["perturbation_key"] = args.perturbation_column
        else:
            for key in ("perturbation_column", "plate_column", "well_column", "batch_column",
                        "dose_column"):
                if getattr(args, key):
                    opts[key] = getattr(args, key)
            opts["nan_policy"] = args.nan.replace("-", "_")
        study = readers.import_profiles(args.path if len(args.path) > 1 else args.path[0],
                                        args.out, kind=pk, index=args.index,
                                        control=args.control, overwrite=args.overwrite, **opts)
    elif kind == "velocity":
        study = readers.import_velocity(args.path, args.out, overwrite=args.overwrite,
                                        require_integer=not args.allow_normalized,
                                        cell_type_key=args.cell_type_key)
    elif kind == "gi":
        study = readers.import_gi(args.path, args.out, overwrite=args.overwrite,
                                  singles=args.singles, doubles=args.doubles,
                                  single_column=args.single_column)
    elif kind == "guides":
        study = readers.import_guide_counts(args.path, args.out, library=args.library,
                                            overwrite=args.overwrite, id_column=args.id_column)
    elif kind == "relationships":
        sources = [s.strip() for s in args.sources.split(",")] if args.sources else None
        study = readers.import_relationships(args.path, args.out, sources=sources,
                                             overwrite=args.overwrite)
    else:  # pragma: no cover - argparse restricts the choices
        raise SystemExit(f"unknown kind {kind}")
    last = study.provenance[-1]
    print(f"imported {kind} into {study.path}: "
          + ", ".join(f"{k}={v}" for k, v in (last.get("notes") or {}).items()
                      if not isinstance(v, (dict, list))))
    for name in last.get("outputs", {}):
        info = study.summary()["artefacts"][name]
        shape = {k: info[k] for k in ("n_obs", "n_vars", "n_rows", "n_crops") if k in info}
        print(f"  {name}: {shape}")
    return 0
