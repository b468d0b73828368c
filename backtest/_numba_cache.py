"""Where numba keeps compiled code, keyed by the kernel's sources.

numba's own cache notices edits to the file of a cached function only, not
to the functions it inlines from other files: after an edit to rules.py the
kernel would run stale machine code.  Keying the cache folder on a hash of
every compiled source makes any edit a fresh compile.  ``NUMBA_CACHE_DIR``
set by the user still wins.  ``rules.py`` and ``indicators.py`` (one of
which every compiled module imports) configure it before any compiled
function is defined.
"""
import hashlib
import os
import sys
from pathlib import Path

import numba

from . import _compile_speed

_HERE = Path(__file__).resolve().parent
_configured = []
_SOURCES = ("kernel.py", "account.py", "intrabar.py", "limits.py", "replay.py", "rules.py", "records.py",
            "indicators.py", "cross.py", "kernel_multi.py", "liqprice.py", "inputs.py",  # inputs: the kernel's argument types
            "trades.py", "per_bar.py", "bar_rows.py", "medians.py", "data/clean.py", "books.py",  # the passes after a kernel
            "flows.py", "venues/binance_usdm.py", "venues/binance_usdm_cross.py", "venues/plug.py")  # the venues' rules


def configure():
    """Point numba's cache at the folder of these sources (once per process)."""
    if _configured or os.environ.get("NUMBA_CACHE_DIR"):
        return
    _configured.append(True)
    digest = hashlib.blake2b(digest_size=8)
    for name in _SOURCES:
        digest.update((_HERE / name).read_bytes())
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    folder = root / "marginbt" / f"numba-{digest.hexdigest()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # an unwritable home: numba's default (beside the sources) is used
    numba.config.CACHE_DIR = str(folder)


def cold(kernel: str = "kernel._loop") -> bool:
    """True when the cache folder holds no compiled kernel yet (a fresh
    environment, or the kernel's sources changed): the next kernel call
    compiles.  The kernel's own index, not any: the bar checks compile a
    small helper into the same folder before the kernel runs (``kernel``:
    ``"kernel_multi._loop"`` for the kernel of several symbols).
    Cheap: one small folder listed."""
    folder = Path(numba.config.CACHE_DIR) if numba.config.CACHE_DIR else _HERE / "__pycache__"
    try:
        return not any(folder.rglob(f"{kernel}-*.nbi"))
    except OSError:
        return False


_announced = []


def announce(seconds, kernel: str = "kernel._loop"):
    """Say once per process, before the first kernel call, that compiling
    takes a while (the first run in a fresh environment is silent for
    ``seconds`` otherwise; ``warm.announce`` says how long)."""
    if kernel in _announced:  # (checked once: a warm cache stays warm, and a loop of runs lists no folder each time)
        return
    _announced.append(kernel)
    if cold(kernel):
        print(f"compiling the kernels, once: ~{seconds} s", file=sys.stderr, flush=True)


configure()
_compile_speed.install()  # (before any compiled function is compiled)
