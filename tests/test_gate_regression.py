"""Scenario: a 3× crash-rate regression confined to one stratum halts while the pooled numbers look normal."""

from __future__ import annotations

from ringfence.domain.gate import GateConfig, Signal, StreamCounts, Verdict, evaluate

STRATA = [f"windows/{b}|Latitude 7440|CrowdStrike Falcon Sensor" for b in range(22620, 22630)]
BAD = STRATA[3]


def _stream(signal: Signal, stratum: str, t_failed: int, c_failed: int, n1: int = 2000, n0: int = 5000,
            hours: float = 10.0) -> StreamCounts:
    return StreamCounts(signal, stratum, n1, t_failed if signal is Signal.CRASHED else 0, n1 * hours,
                        n0, c_failed if signal is Signal.CRASHED else 0, n0 * hours)


def test_three_fold_regression_in_one_stratum_halts_while_pooled_looks_normal() -> None:
    """1 % of control hosts crash everywhere; updated hosts of one build crash at 3 %, the rest at 1 %."""
    streams = [_stream(sig, s, 60 if s == BAD else 20, 50) for s in STRATA for sig in Signal]
    pooled = [_stream(sig, "*", 60 + 9 * 20, 10 * 50, n1=20_000, n0=50_000) for sig in Signal]
    config = GateConfig(max_streams=44)
    alone = evaluate(pooled, config)
    assert alone.verdict is not Verdict.FAILED  # 1.2 % vs 1.0 %: pooled, nothing stands out
    result = evaluate([*streams, *pooled], config)
    assert result.verdict is Verdict.FAILED
    assert result.worst is not None and result.worst.counts.stratum == BAD
    assert f"60 of 2,000 updated {BAD} hosts crashed vs 50 of 5,000 control hosts" in result.reason


def test_the_same_rates_without_regression_do_not_halt() -> None:
    """Control: identical strata at 1 % do not halt."""
    streams = [_stream(sig, s, 20, 50) for s in STRATA for sig in Signal]
    assert evaluate(streams, GateConfig(max_streams=44)).verdict is not Verdict.FAILED
