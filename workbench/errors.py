"""Errors of our own, each saying what is wrong and what to do about it.

Every error the workbench raises on bad input is a :class:`WorkbenchError`. It carries two
parts: ``problem`` (what was found, naming the file, column, gene or pair) and ``fix``
(what the user can do). ``str(err)`` joins them so that a traceback reads as advice.
"""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base class: a problem with the user's input or Study, and how to fix it.

    Parameters
    ----------
    problem : str
        What is wrong, in one sentence (kept as ``.problem``).
    fix : str or None
        What to do about it (kept as ``.fix``); when given, the message ends with
        ``How to fix: <fix>``. None for no advice.
    """

    def __init__(self, problem: str, fix: str | None = None):
        self.problem = problem
        self.fix = fix
        super().__init__(problem if not fix else f"{problem}\n  How to fix: {fix}")


class StudyNotFoundError(WorkbenchError):
    """The path is not a Study (no ``study.json``) or does not exist."""


class SchemaVersionError(WorkbenchError):
    """The Study was written by a newer workbench than this one."""


class StudyCorruptError(WorkbenchError):
    """``study.json`` or an artefact cannot be read (truncated, corrupted, half-written)."""


class StudyBusyError(WorkbenchError):
    """Another process is writing the same artefact right now."""


class StudyConflictError(WorkbenchError):
    """An artefact that a step read, or writes, changed while the step ran; nothing was
    written."""


class StudyChangedError(WorkbenchError):
    """An artefact this Study object describes was replaced twice since it read
    ``study.json``: the generation it names is gone (call ``study.refresh()``)."""


class ValidationError(WorkbenchError):
    """Data that can be read but breaks the Study contract (columns, dtypes, NaNs, controls)."""


class MissingArtefactError(WorkbenchError):
    """A step needs an artefact that the Study does not hold yet; ``fix`` names the step."""


class InputFormatError(WorkbenchError):
    """A file given to a reader is not in the format the reader expects."""


class UnknownGeneError(ValidationError):
    """A gene or perturbation name that the data does not contain."""


__all__ = [
    "WorkbenchError",
    "StudyNotFoundError",
    "SchemaVersionError",
    "StudyCorruptError",
    "StudyBusyError",
    "StudyConflictError",
    "StudyChangedError",
    "ValidationError",
    "MissingArtefactError",
    "InputFormatError",
    "UnknownGeneError",
]
