"""Predictive CRM: the BG/NBD purchase model and the Gamma-Gamma spend model.

BG/NBD: Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way: An
Alternative to the Pareto/NBD Model", Marketing Science 24(2).  Gamma-Gamma:
Fader, Hardie & Lee (2005), "RFM and CLV: Using Iso-Value Curves for Customer
Base Analysis", Journal of Marketing Research 42(4).  Both are fitted by
maximum likelihood with scipy, which is imported only here and only when a
prediction is asked for.

Time is measured in weeks (days / 7), as in the papers.  Per customer, from the
distinct purchase days up to today (several purchases on one day are one
transaction): ``x`` = repeat transactions, ``t_x`` = weeks from the first to
the last purchase, ``T`` = weeks from the first purchase to today, ``m_x`` =
the average value of the repeat transactions.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

#: Below this many customers with repeat purchases, no fit is attempted.
MIN_TO_FIT = 10
#: A fit is used for segments only with at least this many (configurable).
MIN_REPEAT_CUSTOMERS = 50


@dataclass(frozen=True, slots=True)
class History:
    """One customer's purchase summary for the models."""

    customer: str
    x: int
    t_x: float
    T: float
    m_x: float | None  # mean repeat transaction value; None without repeats


@dataclass(frozen=True, slots=True)
class BgNbd:
    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    customers: int
    converged: bool

    def p_alive(self, x: int, t_x: float, T: float) -> float:
        """P(still active | x, t_x, T), eq. (11) of the paper; 1 before any repeat."""
        if x == 0:
            return 1.0
        ratio = (self.a / (self.b + x - 1)) * ((self.alpha + T) / (self.alpha + t_x)) ** (
            self.r + x)
        return 1.0 / (1.0 + ratio)

    def expected_purchases(self, t: float, x: int, t_x: float, T: float) -> float:
        """E[Y(t) | x, t_x, T]: expected repeat purchases in the next ``t`` weeks, eq. (10)."""
        from scipy.special import hyp2f1

        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        hyper = hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + T + t))
        head = (a + b + x - 1) / (a - 1) * (
            1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyper)
        tail = 1 + (x > 0) * (a / (b + x - 1)) * ((alpha + T) / (alpha + t_x)) ** (r + x)
        return float(head / tail)


@dataclass(frozen=True, slots=True)
class GammaGamma:
    p: float
    q: float
    gamma: float
    log_likelihood: float
    customers: int
    converged: bool

    def expected_spend(self, x: int, m_x: float | None, population_mean: float) -> float:
        """E[M | x, m_x]: expected average transaction value (the prior mean without repeats)."""
        if x == 0 or m_x is None:
            return population_mean
        return (self.p * (self.gamma + x * m_x)) / (self.p * x + self.q - 1)

    @property
    def mean(self) -> float:
        """Expected average transaction value of a new customer: p·γ / (q − 1)."""
        return self.p * self.gamma / (self.q - 1) if self.q > 1 else float("nan")


def summarise(days: Sequence[dt.date], values: Sequence[float], today: dt.date,
              customer: str) -> History | None:
    """The model inputs from a customer's purchase days (sorted, distinct) and day totals."""
    if not days:
        return None
    first, last = days[0], days[-1]
    x = len(days) - 1
    repeat_values = list(values[1:])
    return History(customer, x, (last - first).days / 7, (today - first).days / 7,
                   sum(repeat_values) / len(repeat_values) if repeat_values else None)


def log_likelihood(log_params, x, t_x, T) -> float:
    """The BG/NBD log-likelihood, eq. (6), of log-parameters over arrays x, t_x, T."""
    return _log_likelihood_and_gradient(log_params, x, t_x, T)[0]


def _log_likelihood_and_gradient(log_params, x, t_x, T):
    """The log-likelihood and its gradient by the log-parameters.

    With the exact gradient L-BFGS needs one evaluation per step instead of five
    (numerical differences); the terms are those of eq. (6), differentiated with
    the digamma function ψ, and the last one weighted by its share of the sum.
    """
    import numpy as np
    from scipy.special import digamma, gammaln

    r, alpha, a, b = np.exp(log_params)
    repeat = x > 0
    b_x1 = np.maximum(b + x - 1, 1e-12)
    ln_a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    ln_a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    ln_a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        ln_a4 = np.where(repeat, np.log(a) - np.log(b_x1) - (r + x) * np.log(alpha + t_x),
                         -np.inf)
    last = np.logaddexp(ln_a3, ln_a4)
    w3, w4 = np.exp(ln_a3 - last), np.exp(ln_a4 - last)
    d_r = (digamma(r + x) - digamma(r) + np.log(alpha)
           - w3 * np.log(alpha + T) - w4 * np.log(alpha + t_x))
    d_alpha = r / alpha - w3 * (r + x) / (alpha + T) - w4 * (r + x) / (alpha + t_x)
    d_a = digamma(a + b) - digamma(a + b + x) + w4 / a
    d_b = digamma(a + b) + digamma(b + x) - digamma(b) - digamma(a + b + x) - w4 / b_x1
    gradient = np.array([r * d_r.sum(), alpha * d_alpha.sum(), a * d_a.sum(), b * d_b.sum()])
    return float(np.sum(ln_a1 + ln_a2 + last)), gradient


def _minimise(objective, start: Sequence[float], gradient=None):
    """L-BFGS-B over log-parameters (fast; with ``gradient(p)``, which returns the
    objective and its gradient, if given, else with numeric differences), then
    Nelder-Mead from the same start if that fails."""
    import numpy as np
    from scipy.optimize import minimize

    with np.errstate(all="ignore"):
        result = None
        if gradient is not None:
            result = minimize(gradient, np.log(start), method="L-BFGS-B", jac=True)
        if result is None or not result.success or not np.isfinite(result.fun):
            # e.g. a likelihood still rising towards infinite parameters, where the
            # line search gives up: numeric differences end it as they always did
            result = minimize(objective, np.log(start), method="L-BFGS-B")
        if not result.success or not np.isfinite(result.fun):
            result = minimize(objective, np.log(start), method="Nelder-Mead",
                              options={"maxiter": 20000, "maxfev": 20000})
    return result


def fit_bgnbd(data: Sequence[History]) -> BgNbd:
    """Maximum likelihood over log-parameters (so all four stay positive)."""
    import numpy as np

    x = np.array([h.x for h in data], dtype=float)
    t_x = np.array([h.t_x for h in data])
    T = np.array([h.T for h in data])
    def negative(p):
        value, gradient = _log_likelihood_and_gradient(p, x, t_x, T)
        return -value, -gradient

    best = _minimise(lambda p: -log_likelihood(p, x, t_x, T), (1.0, 1.0, 1.0, 1.0), negative)
    assert best is not None
    r, alpha, a, b = (float(v) for v in np.exp(best.x))
    # Parameters running off to huge values mean the likelihood is flat: no real optimum.
    sane = math.isfinite(best.fun) and all(1e-6 < v < 1e4 for v in (r, alpha, a, b))
    return BgNbd(r, alpha, a, b, -float(best.fun), len(data), bool(best.success) and sane)


def gamma_gamma_log_likelihood(log_params, x, m):
    """The Gamma-Gamma log-likelihood of repeat buyers (``x`` repeat purchases of mean
    value ``m``) and its exact gradient in the log-parameters: with it the optimiser
    converges in a few dozen steps instead of falling back to Nelder-Mead."""
    import numpy as np
    from scipy.special import digamma, gammaln

    p, q, v = np.exp(log_params)
    px = p * x
    spent = x * m + v
    ll = (gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(v)
          + (px - 1) * np.log(m) + px * np.log(x) - (px + q) * np.log(spent))
    both = digamma(px + q)
    d_p = np.sum(x * (both - digamma(px) + np.log(m) + np.log(x) - np.log(spent)))
    d_q = np.sum(both - digamma(q) + np.log(v) - np.log(spent))
    d_v = np.sum(q / v - (px + q) / spent)
    return float(np.sum(ll)), np.array([p * d_p, q * d_q, v * d_v])


def fit_gamma_gamma(data: Iterable[History]) -> GammaGamma:
    """Fitted on customers with repeat transactions of positive value."""
    import numpy as np

    rows = [(h.x, h.m_x) for h in data if h.x > 0 and h.m_x is not None and h.m_x > 0]
    x = np.array([r[0] for r in rows], dtype=float)
    m = np.array([r[1] for r in rows], dtype=float)

    def negative_ll(log_params) -> float:
        return -gamma_gamma_log_likelihood(log_params, x, m)[0]

    def negative(log_params):
        value, gradient = gamma_gamma_log_likelihood(log_params, x, m)
        return -value, -gradient

    if not rows:
        return GammaGamma(float("nan"), float("nan"), float("nan"), float("nan"), 0, False)
    best = _minimise(negative_ll, (1.0, 1.0, float(np.mean(m))), negative)
    assert best is not None
    p, q, v = (float(val) for val in np.exp(best.x))
    finite = all(math.isfinite(val) for val in (p, q, v, best.fun))
    return GammaGamma(p, q, v, -float(best.fun), len(rows),
                      bool(best.success) and finite and q > 1)


@dataclass(frozen=True, slots=True)
class Prediction:
    customer: str
    p_alive: float
    expected_purchases: float
    expected_spend: float
    clv: float


@dataclass
class Forecast:
    """The fitted models and every customer's prediction, or why there are none."""

    bgnbd: BgNbd | None
    gamma_gamma: GammaGamma | None
    predictions: dict[str, Prediction] = field(default_factory=dict)
    horizon_days: int = 365
    discount_rate: float = 0.1
    repeat_customers: int = 0
    problem: str | None = None

    min_repeat_customers: int = MIN_REPEAT_CUSTOMERS
    pareto: ParetoNbd | None = None
    #: P(no purchase within the churn horizon) and that horizon (days) per customer.
    churn_risks: dict[str, tuple[float, int]] = field(default_factory=dict)
    risk_horizon_days: int = 90

    @property
    def trustworthy(self) -> bool:
        return (self.problem is None and self.bgnbd is not None and self.bgnbd.converged
                and self.pareto is not None and self.pareto.converged
                and self.repeat_customers >= self.min_repeat_customers)


def expected_purchases_all(model: BgNbd, t: float, x, t_x, T):
    """E[Y(t)] for arrays of customers at once (the same formula as the method)."""
    import numpy as np
    from scipy.special import hyp2f1

    r, alpha, a, b = model.r, model.alpha, model.a, model.b
    hyper = hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + T + t))
    head = (a + b + x - 1) / (a - 1) * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyper)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(x > 0, (a / np.where(x > 0, b + x - 1, 1.0))
                         * ((alpha + T) / (alpha + t_x)) ** (r + x), 0.0)
    return head / (1 + ratio), 1 / (1 + ratio)


def clv_all(model: BgNbd, x, t_x, T, spend, horizon_days: int, annual_rate: float):
    """CLV per customer: expected purchases month by month over the horizon, times the
    expected spend, discounted monthly at ``annual_rate`` (arrays of customers at once)."""
    import numpy as np

    weeks_per_month = 365.25 / 12 / 7
    months = max(1, round(horizon_days / (365.25 / 12)))
    monthly_rate = (1 + annual_rate) ** (1 / 12) - 1
    total = np.zeros_like(T)
    previous = np.zeros_like(T)
    for month in range(1, months + 1):
        cumulative, _ = expected_purchases_all(model, month * weeks_per_month, x, t_x, T)
        total += (cumulative - previous) * spend / (1 + monthly_rate) ** month
        previous = cumulative
    return total


@dataclass(frozen=True, slots=True)
class Fit:
    """Both models fitted on one set of histories, or why they are not usable."""

    bgnbd: BgNbd | None
    gamma_gamma: GammaGamma | None
    #: Expected order value of a customer without repeats (the spend model's mean, or
    #: the plain mean of repeat order values when it found no optimum).
    population_spend: float = 0.0
    customers: int = 0
    repeat_customers: int = 0
    min_repeat_customers: int = MIN_REPEAT_CUSTOMERS
    problem: str | None = None
    #: The churn model (Pareto/NBD), fitted on the same histories when BG/NBD converged.
    pareto: ParetoNbd | None = None
    #: The median of the repeat buyers' mean gaps between purchases, in days.
    usual_gap_days: float | None = None

    @property
    def usable(self) -> bool:
        return self.bgnbd is not None and self.bgnbd.converged


def fit(histories: Sequence[History], min_repeat_customers: int = MIN_REPEAT_CUSTOMERS
        ) -> Fit:
    """Fit both models; a clear ``problem`` instead of nonsense."""
    repeat = sum(1 for h in histories if h.x > 0)
    gaps = sorted(7 * h.t_x / h.x for h in histories if h.x > 0)
    usual = (gaps[len(gaps) // 2] + gaps[(len(gaps) - 1) // 2]) / 2 if gaps else None
    base = Fit(None, None, customers=len(histories), repeat_customers=repeat,
               min_repeat_customers=min_repeat_customers, usual_gap_days=usual)
    if repeat < min(MIN_TO_FIT, min_repeat_customers):
        return replace(base, problem=(
            f"too little history to fit: {len(histories)} customers with purchases, "
            f"{repeat} of them with repeat purchases (need at least "
            f"{min(MIN_TO_FIT, min_repeat_customers)})"))
    model = fit_bgnbd(histories)
    if not model.converged:
        return replace(base, bgnbd=model, problem=(
            f"the purchase model found no stable fit on {len(histories)} customers with "
            f"purchases ({repeat} with repeat purchases); it needs more, and more varied, "
            "purchase history"))
    spend_model = fit_gamma_gamma(histories)
    churn_model = fit_pareto(histories, (model.r, model.alpha, 1.0, model.alpha))
    repeat_values = [h.m_x for h in histories if h.m_x]
    fallback = sum(repeat_values) / len(repeat_values) if repeat_values else 0.0
    return replace(base, bgnbd=model, gamma_gamma=spend_model, pareto=churn_model,
                   population_spend=spend_model.mean if spend_model.converged else fallback,
                   problem=None if repeat >= min_repeat_customers else (
                       f"indicative only: {repeat} customers with repeat purchases, "
                       f"{min_repeat_customers} are needed before segments use the model"))


def predict(fitted: Fit, histories: Sequence[History], horizon_days: int = 365,
            discount_rate: float = 0.1) -> dict[str, Prediction]:
    """Every customer's prediction from a usable fit (arrays of customers at once)."""
    import numpy as np

    model, spend_model = fitted.bgnbd, fitted.gamma_gamma
    assert model is not None and spend_model is not None
    if not histories:
        return {}
    x = np.array([h.x for h in histories], dtype=float)
    t_x = np.array([h.t_x for h in histories])
    T = np.array([h.T for h in histories])
    population = fitted.population_spend
    spends = np.array([spend_model.expected_spend(h.x, h.m_x, population)
                       if spend_model.converged else (h.m_x or population) for h in histories])
    purchases, alive = expected_purchases_all(model, horizon_days / 7, x, t_x, T)
    values = clv_all(model, x, t_x, T, spends, horizon_days, discount_rate)
    return {h.customer: Prediction(h.customer, float(alive[n]), float(purchases[n]),
                                   float(spends[n]), float(values[n]))
            for n, h in enumerate(histories)}


def forecast(histories: Sequence[History], horizon_days: int = 365,
             discount_rate: float = 0.1, min_repeat_customers: int = MIN_REPEAT_CUSTOMERS,
             fitted: Fit | None = None) -> Forecast:
    """Predict every customer in ``histories`` from ``fitted`` (by default, the models
    fitted on ``histories`` themselves)."""
    if fitted is None:
        fitted = fit(histories, min_repeat_customers)
    result = Forecast(fitted.bgnbd, fitted.gamma_gamma, horizon_days=horizon_days,
                      discount_rate=discount_rate, repeat_customers=fitted.repeat_customers,
                      problem=fitted.problem, min_repeat_customers=min_repeat_customers)
    if fitted.usable:
        result.predictions = predict(fitted, histories, horizon_days, discount_rate)
    return result


# --- Pareto/NBD: the churn risk -----------------------------------------------------------
#
# Schmittlein, Morrison & Colombo (1987); the likelihood as in Fader, Hardie & Lee,
# "A Note on Implementing the Pareto/NBD Model in MATLAB" (2005).  While alive a
# customer buys at a Poisson rate λ ~ Gamma(r, α) and drops out after an exponential
# lifetime μ ~ Gamma(s, β), at any time, not only after a purchase: so a one-time buyer's
# P(alive) falls with every quiet week, unlike BG/NBD's (which is 1 until a repeat).
# On the CDNOW holdout this is what makes its churn risk rank at least as well as days
# since the last purchase (docs/prediction.md).


@dataclass(frozen=True, slots=True)
class ParetoNbd:
    r: float
    alpha: float
    s: float
    beta: float
    log_likelihood: float
    customers: int
    converged: bool

    @property
    def params(self) -> tuple[float, float, float, float]:
        return self.r, self.alpha, self.s, self.beta


def _pareto_term(params, x, t):
    """log of F(r+s+x, s+1 or r+x; r+s+x+1; |α−β| / (max(α,β)+t)) / (max(α,β)+t)^(r+s+x),
    the likelihood's term at t = t_x or T (it takes hyp2f1: the expensive part)."""
    import numpy as np
    from scipy.special import hyp2f1

    r, alpha, s, beta = params
    top, gap = max(alpha, beta), abs(alpha - beta)
    second = s + 1 if alpha >= beta else r + x
    rsx = r + s + x
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(hyp2f1(rsx, second, rsx + 1, gap / (top + t))) - rsx * np.log(top + t)


def _pareto_tail(params, x, t_x, T, early=None):
    """log of the customer-dependent factor of the Pareto/NBD likelihood, and the log
    of its "alive at T" part: L = Γ(r+x)α^r β^s / Γ(r) × exp(tail).  ``early``: the
    term at t_x if already known (it does not change with T)."""
    import numpy as np

    r, alpha, s, beta = params
    if early is None:
        early = _pareto_term(params, x, t_x)
    late = _pareto_term(params, x, T)
    with np.errstate(divide="ignore", invalid="ignore"):
        # A0 = e^early − e^late ≥ 0 (0 when the last purchase is today)
        between = early + np.log1p(-np.exp(np.minimum(late - early, 0.0)))
        alive = -(r + x) * np.log(alpha + T) - s * np.log(beta + T)
        return np.logaddexp(alive, np.log(s) - np.log(r + s + x) + between), alive


def pareto_log_likelihood(log_params, x, t_x, T, weights=1.0) -> float:
    import numpy as np
    from scipy.special import gammaln

    r, alpha, s, beta = np.exp(log_params)
    tail, _ = _pareto_tail((r, alpha, s, beta), x, t_x, T)
    head = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
    return float(np.sum(weights * (head + tail)))


def fit_pareto(data: Sequence[History], start: Sequence[float] = (1.0, 1.0, 1.0, 1.0)
               ) -> ParetoNbd:
    """Maximum likelihood over log-parameters, on the distinct (x, t_x, T) rows weighted
    by how many customers share them (many do: days are whole); from ``start`` (the
    BG/NBD fit's r and α are a good one: fewer steps)."""
    import numpy as np

    rows = np.array([(h.x, h.t_x, h.T) for h in data], dtype=float).reshape(-1, 3)
    unique, counts = np.unique(np.round(rows, 9), axis=0, return_counts=True)
    x, t_x, T = unique[:, 0], unique[:, 1], unique[:, 2]

    def negative(p) -> float:
        value = pareto_log_likelihood(p, x, t_x, T, counts)
        return -value if math.isfinite(value) else float("inf")

    best = _minimise(negative, start)
    r, alpha, s, beta = (float(v) for v in np.exp(best.x))
    sane = math.isfinite(best.fun) and all(1e-6 < v < 1e4 for v in (r, alpha, s, beta))
    return ParetoNbd(r, alpha, s, beta, -float(best.fun), len(data),
                     bool(best.success) and sane)


def churn_risk_all(model: ParetoNbd, t: float, x, t_x, T, early=None):
    """P(no purchase in the next ``t`` weeks | x, t_x, T) for arrays of customers.

    The likelihood of the history with no purchase until T + t, divided by that of the
    history until T: the same purchases, followed by t more quiet weeks.  It equals
    1 − P(alive) + P(alive) × P(no purchase in t | alive at T).
    """
    import numpy as np

    if early is None:
        early = _pareto_term(model.params, x, t_x)
    later, _ = _pareto_tail(model.params, x, t_x, T + t, early)
    now, _ = _pareto_tail(model.params, x, t_x, T, early)
    return np.clip(np.exp(later - now), 0.0, 1.0)


def p_alive_all(model: ParetoNbd, x, t_x, T):
    """Pareto/NBD P(alive at T | x, t_x, T) for arrays of customers."""
    import numpy as np

    tail, alive = _pareto_tail(model.params, x, t_x, T)
    return np.exp(alive - tail)


def risk_crossing_all(model: ParetoNbd, t, x, t_x, T, threshold: float):
    """The age (weeks) at which the churn risk reached ``threshold`` for customers whose
    risk is at least that now (NaN for the others): the risk only rises while nothing
    is bought, so bisection between the last purchase and today finds it (to 2^-14 of
    that time: far below a day)."""
    import numpy as np

    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    t = np.broadcast_to(np.asarray(t, dtype=float), x.shape)
    found = np.full(x.shape, np.nan)
    early = _pareto_term(model.params, x, t_x)
    crossed = churn_risk_all(model, t, x, t_x, T, early) >= threshold
    if not crossed.any():
        return found
    x, t_x, T, t, early = (v[crossed] for v in (x, t_x, T, t, early))
    low, high = t_x.copy(), T.copy()
    high = np.where(churn_risk_all(model, t, x, t_x, t_x, early) >= threshold, t_x, high)
    for _ in range(14):
        middle = (low + high) / 2
        above = churn_risk_all(model, t, x, t_x, middle, early) >= threshold
        high = np.where(above, middle, high)
        low = np.where(above, low, middle)
    found[crossed] = high
    return found
