"""``workbench validate STUDY``: the deep checks of the Study contract."""

from __future__ import annotations

HELP = "check a Study deeply: files readable, screen columns, finite embeddings"


def add_arguments(parser) -> None:
    parser.add_argument("study", help="path of the NAME.study folder")


def run(args) -> int:
    from workbench.data.study import Study

    study = Study.open(args.study)
    study.validate(deep=True)
    print(f"{study.path}: valid ({len(study.artefacts)} artefact(s), "
          f"{len(study.provenance)} step(s) of provenance)")
    return 0
