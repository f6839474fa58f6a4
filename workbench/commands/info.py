"""``workbench info STUDY``: what a Study holds and how it was made."""

from __future__ import annotations

import json

HELP = "show what a Study holds: artefacts, ground truth, provenance"


def add_arguments(parser) -> None:
    """Declare the arguments of ``workbench info``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser; the arguments are added to it.
    """
    parser.add_argument("study", help="path of the NAME.study folder")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.add_argument("--provenance", action="store_true",
                        help="also print every step's parameters, inputs and outputs")


def run(args) -> int:
    """Print a Study's summary (artefacts, ground truth, steps), as text or JSON.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed arguments (see :func:`add_arguments`).

    Returns
    -------
    int
        0 once the summary is printed.
    """
    from workbench.data.study import Study

    study = Study.open(args.study)
    summary = study.summary()
    if study.has("ground_truth"):
        summary["ground_truth"] = _truth_summary(study.read("ground_truth"))
    if args.provenance or args.json:
        summary["provenance"] = study.provenance
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
        return 0
    print(format_summary(summary))
    if args.provenance:
        for i, p in enumerate(study.provenance, 1):
            print(f"\n[{i}] {p['tool']}  {p['started']} -> {p['finished']}  seed={p['seed']}  "
                  f"workbench {p['workbench_version']}")
            print(f"    params:  {json.dumps(p['params'], default=str)}")
            for name, digest in (p.get("inputs") or {}).items():
                print(f"    input:   {name}  sha256:{str(digest)[:12]}")
            for name, digest in (p.get("outputs") or {}).items():
                print(f"    output:  {name}  sha256:{str(digest)[:12]}")
            if p.get("notes"):
                print(f"    notes:   {json.dumps(p['notes'], default=str)[:300]}")
    return 0


def _truth_summary(truth: dict) -> dict:
    out = {}
    for key, val in truth.items():
        if isinstance(val, list):
            out[key] = f"{len(val)} item(s)"
        elif isinstance(val, dict):
            out[key] = {k: (f"{len(v)} item(s)" if isinstance(v, (list, dict)) else v)
                        for k, v in list(val.items())[:12]}
        else:
            out[key] = val
    return out


def format_summary(summary: dict) -> str:
    """Format :meth:`Study.summary` as the text ``workbench info`` prints.

    Parameters
    ----------
    summary : dict
        The summary of a Study (title, path, id, control label, artefacts, steps), optionally
        with a ``ground_truth`` entry.

    Returns
    -------
    str
        Several lines: the Study, one line per artefact, the ground truth, the steps.
    """
    lines = [f"Study {summary['title']!r}  ({summary['path']})",
             f"  id {summary['study_id']}   control label {summary['control_label']!r}",
             "", "Artefacts:"]
    if not summary["artefacts"]:
        lines.append("  (none yet)")
    for name, info in summary["artefacts"].items():
        facts = []
        if "n_obs" in info:
            facts.append(f"{info['n_obs']} x {info['n_vars']}")
        if "n_rows" in info:
            facts.append(f"{info['n_rows']} rows")
        if "n_crops" in info:
            facts.append(f"{info['n_crops']} crops {info.get('crop_shape')} "
                         f"channels {','.join(info.get('channel_names', []))}")
        if "shape" in info:
            facts.append(f"shape {info['shape']}")
        if info.get("obsm"):
            facts.append(f"obsm {','.join(info['obsm'])}")
        lines.append(f"  {name:<16} {info['kind']:<8} {info['path']:<24} v{info['version']}  "
                     f"{'  '.join(facts)}  (by {info.get('step')})")
    if "ground_truth" in summary:
        lines += ["", "Ground truth (simulated Study):"]
        for key, val in summary["ground_truth"].items():
            lines.append(f"  {key}: {val}")
    lines += ["", f"Steps: {' -> '.join(s['tool'] for s in summary['steps']) or '(none)'}"]
    return "\n".join(lines)
