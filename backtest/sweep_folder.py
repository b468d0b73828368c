"""A sweep's folder: nothing in it is destroyed implicitly.

A sweep writes ``sweep.json`` (its manifest), ``chunks/part-NNNNN.parquet``
as chunks finish, then ``sweep.parquet`` and its pictures.  Rules:

- A folder that holds a sweep (its manifest, finished chunks or table) is
  refused unless ``resume`` (finish the same sweep: only missing chunks
  run) or ``overwrite`` (replace it) is given; the refusal names both.
- ``overwrite`` deletes nothing before the new sweep has finished: the old
  sweep's files are moved into ``.replaced-ID/`` inside the folder and
  removed only once the new ``sweep.parquet`` is written.  A new sweep that
  fails or is interrupted before finishing a chunk puts the old one back; one
  that finished some leaves its own chunks (resumable with ``resume``) and
  the old sweep in ``.replaced-ID/``.
- ``resume`` with another sweep's folder is refused (grid, data or
  settings differ); with ``overwrite`` too, that sweep is replaced.
- The manifest is written to a temporary name and renamed, so it is never
  half written.

The risk lab's folders follow the same rules with ``kind="risk"``
(``risk.json`` its manifest, ``risk.parquet`` its table, ``fan.parquet``
its fan; the fan samples in each part's ``fan`` column); a folder holding
the other kind is refused.
"""
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

from .atomic import holds_run, picture, refuse_others
from .errors import UserError

SWEEP_FILES = ("sweep.json", "sweep.parquet", "chunks", "heatmap.png", "leverage.png", "equity")
RISK_FILES = ("risk.json", "risk.parquet", "fan.parquet", "chunks", "frontier.png", "fan.png", "report.pdf")
FILES = {"sweep": SWEEP_FILES, "risk": RISK_FILES}
# what each kind of result folder holds, by its manifest (a run's: its summary)
RESULTS = {"summary.json": "a run's result", "sweep.json": "a sweep", "risk.json": "a risk run",
           "walkforward.json": "a walk-forward"}


def chunk_path(out: Path, k: int) -> Path:
    return out / "chunks" / f"part-{k:05d}.parquet"


def finished_chunks(out: Path) -> set:
    return {int(p.stem.split("-")[1]) for p in (out / "chunks").glob("part-*.parquet")}


def holds_sweep(out: Path, kind="sweep") -> bool:
    return (out / f"{kind}.json").exists() or (out / f"{kind}.parquet").exists() or bool(finished_chunks(out))


def stored_manifest(out: Path, kind="sweep"):
    try:
        old = json.loads((out / f"{kind}.json").read_text())
    except (OSError, ValueError, RecursionError):  # (a manifest nested thousands deep: no one's we wrote)
        return None
    return old if isinstance(old, dict) else None


def stored_chunk_size(out: Path, sweep_id: str, kind="sweep"):
    """The chunk size a resumable sweep in ``out`` was cut into (chunk files
    are only meaningful with it), or None."""
    old = stored_manifest(out, kind)
    return old.get("chunk_size") if old and old.get("id") == sweep_id else None


def bars_entry(bars, out: Path, kind="sweep") -> list:
    """The manifest's record of the bars: first and last time, count, and a
    hash of their times and prices, so ``--resume`` never mixes two markets.
    SHA-256 (the CPU's SHA instructions: ~1.6 ms for the bundled hourly bars
    against BLAKE2b's ~4.6 ms, the hash before 2026-12-08); a folder whose
    manifest holds a BLAKE2b hash of the same span (32 hex digits) gets one
    again, so a sweep begun before resumes after the upgrade."""
    entry = [str(bars.index[0]), str(bars.index[-1]), len(bars)]
    old = (stored_manifest(out, kind) or {}).get("bars")
    legacy = isinstance(old, list) and old[:3] == entry and len(old) == 4 and isinstance(old[3], str) and len(
        old[3]) == 32
    digest = hashlib.blake2b(digest_size=16) if legacy else hashlib.sha256()
    digest.update(bars.index.asi8.tobytes())
    for col in ("open", "high", "low", "close"):
        digest.update(bars[col].to_numpy(np.float64).tobytes())
    return entry + [digest.hexdigest()]


def manifest_id(manifest: dict) -> str:
    """A manifest's id (what ``--resume`` compares): SHA-256 of its sorted JSON, 16 hex digits."""
    return hashlib.sha256(json.dumps(manifest, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_digest(path) -> str:
    """A settings file's fingerprint in a manifest (a changed file is a different sweep): 16 hex digits of SHA-256."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def heatmap_pair(text: str, axes, hint: str) -> list:
    """``--heatmap X,Y``: two different names of ``axes``, else one line ending in ``hint``."""
    pair = [a.strip() for a in text.split(",")]
    if len(pair) != 2 or any(a not in axes for a in pair) or pair[0] == pair[1]:
        raise UserError(f"--heatmap {text}: name two different grid axes{hint}")
    return pair


def check_other(out: Path, what: str, own: str, holds: bool):
    """Refuse ``out`` for a ``what`` (sweep, risk run, walk-forward) whose
    manifest is ``own`` when it is a file, holds another kind of result, or
    holds other files and no such result (``holds``): a user's files are
    never written over (a wrong ``--out``, as ``atomic.check_target`` for runs)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: is a file, not a folder")
    for name, kind in RESULTS.items():
        # (a run's result: both its files; a user's own summary.json alone is another file)
        if name != own and ((out / name).exists() if name != "summary.json" else holds_run(out)):
            raise UserError(f"--out {out}: holds {kind} ({name}); give the {what} its own folder")
    if out.is_dir() and not holds:
        kept = sorted(p.name for p in out.glob(".replaced-*"))
        if kept:  # a sweep stopped while it moved the one it replaced aside (the next finish would delete it)
            raise UserError(f"--out {out}: holds a {what} set aside in {kept[0]} by one that stopped before its "
                            "first file; move its files back into the folder (--resume) or remove it")
        refuse_others(f"--out {out}", out, what, hidden=False)  # (.DS_Store, a tmp file: no one's result)


def check_folder(out: Path, sweep_id: str, resume: bool, overwrite: bool, kind="sweep"):
    """Refuse, before any work, a folder whose sweep would be lost or mixed."""
    check_other(out, {"risk": "risk run"}.get(kind, kind), f"{kind}.json", out.is_dir() and holds_sweep(out, kind))
    if not out.is_dir() or not holds_sweep(out, kind):
        return
    old = stored_manifest(out, kind)
    same = old is not None and old.get("id") == sweep_id
    if resume and (same or overwrite):
        return
    if resume:
        raise UserError(f"--resume: {out} holds a different {kind} (other grid, data or settings); "
                        "--overwrite replaces it")
    if overwrite:
        return
    done = len(finished_chunks(out))
    what = f"the same {kind}" if same else f"another {kind}"
    state = "complete" if (out / f"{kind}.parquet").exists() else f"{done:,} finished chunks"
    raise UserError(f"--out {out}: holds {what} ({state}); --resume finishes it, --overwrite replaces it")


def prepare_folder(out: Path, manifest: dict, resume: bool, overwrite: bool, kind="sweep") -> set:
    """Make ``out`` ready for the sweep ``manifest``; return the chunks
    already finished (with ``resume``).  ``check_folder`` has passed."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        old = stored_manifest(out, kind)
        if resume and old is not None and old.get("id") == manifest["id"]:
            (out / "chunks").mkdir(exist_ok=True)
            return finished_chunks(out)
        if holds_sweep(out, kind):  # overwrite: kept aside until the new sweep is complete
            keep = out / f".replaced-{(old or {}).get('id', 'unknown')}"
            keep.mkdir(exist_ok=True)
            for name in FILES[kind]:
                if (out / name).exists():
                    os.replace(out / name, keep / name)
        (out / "chunks").mkdir(exist_ok=True)
        write_manifest(out, manifest, kind)
    except OSError as exc:
        raise UserError(f"--out {out}: cannot write ({exc.strerror or exc})") from None
    return set()


def write_manifest(out: Path, manifest: dict, kind="sweep"):
    tmp = out / f".{kind}.json.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    os.replace(tmp, out / f"{kind}.json")


def undo_overwrite(out: Path, kind="sweep"):
    """A new sweep (``overwrite``) failed before finishing any chunk: put the
    sweep it was replacing back as it was."""
    kept = list(out.glob(".replaced-*"))
    if len(kept) != 1 or finished_chunks(out):
        return
    for name in FILES[kind]:
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    for entry in kept[0].iterdir():
        os.replace(entry, out / entry.name)
    kept[0].rmdir()


def finish_folder(out: Path):
    """The new sweep is complete: what it replaced can go."""
    for keep in out.glob(".replaced-*"):
        shutil.rmtree(keep, ignore_errors=True)


def redraw_sweep(folder: Path, rank="sharpe", heatmap=None) -> list:
    """``backtest report`` on a sweep folder: redraw ``heatmap.png`` (two
    grid axes with several values, or ``heatmap``) and ``leverage.png`` from
    ``sweep.parquet``.  Each picture is written aside and renamed."""
    import pandas as pd

    from .report.sweep import plot_heatmap, plot_leverage

    manifest = stored_manifest(folder)
    table_path = folder / "sweep.parquet"
    if manifest is None:
        raise UserError(f"{folder / 'sweep.json'}: cannot read it; not a sweep marginbt wrote, or damaged")
    if not table_path.exists():
        raise UserError(f"{table_path}: missing; the sweep did not finish (run it again with --resume)")
    try:
        table = pd.read_parquet(table_path)
    except Exception:  # pyarrow's errors: a damaged file
        raise UserError(f"{table_path}: cannot read it; not a table marginbt wrote, or damaged") from None
    rank = rank or "sharpe"
    if rank not in table.columns:
        raise UserError(f"--rank {rank}: not a column of {table_path}")
    grid = manifest.get("grid") or {}
    axes = [k for k, v in grid.items() if isinstance(v, list) and len(v) > 1 and k in table.columns]
    pair = heatmap_pair(heatmap, table.columns, f" of the sweep ({', '.join(axes) or 'none'})") if heatmap else axes[:2]
    wrote = []
    if len(pair) == 2:
        picture(lambda p: plot_heatmap(table, pair[0], pair[1], rank, p), folder / "heatmap.png")
        wrote.append(f"wrote {folder / 'heatmap.png'}")
    if "leverage" in table.columns and table["leverage"].nunique() > 1:
        picture(lambda p: plot_leverage(table, "leverage", rank, p), folder / "leverage.png")
        wrote.append(f"wrote {folder / 'leverage.png'}")
    if not wrote:
        wrote.append(f"{folder}: no axis with several values; nothing to draw")
    return wrote
