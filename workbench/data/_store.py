"""The low level of the Study store: contained paths, locks, and crash recovery.

Three kinds of lock keep many processes safe on one Study (all are ``flock`` locks, so the
kernel drops them when their process dies, however it dies):

- the **Study lock** (``.lock``): readers hold it shared while they read ``study.json`` and
  an artefact; a commit, and the recovery of a dead transaction, hold it exclusively for the
  few renames of a swap. A reader therefore never sees an artefact half swapped.
- the **owner lock** of a transaction (``.staging/<id>/owner.lock``): held by the writing
  process for the whole life of its transaction. Recovery touches a staging folder only
  when it can take that lock, that is when its owner is provably gone. Opening a Study
  while another process runs a step leaves that step alone.
- the **writer lock** of an artefact (``.locks/<name>.lock``): one writer per artefact at a
  time. A second step that stages the same artefact is told which step holds it and since
  when, instead of racing it.

Every path read from ``study.json`` or a journal goes through :func:`inside`, which refuses
absolute paths, ``..`` and links that lead out of the Study, so a crafted Study cannot make
the workbench move or delete anything outside its own folder.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
from pathlib import Path, PurePosixPath

from workbench.errors import StudyBusyError, StudyCorruptError

STUDY_FILE = "study.json"
STAGING = ".staging"
LOCK_FILE = ".lock"
LOCKS_DIR = ".locks"
OWNER_LOCK = "owner.lock"
#: Names in a Study's root that no artefact may take.
RESERVED = frozenset({STUDY_FILE, STAGING, LOCK_FILE, LOCKS_DIR})


def inside(root: Path, rel: object, *, what: str = "a path") -> Path:
    """``root / rel`` if ``rel`` is a plain relative path that stays inside ``root``.

    Raises :class:`StudyCorruptError` for anything else: a non-string, an absolute path,
    ``..``, a reserved name, or a link whose target lies outside the Study.

    Parameters
    ----------
    root : pathlib.Path
        The Study folder.
    rel : object
        The path to check, as read from ``study.json`` or a journal.
    what : str
        What the path is, for the error message.

    Returns
    -------
    pathlib.Path
        ``root / rel`` (not resolved).
    """
    def refuse(reason: str) -> StudyCorruptError:
        return StudyCorruptError(
            f"{what} in {root} is {rel!r}, which {reason}; nothing was read or changed.",
            "artefact paths must be names inside the Study folder. Restore study.json from "
            "a backup, or rebuild the Study with the step that wrote it.")

    if not isinstance(rel, str) or not rel or "\x00" in rel:
        raise refuse("is not a file name")
    pure = PurePosixPath(rel)
    if pure.is_absolute() or rel.startswith(("/", "\\")) or ":" in pure.parts[0]:
        raise refuse("is absolute")
    if any(part in ("..", "") for part in pure.parts) or "\\" in rel:
        raise refuse("leads out of the Study")
    if pure.parts[0] in RESERVED:
        raise refuse("is a name the Study reserves for itself")
    path = root / pure
    base = root.resolve()
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError) as exc:  # link loops
        raise refuse(f"cannot be resolved ({exc})") from exc
    if resolved == base or base not in resolved.parents:
        raise refuse("resolves outside the Study")
    return path


def remove(path: Path) -> None:
    """Delete a file, folder or link (a link is unlinked, never followed).

    Parameters
    ----------
    path : pathlib.Path
        What to delete; nothing happens when it does not exist.
    """
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def cleanup_staging_root(root: Path) -> None:
    """Remove the Study's staging folder when it is empty (a folder, not a link).

    Parameters
    ----------
    root : pathlib.Path
        The Study folder.
    """
    st = root / STAGING
    with contextlib.suppress(OSError):
        if st.is_dir() and not st.is_symlink() and not any(st.iterdir()):
            st.rmdir()


# ---------------------------------------------------------------------- locks
@contextlib.contextmanager
def study_lock(root: Path, *, shared: bool = False):
    """The Study lock, shared (readers) or exclusive (swaps). On a read-only Study a shared
    lock cannot be taken and is not needed (nobody can write), so reading goes ahead.

    Parameters
    ----------
    root : pathlib.Path
        The Study folder.
    shared : bool
        A shared (reader) lock instead of an exclusive one.

    Yields
    ------
    None
        While the lock is held.
    """
    try:
        fh = open(root / LOCK_FILE, "a+")
    except OSError as exc:
        if shared and exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
            yield
            return
        raise
    with fh:
        fcntl.flock(fh, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class OwnerLock:
    """An exclusive ``flock`` held by one process for as long as it keeps this object.

    Parameters
    ----------
    path : pathlib.Path
        The lock file (created if absent).
    info : dict or None
        Written into the lock file as JSON, so that a process that finds it taken can say who
        holds it; None leaves the file's content as it is.
    busy_message : callable or None
        Called with the holder's info (a dict) when the lock is taken; returns the
        ``(problem, fix)`` of the :class:`StudyBusyError` raised. None for a generic message.
    """

    def __init__(self, path: Path, info: dict | None = None, *, busy_message=None):
        self.path = path
        self._fh = open(path, "a+")
        try:
            fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(self._fh)
            self._fh.close()
            self._fh = None
            raise StudyBusyError(*(busy_message(holder) if busy_message else
                                   (f"{path} is locked by another process ({holder}).",
                                    "wait for it to finish."))) from None
        if info is not None:
            self._fh.seek(0)
            self._fh.truncate()
            self._fh.write(json.dumps(info))
            self._fh.flush()

    def release(self) -> None:
        """Release the lock and close its file (a second call does nothing).

        """
        if self._fh is not None:
            with contextlib.suppress(OSError, ValueError):
                fcntl.flock(self._fh, fcntl.LOCK_UN)
                self._fh.close()
            self._fh = None

    def __del__(self):  # pragma: no cover - safety net
        self.release()


def _read_holder(fh) -> dict:
    try:
        fh.seek(0)
        return json.loads(fh.read() or "{}")
    except (OSError, ValueError):
        return {}


def writer_lock(root: Path, name: str, info: dict) -> OwnerLock:
    """Take the writer lock of artefact ``name`` or raise :class:`StudyBusyError`.

    Parameters
    ----------
    root : pathlib.Path
        The Study folder.
    name : str
        The artefact's name.
    info : dict
        Who takes the lock (tool, process id, start time), shown to a step that finds it taken.

    Returns
    -------
    OwnerLock
        The held lock; release it with :meth:`OwnerLock.release`.
    """
    d = root / LOCKS_DIR
    d.mkdir(exist_ok=True)

    def busy(holder: dict):
        who = holder.get("tool", "another step")
        since = holder.get("started", "an unknown time")
        pid = holder.get("pid", "?")
        return (f"busy: step {who!r} (process {pid}) has been writing artefact {name!r} of "
                f"{root.name} since {since}.",
                "wait for that step to finish (or stop it), then run this one again; steps "
                "that write other artefacts can run at the same time.")

    return OwnerLock(d / f"{name}.lock", info, busy_message=busy)


def owner_is_alive(tx: Path) -> bool:
    """Whether the process that owns staging folder ``tx`` still runs (holds its lock).

    Parameters
    ----------
    tx : pathlib.Path
        A transaction's staging folder.

    Returns
    -------
    bool
        True when its owner lock is held by a live process, or when that cannot be told; False
        when the lock file is missing, a link, or free.
    """
    lock = tx / OWNER_LOCK
    if not lock.is_file() or lock.is_symlink():
        return False
    try:
        with open(lock, "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(fh, fcntl.LOCK_UN)
            return False
    except OSError:
        return True  # cannot tell: leave it alone


# ---------------------------------------------------------------------- recovery
def recover(root: Path) -> list[str]:
    """Roll back or clean up the transactions whose owner died; return their ids.

    A live transaction (its owner still holds its lock) is never touched. For a dead one, a
    journal whose id is the Study's ``last_transaction`` had committed: only its leftovers
    are removed. Any other journal marks a swap cut short: the artefacts it moved are put
    back. Every path in the journal must lie inside the Study (see :func:`inside`).

    Parameters
    ----------
    root : pathlib.Path
        The Study folder.

    Returns
    -------
    list of str
        The ids of the transactions rolled back or cleaned up (empty for a read-only Study).
    """
    st = root / STAGING
    if st.is_symlink():
        raise StudyCorruptError(f"{st} is a link; the Study's staging area must be a folder.",
                                f"remove the link {st} (nothing in it belongs to the Study).")
    if not st.is_dir() or not any(st.iterdir()):
        return []
    done: list[str] = []
    try:
        ctx = study_lock(root)
        ctx.__enter__()
    except OSError:
        return []  # read-only Study: nothing can be repaired, nothing is lost by reading
    try:
        try:
            last = json.loads((root / STUDY_FILE).read_text()).get("last_transaction")
        except (ValueError, OSError, AttributeError):
            last = None
        if not st.is_dir():  # the last writer cleaned up before we had the lock
            return done
        for tx in sorted(st.iterdir()):
            if tx.is_symlink() or not tx.is_dir():
                remove(tx)  # nothing a transaction writes; never followed
                continue
            if owner_is_alive(tx):
                continue
            journal = tx / "journal.json"
            if journal.is_file() and tx.name != last:
                _roll_back(root, tx, json.loads(journal.read_text()).get("items", []))
            elif journal.is_file():  # committed: finish removing the generations it retired
                for rel in json.loads(journal.read_text()).get("expire", []):
                    remove(inside(root, rel, what="a journal path"))
            remove(tx)
            done.append(tx.name)
        cleanup_staging_root(root)
    finally:
        ctx.__exit__(None, None, None)
    return done


def _roll_back(root: Path, tx: Path, items: list) -> None:
    checked = []
    for item in items:  # check every path before moving anything
        new = inside(root, item["path"], what="a journal path") if item.get("path") else None
        old = inside(root, item["old_path"], what="a journal path") \
            if item.get("old_path") else None
        checked.append((item, new, old))
    for item, new, old in reversed(checked):
        if new is not None and (new.exists() or new.is_symlink()) \
                and not (tx / "new" / item.get("staged", item["path"])).exists():
            remove(new)  # the new one had been swapped in
        if old is not None:
            aside = tx / "old" / item["old_path"]
            if aside.exists() or aside.is_symlink():
                os.replace(aside, old)
