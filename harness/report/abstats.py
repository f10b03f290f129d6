"""Small-sample statistics for A/B runs (stdlib only): an exact rank test, the
Hodges-Lehmann shift and a bootstrap interval of the difference of medians.

Samples are a few runs per side (about 3 to 20), so the exact null distribution is
cheap to count and beats any normal approximation. A value may be float('inf') (a
probe that never recovered): ranks and medians handle it, and inf - inf counts as 0
(both runs equally "never").
"""
from __future__ import annotations

import math
import random
from functools import lru_cache


def mann_whitney_p(a, b) -> float:
    """Exact two-sided p-value of the Mann-Whitney U (Wilcoxon rank-sum) test.

    Ties get mid-ranks, and the null distribution is the exact permutation distribution
    of the rank sum with those mid-ranks, so ties cost no accuracy. 1.0 if a side is empty.
    """
    a, b = list(a), list(b)
    if not a or not b:
        return 1.0
    ranks = _doubled_midranks(a + b)
    m, n = len(a), len(a) + len(b)
    centre = m * (n + 1)                      # twice the expected rank sum of a
    extreme = abs(sum(ranks[:m]) - centre)
    counts = _rank_sum_counts(tuple(sorted(ranks)), m)
    return sum(c for s, c in counts.items() if abs(s - centre) >= extreme) / math.comb(n, m)


def _doubled_midranks(values: list) -> list[int]:
    """Mid-ranks times two, so that they stay integers (exact comparisons below)."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in order[i:j + 1]:
            ranks[k] = (i + 1) + (j + 1)        # 2 × the mean of positions i+1..j+1
        i = j + 1
    return ranks


@lru_cache(maxsize=256)
def _rank_sum_counts(ranks: tuple[int, ...], m: int) -> dict[int, int]:
    """{sum: number of m-subsets of `ranks` with that sum} (DP over subset size); cached
    because every tie-free figure with the same n per side has the same distribution."""
    dp = [dict() for _ in range(m + 1)]
    dp[0][0] = 1
    for seen, r in enumerate(ranks, 1):
        for k in range(min(seen, m), 0, -1):
            row = dp[k]
            for s, c in dp[k - 1].items():
                row[s + r] = row.get(s + r, 0) + c
    return dp[m]


def diff(x: float, y: float) -> float:
    """x - y, with inf - inf = 0: two runs that both never recovered are alike."""
    return 0.0 if x == y else x - y


def median(values) -> float:
    s = sorted(values)
    if not s:
        raise ValueError("median of no values")
    mid = len(s) // 2
    if len(s) % 2:
        return s[mid]
    m = (s[mid - 1] + s[mid]) / 2
    return 0.0 if math.isnan(m) else m       # -inf and +inf in the middle: symmetric


def hodges_lehmann(a, b) -> float:
    """Median of all pairwise differences b_j - a_i: the shift of B against A."""
    return median(diff(y, x) for x in a for y in b)


def bootstrap_ci(a, b, confidence: float, resamples: int = 4000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of median(b) - median(a); seeded, so reproducible."""
    a, b = list(a), list(b)
    if not a or not b:
        raise ValueError("bootstrap of an empty sample")
    rng = random.Random(seed)
    shifts = sorted(diff(median(rng.choices(b, k=len(b))), median(rng.choices(a, k=len(a))))
                    for _ in range(resamples))
    tail = (1 - confidence) / 2
    last = len(shifts) - 1
    return shifts[math.floor(tail * last)], shifts[math.ceil((1 - tail) * last)]


def min_runs_for(confidence: float, limit: int = 50) -> int:
    """Smallest equal n per side at which even complete separation of the sides gets
    p < 1 - confidence (n=3: p=0.1, n=4: 0.029, n=5: 0.0079); fewer runs can never
    show a difference at that confidence."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence {confidence}: between 0 and 1")
    for n in range(1, limit + 1):
        if mann_whitney_p(range(n), range(n, 2 * n)) < 1 - confidence:
            return n
    raise ValueError(f"confidence {confidence}: needs more than {limit} runs per side")
