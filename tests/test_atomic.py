"""Atomic result folders: a run, ``Result.save`` or ``backtest report`` that
fails (an error, a full disk, a file-size limit, SIGKILL) leaves the previous
folder byte for byte as it was, and no folder where there was none."""
import errno
import hashlib
import os
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import backtest
from backtest import atomic
from backtest.cli import main

ROOT = Path(__file__).resolve().parent.parent
BTC = ROOT / "data" / "BTCUSDT-1h.parquet"
SHORT = ["--data", str(BTC), "--start", "2024-01-01", "--end", "2024-01-20"]


def digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def beside(folder: Path) -> list:
    """What else is in the folder's parent (temporary or aside folders)."""
    return sorted(p.name for p in folder.parent.iterdir() if p.name != folder.name)


@pytest.fixture(scope="module")
def master(tmp_path_factory):
    out = tmp_path_factory.mktemp("atomic") / "good"
    assert main(["run", *SHORT, "--out", str(out), "--param", "fast=5", "--param", "slow=20"]) == 0
    return out


@pytest.fixture
def good(master, tmp_path):
    """A complete result folder (with its report), alone in its parent, so
    ``beside`` sees only what the writers leave."""
    out = tmp_path / "results" / "good"
    shutil.copytree(master, out)
    return out


def test_a_failure_while_writing_the_report_leaves_the_previous_folder(good, capsys, monkeypatch):
    import backtest.cli as cli

    before = digest(good)

    def half_then_full_disk(result, out, pdf=True):
        (out / "report.pdf").write_bytes(b"%PDF-1.4 half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cli, "_write_pictures", half_then_full_disk)
    assert main(["run", *SHORT, "--out", str(good)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "No space left on device" in err and str(good) in err
    assert digest(good) == before and beside(good) == []  # nothing half-written, no temporary folder left
    assert backtest.Result.load(good).summary["n_trades"] > 0  # and it is still a complete result


def test_no_folder_is_left_where_there_was_none(tmp_path, capsys, monkeypatch):
    import backtest.cli as cli

    monkeypatch.setattr(cli, "_write_pictures", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.EIO, "I/O")))
    target = tmp_path / "new" / "deeper" / "out"
    assert main(["run", *SHORT, "--out", str(target)]) == 2
    capsys.readouterr()
    assert not (tmp_path / "new").exists()


def test_result_save_from_python_is_all_or_nothing(good, monkeypatch):
    res = backtest.run(BTC, "hold", start="2024-01-01", end="2024-01-03")
    before = digest(good)

    def fail(self, folder):
        (Path(folder) / "summary.json").write_text("{}")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(backtest.Result, "write", fail)
    with pytest.raises(backtest.UserError, match="No space left"):
        res.save(good)
    assert digest(good) == before and beside(good) == []
    monkeypatch.undo()
    res.save(good)
    assert backtest.Result.load(good).summary["final_equity"] == res.summary["final_equity"]


def test_report_is_all_or_nothing(good, capsys, monkeypatch):
    import backtest.cli as cli

    before = digest(good)

    def fail(result, out, pdf=True):
        (out / "equity.png").write_bytes(b"half a png")
        raise OSError(errno.EFBIG, "File too large")

    monkeypatch.setattr(cli, "_write_pictures", fail)
    assert main(["report", str(good)]) == 2
    assert "File too large" in capsys.readouterr().err
    assert digest(good) == before and beside(good) == []


def test_a_users_files_in_a_result_folder_survive_a_new_run(good, capsys):
    (good / "notes.md").write_text("why I ran this")
    (good / "mine").mkdir()
    (good / "mine" / "a.txt").write_text("a")
    assert (good / "report.pdf").exists()
    assert main(["run", *SHORT, "--out", str(good), "--no-report"]) == 0
    assert (good / "notes.md").read_text() == "why I ran this" and (good / "mine" / "a.txt").read_text() == "a"
    assert beside(good) == []
    # the earlier run's own report is not carried over beside the new run's tables
    assert not (good / "report.pdf").exists() and not (good / "margin.png").exists()


def test_a_folder_with_only_a_users_summary_json_is_no_result(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "summary.json").write_text('{"mine": 1}')
    assert main(["run", *SHORT, "--out", str(mine), "--no-report"]) == 2
    assert "holds other files (summary.json) and no result" in capsys.readouterr().err
    assert (mine / "summary.json").read_text() == '{"mine": 1}'


DRIVER = textwrap.dedent("""
    import os, signal, sys, time
    from pathlib import Path
    import backtest.atomic as atomic
    import backtest.result as result

    mode, flag = sys.argv[1], Path(sys.argv[2])
    if mode == "write":  # everything written into the temporary folder; killed before the swap
        original = result.Result.write
        def write(self, folder):
            out = original(self, folder)
            flag.write_text(str(folder))
            time.sleep(120)
            return out
        result.Result.write = write
    elif mode == "swap":  # killed between the two renames of the swap
        rename = os.rename
        def first_then_die(a, b):
            rename(a, b)
            if str(b).endswith(atomic.OLD):
                flag.write_text(str(b))
                os.kill(os.getpid(), signal.SIGKILL)
        atomic.os.rename = first_then_die
    from backtest.cli import main
    sys.exit(main(sys.argv[3:]))
""")


def _driver(tmp_path, mode, argv, **kw):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    flag = tmp_path / f"{mode}.flag"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(script), mode, str(flag), *argv], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)
    return proc, flag


def test_sigkill_while_saving_leaves_the_previous_folder(good, tmp_path, capsys):
    before = digest(good)
    proc, flag = _driver(tmp_path, "write", ["run", *SHORT, "--out", str(good), "--strategy", "hold", "--no-report"])
    deadline = time.time() + 120
    while not flag.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert flag.exists(), proc.stderr.read()
    proc.kill()  # SIGKILL: no handler, no cleanup
    proc.wait()
    assert digest(good) == before
    assert beside(good) == [Path(flag.read_text()).name]  # the unfinished temporary folder, nothing else
    assert main(["run", *SHORT, "--out", str(good), "--strategy", "hold", "--no-report"]) == 0
    capsys.readouterr()
    assert beside(good) == [] and digest(good) != before  # the next run cleaned up and wrote its result


def test_sigkill_between_the_two_renames_loses_nothing(good, tmp_path, capsys):
    before = digest(good)
    proc, flag = _driver(tmp_path, "swap", ["run", *SHORT, "--out", str(good), "--strategy", "hold", "--no-report"])
    proc.wait(timeout=120)
    assert proc.returncode == -signal.SIGKILL and flag.exists()
    # the window: the old folder waits aside, the new complete one in its temporary folder
    assert not good.exists() and beside(good) == sorted([atomic.aside(good).name, f".good{atomic.NEW}{proc.pid}"])
    backtest.Result.load(good)  # reading it (or report, or the next run into it) puts it back first
    assert beside(good) == [] and digest(good) == before


def test_leftovers_of_other_processes_are_left_alone(good):
    alive = good.with_name(f".{good.name}{atomic.NEW}{os.getppid()}")
    dead = good.with_name(f".{good.name}{atomic.NEW}999999999")
    alive.mkdir()
    dead.mkdir()
    atomic.recover(good)
    assert alive.exists() and not dead.exists()


def _limit_file_size():
    resource.setrlimit(resource.RLIMIT_FSIZE, (2 * 2**20, 2 * 2**20))  # ulimit -f 2048 (KiB)


def test_a_2_mb_file_size_limit_leaves_the_previous_folder(tmp_path):
    """``ulimit -f``: the tables of a long run are larger than 2 MB; the
    write fails (SIGXFSZ is ignored, so Python sees EFBIG) and the previous
    result stays as it was."""
    good = tmp_path / "results" / "good"
    assert main(["run", "--data", str(BTC), "--start", "2025-06-01", "--out", str(good), "--no-report"]) == 0
    before = digest(good)
    proc = subprocess.run([sys.executable, "-m", "backtest", "run", "--data", str(BTC), "--start", "2021-01-01",
                           "--out", str(good), "--no-report"], env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, preexec_fn=_limit_file_size, timeout=300)
    lines = [ln for ln in proc.stderr.splitlines() if not ln.startswith("warning:")]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and "File too large" in lines[0] and "Traceback" not in proc.stderr
    assert digest(good) == before and beside(good) == []
