"""Opening the user's files: existence checks, delimited tables, column look-ups.

Every reader goes through these helpers so that a missing file, a truncated gzip or a
misnamed column is reported the same way: as an :class:`~workbench.errors.InputFormatError`
or :class:`~workbench.errors.ValidationError` that names the file, what was expected and
what was found.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from workbench.errors import InputFormatError, ValidationError

PathLike = str | os.PathLike


def existing_file(path: PathLike, what: str) -> Path:
    """Return ``path`` as a Path if it is a readable file, else raise InputFormatError.

    Parameters
    ----------
    path : str or os.PathLike
        The file (``~`` is expanded).
    what : str
        What the file is, for the message.

    Returns
    -------
    pathlib.Path
        The file.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise InputFormatError(f"{what} {path} does not exist.",
                               "check the path (relative paths start from the current folder).")
    if not path.is_file():
        raise InputFormatError(f"{what} {path} is a folder, not a file.",
                               "give the file itself.")
    return path


def existing_dir(path: PathLike, what: str) -> Path:
    """``path`` as a Path if it is an existing folder, else raise InputFormatError.

    Parameters
    ----------
    path : str or os.PathLike
        The folder (``~`` is expanded).
    what : str
        What the folder is, for the message.

    Returns
    -------
    pathlib.Path
        The folder.
    """
    path = Path(path).expanduser()
    if not path.is_dir():
        raise InputFormatError(
            f"{what} {path} {'is a file, not a folder' if path.exists() else 'does not exist'}.",
            "give the folder that holds the files.")
    return path


def _guess_sep(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz").removesuffix(".bz2").removesuffix(".zip")
    if name.endswith((".tsv", ".tab")):
        return "\t"
    if name.endswith(".csv"):
        return ","
    # .txt and friends: look at the first line
    import gzip

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", errors="replace") as fh:
            first = fh.readline()
    except (OSError, EOFError) as exc:
        raise InputFormatError(f"{path} cannot be read: {exc}.",
                               "the file may be truncated or not the compression its name "
                               "says; download it again.") from exc
    return "\t" if first.count("\t") >= first.count(",") else ","


def read_table(path: PathLike, what: str = "table", **kw) -> pd.DataFrame:
    """Read a CSV / TSV (optionally gzipped) or Parquet file into a DataFrame.

    The separator follows the extension (``.csv``, ``.tsv``) or, for ``.txt``, the first
    line. Any parser failure becomes an InputFormatError naming the file.

    Parameters
    ----------
    path : str or os.PathLike
        The file: ``.csv``, ``.tsv``, ``.txt`` (gzipped or not), ``.parquet`` or ``.pq``.
    what : str
        What the file is, for the message.
    **kw
        Passed to :func:`pandas.read_csv` (``sep`` overrides the guessed separator).

    Returns
    -------
    pandas.DataFrame
        The table.
    """
    path = existing_file(path, what)
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        sep = kw.pop("sep", None) or _guess_sep(path)
        return pd.read_csv(path, sep=sep, **kw)
    except InputFormatError:
        raise
    except pd.errors.EmptyDataError as exc:
        raise InputFormatError(f"{what} {path} is empty.", "give a file with a header and rows.") \
            from exc
    except Exception as exc:  # parser errors, truncated gzip (EOFError), bad parquet
        raise InputFormatError(
            f"{what} {path} cannot be parsed: {type(exc).__name__}: {exc}",
            "check that it is a complete CSV/TSV/Parquet file (a truncated download or a "
            "wrong extension gives this error).",
        ) from exc


def suggest(name: str, candidates: Iterable[str]) -> str:
    """A "did you mean" hint: up to three close matches of ``name`` among ``candidates``.

    Parameters
    ----------
    name : str
        The name that was not found.
    candidates : iterable of str
        The names that exist.

    Returns
    -------
    str
        ``" (did you mean 'x'?)"``, or an empty string when nothing is close.
    """
    close = difflib.get_close_matches(str(name), [str(c) for c in candidates], n=3, cutoff=0.6)
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""


def show(values: Sequence, limit: int = 8) -> str:
    """The first ``limit`` values joined by commas, with how many more there are.

    Parameters
    ----------
    values : sequence
        The values (shown with ``str``).
    limit : int
        How many to show.

    Returns
    -------
    str
        For example ``"a, b, c and 4 more"``.
    """
    values = [str(v) for v in values]
    head = ", ".join(values[:limit])
    return head + (f" and {len(values) - limit} more" if len(values) > limit else "")


def pick_column(df: pd.DataFrame, given: str | None, candidates: Sequence[str], role: str,
                where: str, option: str | None = None, required: bool = True) -> str | None:
    """The column that plays ``role``: the one the user named, else the first candidate present.

    Raises ValidationError naming the missing column, near matches and the columns present.

    Parameters
    ----------
    df : pandas.DataFrame
        The table.
    given : str or None
        The column the user named (it must be present); None to look among ``candidates``.
    candidates : sequence of str
        Usual names of the column, in order of preference (matched case-insensitively too).
    role : str
        What the column holds, for the message.
    where : str
        What the table is, for the message.
    option : str or None
        The command-line option that names the column, quoted in the fix; None for none.
    required : bool
        Whether a missing column is an error; otherwise None is returned.

    Returns
    -------
    str or None
        The column's name, or None when none is found and not ``required``.
    """
    cols = [str(c) for c in df.columns]
    flag = f" (--{option})" if option else ""
    if given is not None:
        if given not in cols:
            raise ValidationError(
                f"{where} has no column {given!r} for the {role}{suggest(given, cols)}; "
                f"columns present: {show(cols, 12)}.",
                f"name one of the columns present as the {role}{flag}.")
        return given
    lower = {c.lower(): c for c in cols}
    for cand in candidates:
        if cand in cols:
            return cand
        if cand.lower() in lower:
            return lower[cand.lower()]
    if not required:
        return None
    raise ValidationError(
        f"{where} has no {role} column: looked for {show(candidates, 10)}; columns present: "
        f"{show(cols, 12)}.",
        f"name the column that holds the {role}{flag}.")
