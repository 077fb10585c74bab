"""Names of the SLO recording rules: written by ``dashboards/rules/``, read by the
dashboards and the alerts. One place, so a rule cannot be renamed under a panel.

Every series carries ``namespace`` and ``deployment`` (the LLMDeployment's name).

* ``ttft_attainment(w)`` / ``tpot_attainment(w)``: share of requests over window ``w``
  whose TTFT (TPOT) is under the deployment's own target, from the engines' histograms.
* ``attainment(w)``: share of requests meeting both, approximated as the minimum of the
  two (the histograms are separate; a request's TTFT and TPOT are not joined).
* ``burn_rate(w)``: ``(1 - attainment(w)) / (1 - objective)``, the error budget's burn
  rate against ``tierserve_deployment_slo_objective_ratio``; 1 spends it exactly over
  the SLO period.
"""

from __future__ import annotations

# Windows of the per-signal rules (the drill-down's 5 m / 1 h / 6 h attainment panels).
SIGNAL_WINDOWS = ("5m", "1h", "6h")
# Windows of the combined attainment and burn rate: the Google SRE workbook's
# multi-window, multi-burn-rate alerts pair 1h/5m, 6h/30m, 1d/2h and 3d/6h.
BURN_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")


def _check(window: str, allowed: tuple[str, ...]) -> str:
    if window not in allowed:
        raise ValueError(f"no recording rule for window {window!r}; have {', '.join(allowed)}")
    return window


def ttft_attainment(window: str) -> str:
    return f"tierserve:deployment_ttft_attainment:ratio_rate{_check(window, SIGNAL_WINDOWS)}"


def tpot_attainment(window: str) -> str:
    return f"tierserve:deployment_tpot_attainment:ratio_rate{_check(window, SIGNAL_WINDOWS)}"


def attainment(window: str) -> str:
    return f"tierserve:deployment_attainment:ratio_rate{_check(window, BURN_WINDOWS)}"


def burn_rate(window: str) -> str:
    return f"tierserve:deployment_error_budget_burn:rate{_check(window, BURN_WINDOWS)}"


def all_rule_names() -> list[str]:
    """Every recording rule name, in a stable order (the rules' tests compare to it)."""
    return ([ttft_attainment(w) for w in SIGNAL_WINDOWS]
            + [tpot_attainment(w) for w in SIGNAL_WINDOWS]
            + [attainment(w) for w in BURN_WINDOWS]
            + [burn_rate(w) for w in BURN_WINDOWS])
