"""Result folders written aside and swapped in whole.

``replacing(target)`` yields a fresh temporary folder beside ``target``
(``.NAME.marginbt-new-PID``).  When the block ends without an error, the
previous folder is moved aside (``.NAME.marginbt-old``), the new one is
renamed into place and the old one removed.  Any failure while writing (an
exception, a full disk, a file-size limit) removes the temporary folder and
leaves the previous folder exactly as it was; a folder that did not exist
is not created (nor are its missing parents left behind).

A swap is two renames, so a kill can fall between them.  What a killed run
leaves, and what the next run (``recover``, called by ``replacing``,
``Result.load`` and ``backtest report``) does with it:

- killed while writing: the previous folder is untouched; the temporary
  folder of a process that no longer runs is removed (it was never a
  result);
- killed between the renames: ``target`` is missing and the previous
  folder waits at ``.NAME.marginbt-old``; it is put back (nothing lost);
- killed after the second rename: the new folder is complete and in place;
  the old one aside is removed, as the finished swap would have.

Entries of the previous folder that the new result does not write (a
user's notes beside the tables) are copied into the new folder before the
swap, except, when a run is saved (``drop=RUN_OUTPUTS``), the files a run
writes: a run with ``--no-report`` into a folder whose run had a report
leaves no report of the other run beside its tables.  A folder that holds something else than
a result (no ``summary.json`` and ``run.json``, not empty) is refused
(``check_target``), so a wrong ``--out`` never replaces someone's folder.  Two processes writing the same
folder at the same time are not supported.
"""
import contextlib
import os
import shutil
from pathlib import Path

from .errors import UserError

NEW = ".marginbt-new-"
OLD = ".marginbt-old"
MARKERS = ("summary.json", "run.json")  # what makes a folder a run's result folder (both: a user's own
# summary.json alone does not)
RUN_OUTPUTS = frozenset(MARKERS + ("equity.parquet", "trades.csv", "orders.csv", "liquidations.csv", "margin_calls.csv",
                                   "funding.csv", "transfers.csv", "loans.csv", "report.pdf", "equity.png",
                                   "margin.png", "costs.png"))  # (result.Result.write, report.pages)


def _real(target) -> Path:
    target = Path(target)
    return Path(os.path.realpath(target)) if target.is_symlink() else target


def aside(target: Path) -> Path:
    return target.with_name(f".{target.name}{OLD}")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # ours, from an earlier attempt in this process: finished or failed
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def recover(target) -> None:
    """Finish or undo what a killed run left beside ``target`` (see the
    module docstring)."""
    target = _real(target)
    old = aside(target)
    if old.exists() or old.is_symlink():
        if not target.exists():
            os.rename(old, target)  # killed between the renames: the previous folder comes back
        else:
            shutil.rmtree(old, ignore_errors=True)  # killed after them: the swap was complete
    parent = target.parent
    if parent.is_dir():
        for tmp in parent.glob(f".{target.name}{NEW}*"):
            pid = tmp.name.rsplit("-", 1)[-1]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(tmp, ignore_errors=True)


def holds_run(folder: Path) -> bool:
    """Whether ``folder`` holds a run's result (both ``MARKERS``)."""
    return all((folder / m).exists() for m in MARKERS)


def refuse_others(name: str, folder: Path, what: str, hidden=True) -> None:
    """One line refusing ``folder`` when it holds files (the hidden ones
    too, unless ``hidden`` is False) and no ``what``."""
    entries = sorted(p.name for p in folder.iterdir() if hidden or not p.name.startswith("."))
    if entries:
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise UserError(f"{name}: holds other files ({shown}) and no {what}; choose a new or empty folder")


def check_target(target, what="--out") -> None:
    """Refuse, before any work, a target that is a file, a folder holding
    something other than a result, or in a place that cannot be written."""
    target = _real(target)
    name = f"{what} {target}" if what else str(target)
    if target.exists() and not target.is_dir():
        raise UserError(f"{name}: is a file, not a folder")
    if target.is_dir() and not holds_run(target):
        refuse_others(name, target, "result")
    base = target.parent
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        raise UserError(f"{name}: cannot write in {base} (a file, not a folder)")
    if not os.access(base, os.W_OK | os.X_OK):
        raise UserError(f"{name}: cannot write in {base} (permission denied)")


@contextlib.contextmanager
def replacing(target, what="--out", keep=False, drop=frozenset()):
    """Write a folder aside and swap it in (see the module docstring).

    Yields the temporary folder.  ``keep``: start from a copy of the
    previous folder (``backtest report`` redraws pictures into it).
    ``what`` names the target in errors (``--out``; None: the path alone).
    ``drop``: names of the previous folder not carried over (a run's own
    outputs, when a run replaces a run).
    """
    target = _real(target)
    name = f"{what} {target}" if what else str(target)
    recover(target)
    made = []  # parents created here, removed again if nothing is written
    tmp = target.with_name(f".{target.name}{NEW}{os.getpid()}")
    try:
        for parent in reversed(target.parents):
            if not parent.exists():
                parent.mkdir()
                made.append(parent)
        if tmp.exists():
            shutil.rmtree(tmp)
        if keep and target.is_dir():
            shutil.copytree(target, tmp, symlinks=True)
        else:
            tmp.mkdir()
        yield tmp
        _carry_over(target, tmp, drop)
        _swap(target, tmp)
    except OSError as exc:
        _clean(tmp, made)
        raise UserError(f"{name}: cannot write ({exc.strerror or exc}); the previous folder is unchanged") from None
    except BaseException:
        _clean(tmp, made)
        raise


def _carry_over(target: Path, tmp: Path, drop=frozenset()):
    """Copy what the previous folder has and the new one does not write, but
    for the names in ``drop``."""
    if not target.is_dir():
        return
    for entry in target.iterdir():
        dest = tmp / entry.name
        if dest.exists() or dest.is_symlink() or entry.name in drop:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, dest, symlinks=True)
        else:
            shutil.copy2(entry, dest, follow_symlinks=False)


def _swap(target: Path, tmp: Path):
    old = aside(target)
    if target.exists():
        os.rename(target, old)  # kept aside until the new folder is in place
        os.rename(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, target)


def _clean(tmp: Path, made: list):
    shutil.rmtree(tmp, ignore_errors=True)
    for parent in reversed(made):
        with contextlib.suppress(OSError):
            parent.rmdir()


def picture(draw, path: Path):
    """One file drawn aside and renamed into ``path`` (a picture redrawn in a
    folder that stays): a failure leaves the previous file as it was."""
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")  # the extension tells matplotlib the format
    try:
        draw(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UserError(f"{path}: cannot write ({exc.strerror or exc}); the previous file is unchanged") from None
