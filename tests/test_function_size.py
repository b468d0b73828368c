"""Issue 11: no compiled function longer than ~120 lines or with more than
~12 parameters (a longer one wants a record or a split)."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES, MAX_PARAMS = 120, 12


def _compiled_functions():
    for path in sorted((ROOT / "backtest").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and any("jit" in ast.unparse(d) for d in node.decorator_list):
                a = node.args
                params = len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs) + bool(a.vararg) + bool(a.kwarg)
                yield f"{path.relative_to(ROOT).as_posix()}:{node.name}", params, node.end_lineno - node.lineno + 1


def test_no_compiled_function_is_too_long_or_takes_too_many_parameters():
    found = list(_compiled_functions())
    assert len(found) > 100  # (the scan sees the compiled modules)
    too_big = [(name, params, lines) for name, params, lines in found if params > MAX_PARAMS or lines > MAX_LINES]
    assert not too_big, f"compiled functions over {MAX_PARAMS} parameters or {MAX_LINES} lines: {too_big}"


def test_the_one_symbol_loop_is_split_into_steps():
    """kernel.simulate was a compiled loop of 278 lines: it makes the state arrays in Python now, and
    the compiled loop's steps are inlined helpers (the quiet run ``_close_run``)."""
    sizes = {name: (params, lines) for name, params, lines in _compiled_functions()}
    assert "backtest/kernel.py:simulate" not in sizes
    assert sizes["backtest/kernel.py:_loop"][1] <= MAX_LINES
    assert {"backtest/kernel.py:_close_run", "backtest/kernel.py:_path_steps"} <= set(sizes)
