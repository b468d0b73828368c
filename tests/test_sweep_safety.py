"""Sweep folders are never destroyed implicitly, a failing or interrupted
sweep stays resumable and says how, and a grid is counted (and refused
above --max-combos) before it costs memory."""
import hashlib
import os
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pandas as pd
import pytest

from backtest import grid as grid_mod
from backtest.cli import main
from backtest.errors import UserError
from backtest.strategy import load_strategy
from backtest.sweep import Progress, parse_grid, sweep

ROOT = Path(__file__).resolve().parent.parent
BTC = ROOT / "data" / "BTCUSDT-1h.parquet"
RANGE = {"start": "2021-01-01", "end": "2021-03-31"}
GRID = {"fast": [5, 10, 30], "slow": [20, 60], "leverage": [1.0, 3.0]}


def digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


class _StopAfter:
    """A progress reporter that interrupts after ``n`` chunks, like Ctrl-C."""

    def __init__(self, n):
        self.left = n

    def advance(self, k):
        self.left -= 1
        if self.left == 0:
            raise KeyboardInterrupt

    def finish(self):
        pass


def test_a_finished_sweep_is_refused_without_resume_or_overwrite(tmp_path, capsys):
    out = tmp_path / "s"
    argv = ["sweep", "--data", str(BTC), "--start", "2021-01-01", "--end", "2021-03-31", "--grid", "fast=5,10",
            "--grid", "slow=20,60", "--out", str(out)]
    assert main(argv) == 0
    capsys.readouterr()
    before = digest(out)
    for extra in ([], ["--grid", "leverage=1,2"]):  # the same sweep again, another sweep
        assert main(argv + extra) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--resume" in err[0] and "--overwrite" in err[0] and str(out) in err[0], err
        assert digest(out) == before  # 281 → 12 chunks no more: nothing deleted
    assert main(argv + ["--resume"]) == 0  # finished already: nothing to run, the same table
    capsys.readouterr()
    assert digest(out)["sweep.parquet"] == before["sweep.parquet"]


def test_a_folder_of_the_users_own_files_is_refused_by_sweep_risk_and_walk_forward(tmp_path):
    import backtest

    mine = tmp_path / "mine"
    mine.mkdir()
    for name in ("heatmap.png", "frontier.png", "walkforward.csv"):
        (mine / name).write_text("MY OWN")
    before = digest(mine)
    with pytest.raises(UserError, match=r"mine: holds other files \(frontier.png, heatmap.png, walkforward.csv\) and no sweep"):
        sweep(BTC, "sma_cross", GRID, out=mine, progress=False, **RANGE)
    with pytest.raises(UserError, match="and no risk run; choose a new or empty folder"):
        backtest.risk(BTC, "sma_cross", out=mine, progress=False, **RANGE)
    with pytest.raises(UserError, match="and no walk-forward; choose a new or empty folder"):
        sweep(BTC, "sma_cross", GRID, out=mine, walk_forward="train=30d,test=30d", progress=False, **RANGE)
    assert digest(mine) == before
    wf = tmp_path / "wf"
    sweep(BTC, "sma_cross", {"fast": [5, 10]}, out=wf, walk_forward="train=30d,test=30d", progress=False, **RANGE)
    with pytest.raises(UserError, match=r"holds a walk-forward \(walkforward.json\); give the sweep its own folder"):
        sweep(BTC, "sma_cross", GRID, out=wf, overwrite=True, progress=False, **RANGE)
    # a walk-forward run again with overwrite keeps the user's files, whatever their names
    (wf / "report.pdf").write_text("MY OWN")
    sweep(BTC, "sma_cross", {"fast": [5, 10]}, out=wf, walk_forward="train=30d,test=30d", overwrite=True,
          progress=False, **RANGE)
    assert (wf / "report.pdf").read_text() == "MY OWN"
    # hidden files are no one's result; an old sweep set aside by one that stopped is named
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / ".DS_Store").write_text("")
    sweep(BTC, "sma_cross", {"fast": [5, 10]}, out=hidden, progress=False, **RANGE)
    aside = tmp_path / "aside"
    (aside / ".replaced-0123").mkdir(parents=True)
    with pytest.raises(UserError, match="set aside in .replaced-0123"):
        sweep(BTC, "sma_cross", GRID, out=aside, progress=False, **RANGE)


def test_an_interrupted_sweep_is_refused_then_resumed(tmp_path):
    out = tmp_path / "s"
    with pytest.raises(KeyboardInterrupt, match="--resume"):
        sweep(BTC, "sma_cross", GRID, out=out, chunk_size=2, workers=1, progress=_StopAfter(2), **RANGE)
    chunks = digest(out / "chunks")
    assert len(chunks) in (2, 3)  # (and the third when both its combinations ended while the thread stopped)
    with pytest.raises(UserError, match="resume=True finishes it, overwrite=True replaces it"):
        sweep(BTC, "sma_cross", GRID, out=out, chunk_size=2, progress=False, **RANGE)
    assert digest(out / "chunks") == chunks
    res = sweep(BTC, "sma_cross", GRID, out=out, resume=True, progress=False, **RANGE)
    assert len(res.table) == 10  # 12 less fast=30 ≥ slow=20


def test_overwrite_keeps_the_old_sweep_until_the_new_one_finishes(tmp_path):
    out = tmp_path / "s"
    old = sweep(BTC, "sma_cross", GRID, out=out, chunk_size=2, progress=False, **RANGE)
    old_table = pd.read_parquet(out / "sweep.parquet")
    other = {**GRID, "leverage": [2.0]}
    with pytest.raises(KeyboardInterrupt):  # the new sweep dies half way
        sweep(BTC, "sma_cross", other, out=out, chunk_size=1, workers=1, overwrite=True, progress=_StopAfter(2),
              **RANGE)
    (kept,) = out.glob(".replaced-*")
    pd.testing.assert_frame_equal(pd.read_parquet(kept / "sweep.parquet"), old_table)  # the old one, intact
    assert len(list((kept / "chunks").glob("part-*"))) == len(list(range(0, len(old.table), 2)))
    new = sweep(BTC, "sma_cross", other, out=out, chunk_size=1, resume=True, progress=False, **RANGE)
    assert len(new.table) == 5 and not list(out.glob(".replaced-*"))  # finished: now the old one goes


def test_a_new_sweep_that_fails_at_once_puts_the_old_one_back(tmp_path):
    out = tmp_path / "s"
    sweep(BTC, "sma_cross", GRID, out=out, progress=False, **RANGE)
    before = digest(out)

    def broken(bars, fast=5):
        raise ValueError("typo in my strategy")

    with pytest.raises(UserError, match="typo in my strategy"):
        sweep(BTC, broken, {"fast": [5, 6]}, out=out, overwrite=True, progress=False, **RANGE)
    assert digest(out) == before and not list(out.glob(".replaced-*"))


def test_a_strategy_failing_mid_sweep_leaves_the_folder_resumable(tmp_path):
    out = tmp_path / "s"
    flag = tmp_path / "still-broken"
    flag.write_text("")
    strategy = tmp_path / "flaky.py"
    strategy.write_text(
        "from pathlib import Path\nimport numpy as np\nPARAMS = {'fast': 5}\n"
        f"FLAG = Path({str(flag)!r})\n"
        "def targets(bars, fast):\n"
        "    if fast == 8 and FLAG.exists():\n        raise ValueError('fast 8 breaks')\n"
        "    return np.where(bars['close'].rolling(fast).mean() < bars['close'], 1.0, 0.0)\n")
    grid = {"fast": [5, 6, 7, 8, 9]}
    # fast 9's chunk may finish on the worker before the failure reaches the main
    # thread (timing): 3 or 4 saved, and the message says how many were
    with pytest.raises(UserError, match=r"fast 8 breaks \([34] of 5 combinations saved in .*resume=True\)") as err:
        sweep(BTC, str(strategy), grid, out=out, chunk_size=1, workers=1, progress=False, **RANGE)
    manifest = (out / "sweep.json").read_text()
    saved = int(str(err.value).split("(")[1].split(" of ")[0])
    assert len(list((out / "chunks").glob("part-*"))) == saved
    flag.unlink()  # the user fixes the strategy
    res = sweep(BTC, str(strategy), grid, out=out, resume=True, progress=False, **RANGE)
    assert (out / "sweep.json").read_text() == manifest and len(res.table) == 5
    straight = sweep(BTC, str(strategy), grid, out=tmp_path / "t", progress=False, **RANGE)
    pd.testing.assert_frame_equal(res.table, straight.table)


def test_a_full_disk_is_one_line_saying_what_is_saved(tmp_path, monkeypatch):
    import errno

    import pyarrow.parquet as pq

    real = pq.write_table  # (what the sweep's chunk files are written with)

    def full(table, path, *a, **kw):
        if Path(path).name == "part-00003.parquet.tmp":
            Path(path).write_bytes(b"half")
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(table, path, *a, **kw)

    monkeypatch.setattr(pq, "write_table", full)
    out = tmp_path / "s"
    with pytest.raises(UserError, match=r"part-00003.parquet.tmp: No space left on device \(\d+ of 10 combinations saved in .*resume=True\)"):
        sweep(BTC, "sma_cross", GRID, out=out, chunk_size=2, workers=1, progress=False, **RANGE)
    assert not list((out / "chunks").glob("*.tmp"))  # (no half file beside the chunks)


def test_ctrl_c_says_how_to_resume(tmp_path):
    strategy = tmp_path / "slow.py"
    strategy.write_text("import time\nimport numpy as np\nPARAMS = {'fast': 5}\n"
                        "def targets(bars, fast):\n    time.sleep(0.3)\n    return np.ones(len(bars))\n")
    out = tmp_path / "s"
    proc = subprocess.Popen([sys.executable, "-m", "backtest", "sweep", "--data", str(BTC), "--start", "2021-01-01",
                             "--end", "2021-01-31", "--strategy", str(strategy), "--grid", "fast=1:40:1",
                             "--chunk-size", "1", "--workers", "1", "--out", str(out)],
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            # SIGINT as a terminal leaves it, also when pytest runs as a shell's background job
                            # (started with SIGINT ignored, Python would raise no KeyboardInterrupt)
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    # a finished chunk's own name: "part-*" also matched the file being written (part-00000.parquet.tmp), and a
    # Ctrl-C sent while the first write still ran (slow on a cold cache: pyarrow's first use) found nothing saved
    while not list((out / "chunks").glob("part-*.parquet")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    lines = err.strip().splitlines()
    assert proc.returncode == 130, err
    assert "--resume" in lines[-1] and "combinations saved in" in lines[-1] and "Traceback" not in err


# ------------------------------------------------------------- the grid, lazily
def test_a_huge_grid_is_refused_at_once_without_memory():
    params = load_strategy("sma_cross").params
    tracemalloc.start()
    t = time.perf_counter()
    with pytest.raises(UserError, match=r"100,000,000 values.*--max-combos"):
        parse_grid(["fast=1:100000000:1"], params)
    with pytest.raises(UserError, match=r"1,000,000,000,000 combinations.*--max-combos"):
        grid = parse_grid(["fast=1:1000000:1", "slow=1:1000000:1"], params, max_combos=10**6)
        grid_mod.preflight(load_strategy("sma_cross"), grid, ["cross-3x"], 1000, 2)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert time.perf_counter() - t < 1.0 and peak < 2 * 2**20  # before: minutes and ~15 GB


def test_sweep_refuses_above_max_combos_before_reading_anything(tmp_path):
    with pytest.raises(UserError, match=r"max_combos 1,000"):
        sweep(BTC, "sma_cross", {"fast": list(range(2, 40)), "slow": list(range(40, 80))}, out=tmp_path / "s",
              max_combos=1000, progress=False, **RANGE)
    assert not (tmp_path / "s").exists()


def test_chunks_are_cut_lazily_from_a_big_grid():
    strat = load_strategy("sma_cross")
    grid = parse_grid(["fast=1:500:1", "slow=2:1001:1", "leverage=1:2:1"], strat.params)  # 1,000,000 raw
    assert grid_mod.raw_count(grid, ["cross-3x"]) == 1_000_000
    tracemalloc.start()
    stream = grid_mod.chunks(strat, grid, ["cross-3x"], 64)
    first = [next(stream) for _ in range(3)]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [k for k, _ in first] == [0, 1, 2] and len(first[0][1]) == 64
    assert peak < 1 * 2**20  # three chunks' worth, not a list of a million dicts (~500 MB)


def test_threads_pull_chunks_as_they_go(tmp_path):
    from backtest import sweep as sweep_mod

    pulled = []

    def stream():
        for k in range(100):
            pulled.append(k)
            yield k, [{"k": k}]

    seen = []

    class Ctx:
        def run_chunk(self, block):
            seen.append(len(pulled))
            return pd.DataFrame(block)

    (tmp_path / "chunks").mkdir()
    sweep_mod._run_threads(Ctx(), stream(), tmp_path, 1, sweep_mod._Silent())
    assert len(seen) == 100 and max(seen[k] - k for k in range(100)) <= 3  # never more than a few ahead


class _Pieces:
    """A context whose combinations take a while (the GIL released, as the kernel does); ``slow``: one
    combination that takes longer."""

    def __init__(self, bad=None, slow=None):
        self.threads, self.bad, self.slow = set(), bad, slow

    def table_rows(self, block):
        import threading

        self.threads.add(threading.get_ident())
        if self.bad in block:
            raise ValueError(f"combination {self.bad} breaks")
        time.sleep(0.002 * len(block) + (0.3 if self.slow in block else 0.0))
        return [{"k": k} for k in block]


def test_threads_share_a_chunk_and_save_its_rows_in_order(tmp_path):
    from backtest import sweep as sweep_mod

    (tmp_path / "chunks").mkdir()
    ctx, kept = _Pieces(), {}
    sweep_mod._run_threads(ctx, iter([(0, list(range(64)))]), tmp_path, 2, sweep_mod._Silent(), kept)
    assert len(ctx.threads) == 2  # one chunk, cut in pieces both threads took
    saved = pd.read_parquet(sweep_mod._chunk_path(tmp_path, 0))
    assert saved["k"].tolist() == list(range(64)) and kept[0]["k"].tolist() == list(range(64))


def test_a_failing_piece_keeps_the_chunks_finished_before_it(tmp_path):
    from backtest import sweep as sweep_mod

    (tmp_path / "chunks").mkdir()
    chunks = iter([(0, list(range(8))), (1, list(range(8, 72)))])
    with pytest.raises(ValueError, match="combination 70 breaks"):
        sweep_mod._run_threads(_Pieces(bad=70), chunks, tmp_path, 2, sweep_mod._Silent())
    assert pd.read_parquet(sweep_mod._chunk_path(tmp_path, 0))["k"].tolist() == list(range(8))
    assert not sweep_mod._chunk_path(tmp_path, 1).exists()


def test_a_chunk_that_ends_while_the_threads_stop_is_saved(tmp_path):
    from backtest import sweep as sweep_mod

    (tmp_path / "chunks").mkdir()
    # chunk 1 fails at once while chunk 0's last combination still runs: chunk 0 ends during the shutdown
    chunks = iter([(0, list(range(32))), (1, list(range(32, 64)))])
    with pytest.raises(ValueError, match="combination 32 breaks"):
        sweep_mod._run_threads(_Pieces(bad=32, slow=31), chunks, tmp_path, 2, sweep_mod._Silent())
    assert pd.read_parquet(sweep_mod._chunk_path(tmp_path, 0))["k"].tolist() == list(range(32))


def test_chunks_done_before_the_stream_fails_are_saved(tmp_path):
    from backtest import sweep as sweep_mod

    def chunks():
        yield 0, list(range(8))
        yield 1, list(range(8, 16))
        time.sleep(0.5)  # (a slow grid rule, or finished chunks skipped on resume)
        raise RuntimeError("the grid broke")

    (tmp_path / "chunks").mkdir()
    with pytest.raises(RuntimeError, match="the grid broke"):
        sweep_mod._run_threads(_Pieces(), chunks(), tmp_path, 2, sweep_mod._Silent())
    assert all(sweep_mod._chunk_path(tmp_path, k).exists() for k in (0, 1))


def test_an_empty_chunk_is_saved_and_no_thread_is_refused(tmp_path):
    from backtest import sweep as sweep_mod

    (tmp_path / "chunks").mkdir()
    sweep_mod._run_threads(_Pieces(), iter([(0, [])]), tmp_path, 2, sweep_mod._Silent())
    assert len(pd.read_parquet(sweep_mod._chunk_path(tmp_path, 0))) == 0
    with pytest.raises(ValueError, match="workers=0"):
        sweep_mod._run_threads(_Pieces(), iter([(0, [1])]), tmp_path, 0, sweep_mod._Silent())


def test_preflight_counts_and_estimates(capsys, tmp_path):
    sweep(BTC, "sma_cross", GRID, out=tmp_path / "s", **RANGE)
    out = capsys.readouterr().out
    assert "sweep: 10 combinations (2 skipped by the strategy's rule) × 2,158 bars: about" in out and "MiB" in out


# ------------------------------------------------------------- progress
def test_progress_false_is_silent_and_the_default_is_tqdm(tmp_path, capsys):
    sweep(BTC, "sma_cross", {"fast": [5, 10]}, out=tmp_path / "q", progress=False, **RANGE)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    from tqdm import tqdm

    bar = Progress(10)
    assert isinstance(bar.bar, tqdm)
    bar.finish()


# ------------------------------------------------------------- report on a sweep folder
def test_report_on_a_sweep_folder_redraws_its_pictures(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["sweep", "--data", str(BTC), "--start", "2021-01-01", "--end", "2021-03-31", "--grid", "fast=5,10",
                 "--grid", "slow=20,60", "--grid", "leverage=1,3", "--out", str(out)]) == 0
    for name in ("heatmap.png", "leverage.png"):
        (out / name).unlink()
    capsys.readouterr()
    assert main(["report", str(out), "--rank", "total_return"]) == 0
    printed = capsys.readouterr().out
    assert (out / "heatmap.png").stat().st_size > 1000 and (out / "leverage.png").stat().st_size > 1000
    assert "heatmap.png" in printed
