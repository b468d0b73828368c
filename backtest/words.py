"""Codes as a column of words, for the result tables.

A column of a few distinct words (order kinds, sides, a symbol) is taken
from the words' own array, one string each, instead of boxing one Python
string per row: 3,000 orders' kinds cost ~0.05 ms instead of ~0.2 ms, and
the column's dtype is what pandas makes of strings (pandas 3: ``str``).
"""
from functools import lru_cache

import numpy as np
import pandas as pd


@lru_cache(maxsize=64)
def _vocabulary(vocabulary: tuple):
    return pd.Series(np.array(vocabulary, dtype=object)).array


def words(codes, vocabulary: tuple):
    """``vocabulary[code]`` for every code, as a pandas array."""
    return _vocabulary(tuple(vocabulary)).take(np.asarray(codes, dtype=np.intp))


def repeat(word: str, n: int):
    """``word`` ``n`` times, as a pandas array."""
    return words(np.zeros(n, dtype=np.intp), (word,))


def sides(side, buy: str = "buy", sell: str = "sell"):
    """Signed sides (> 0: ``buy``) as words."""
    return words(np.asarray(side) <= 0, (buy, sell))
