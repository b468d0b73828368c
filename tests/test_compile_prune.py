"""A cross account's loop compiles its own venue's steps only, and a one-symbol
perp run no spot-margin market fill.

numba drops a branch before typing only where it tests an argument that is
None (``numba.core.analysis.dead_branch_prune``); whatever else a branch
calls is compiled, run or not.  ``kernel_multi._loop`` takes
``venue`` (None on spot margin) and ``spot`` (None on perpetual futures), so
a perp account's first run does not compile spot margin's steps (~30 s of
its ~55 s before) nor a spot account's the perp's.  Checked here on numba's
own pruning pass over the loop's IR, as the compiler runs it (no compile:
the loop's types beyond None do not matter to the pass)."""
from numba.core import compiler, ir, types
from numba.core.analysis import compute_cfg_from_blocks, dead_branch_prune

from backtest import kernel_multi as km

# (_limit_decisions: both venues' since a cross perp account takes limit orders)
SPOT = {"_cross_need", "_step_cross", "_close", "_decide", "_close_quiet"}
PERP = {"_step_perp", "_close_at", "_perp_quiet", "_close_quiet_perp"}


def _reached(venue, spot):
    """The globals the loop's IR still reaches after pruning, for ``venue``
    and ``spot`` typed None or not (every other argument: not None)."""
    func_ir = compiler.run_frontend(km._loop.py_func)
    some = types.pyobject
    dead_branch_prune(func_ir, [some] * 8 + [venue or some, some, some, spot or some])
    cfg = compute_cfg_from_blocks(func_ir.blocks)
    live, todo = set(), [cfg.entry_point()]
    while todo:
        label = todo.pop()
        if label not in live:
            live.add(label)
            todo.extend(succ for succ, _ in cfg.successors(label))
    return {stmt.value.name for label in live for stmt in func_ir.blocks[label].body
            if isinstance(stmt, ir.Assign) and isinstance(stmt.value, (ir.Global, ir.FreeVar))}


def test_a_perp_cross_account_compiles_none_of_spot_margins_steps():
    reached = _reached(venue=None, spot=types.none)  # (venue: a record, spot None) as multi_accounts passes them
    assert not reached & SPOT, reached & SPOT
    assert PERP <= reached


def test_a_spot_cross_account_compiles_none_of_the_perps_steps():
    reached = _reached(venue=types.none, spot=None)
    assert not reached & PERP, reached & PERP
    assert SPOT <= reached




def test_a_perp_cross_run_compiles_the_loop_with_spot_none():
    """What run_multi hands the loop: ``spot`` None beside a perp venue
    (else both venues' steps would be compiled), never a bool."""
    from pathlib import Path

    from backtest.multi import run_multi

    data = [Path(__file__).resolve().parents[1] / "data" / f"{s}USDT_PERP-1h.parquet" for s in ("BTC", "ETH")]
    res = run_multi(data, "sma_cross", {"fast": 5, "slow": 20, "leverage": 2.0}, margin="usdm-cross-5x",
                    start="2024-01-01", end="2024-01-10")
    assert res.summary["n_orders"] > 0
    spot_beside_a_venue = {type(sig[11]).__name__ for sig in km._loop.signatures
                           if type(sig[8]).__name__ != "NoneType"}
    assert spot_beside_a_venue == {"NoneType"}, spot_beside_a_venue


def test_the_one_symbol_market_fill_is_chosen_by_type():
    """``intrabar._market`` asks ``_fill_to``, whose implementation numba
    picks by ``pv``'s type: the kernel's ``pv`` on perps is an optional
    integer (an if on it would type spot margin's fill too), None on spot."""
    from backtest import intrabar

    func_ir = compiler.run_frontend(intrabar._market.py_func)
    names = {stmt.value.name for block in func_ir.blocks.values() for stmt in block.body
             if isinstance(stmt, ir.Assign) and isinstance(stmt.value, (ir.Global, ir.FreeVar))}
    assert "_fill_to" in names and not names & {"_trade_to", "usdm"}, names
    some = types.pyobject
    assert intrabar._fill_to_typed(some, some, some, some, some, types.none).__name__ == "spot"
    assert intrabar._fill_to_typed(some, some, some, some, some, types.Optional(types.int64)).__name__ == "perp"


def test_every_venue_question_is_chosen_by_type():
    """The liquidation inside a bar, a limit order's size and fill, and the
    plug point's questions: no function the one-symbol kernel reaches tests
    ``pv`` with an if (its perp ``pv`` is an optional integer: both venues'
    code would be compiled); each overload picks its venue's side by type.
    (A cold perp run with stops or a reserve compiles ~5 s less for it.)"""
    import inspect

    from backtest import intrabar, kernel, limits, replay
    from backtest.venues import plug

    for module in (intrabar, kernel, limits, replay, plug):
        assert "pv is not None" not in inspect.getsource(module) and "pv is None" not in inspect.getsource(module)
    some, perp = types.pyobject, types.Optional(types.int64)
    picks = [(intrabar._exit_at_typed, 9), (intrabar._trigger_at_typed, 5), (limits._size_at_typed, 5),
             (limits._fill_at_typed, 7), (plug._exposed, 2), (plug._level_price, 4), (plug._level_at, 4),
             (plug._lift_to, 6), (plug._lift_to_initial, 5), (plug._deposit, 6), (plug._withdrawable, 6),
             (plug._deleverage_size, 6), (plug._reduce_fill, 8)]
    for typed, n_args in picks:
        position = list(inspect.signature(typed).parameters).index("pv")
        spot_args = [some] * n_args
        perp_args = [some] * n_args
        spot_args[position], perp_args[position] = types.none, perp
        spot_impl, perp_impl = typed(*spot_args), typed(*perp_args)
        perp_names = {"usdm", "_perp_exit"}
        assert not perp_names & set(spot_impl.__code__.co_names), typed.__name__
        assert perp_names & set(perp_impl.__code__.co_names) or typed is plug._exposed, typed.__name__
