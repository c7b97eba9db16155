"""Target-rate encoding: find the control value that meets a bpp target, then code once.

Every variable-rate codec in the toolkit has one scalar control whose rate is
monotone: the continuous gain ``rate ∈ [0, L−1]`` of ``rdc-versatile`` /
``rdc-qmap``, or the level ``t ∈ [0, 2]`` of the quality-map mapping Γ
(:mod:`compressai_rdc.qmap.gamma`; HEVRC §4.3 searches τ or ρ). The search
uses the rate *estimated* from the model's likelihoods (no entropy coding),
then entropy-codes once and measures the real container size::

    x ──> RateControl(model, x) ── bpp_est(p) = Σ −log₂ P / (H·W)  (+ container overhead)
              │ bracket: est(split) → side → est(end)   (target outside → RateRangeError)
              │ scipy brentq on log est(p) − log target  (or golden-section, HEVRC §4.3)
              ▼
          codec.encode(model, x, **controls(p*)) ── actual bpp from the bytes
              │ |actual − target| > tol ?  re-solve once: header bytes + measured payload/estimate ratio
              ▼
          bytes, TargetReport

The control of a model is its ``rate_control`` hook (:mod:`compressai_rdc.contract`);
the default, :func:`generic_rate_control`, picks

1. the gain ``rate`` when ``compress`` accepts ``rate`` and the model has ``levels``;
2. the Γ level of a quality-map strategy when ``compress`` accepts ``qmap``.

A model overrides the hook to reuse what does not change between probes
(``rdc-versatile`` runs its primary analysis transform once; ``hevrc`` runs the
stages of ``g_a`` before the first SFT once, entropy-codes each probe so that its
estimate is the real container rate, header included: an
:attr:`RateControl.exact` control, coded once). Otherwise rate is estimated
with the ``rate_likelihoods`` hook (no synthesis transform).

A Γ-level control of an image of at least 256 pixels a side has a coarse copy
(the image and its importance map downsampled 4×, 1/16 of the pixels);
:func:`search_rate` then searches the copy and corrects it with few full-size
estimates (:func:`_coarse_to_fine`)::

    copy: brentq on c(t)·r(t) ≈ target ──> t_k ──> full-size estimate f(t_k)
      ▲                                                  │ within rtol ? done
      └──── r(t) = f/c through the two f(t_k) nearest the target (PCHIP of c between its estimates)

This module sits above :mod:`compressai_rdc.codec` and imports it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from scipy import interpolate as _interpolate, optimize
from torch import Tensor, nn

from compressai_rdc import codec
from compressai_rdc.contract import accepts, hooks
from compressai_rdc.errors import InvalidArgumentError, RDCError
from compressai_rdc.utils.padding import pad_to_multiple

__all__ = [
    "METHODS",
    "Probe",
    "RateControl",
    "RateRangeError",
    "SearchResult",
    "TargetReport",
    "estimate_bpp",
    "encode_to_target",
    "bits",
    "gain_control",
    "generic_rate_control",
    "rate_control",
    "search_control",
    "search_rate",
]


class RateRangeError(RDCError, ValueError):
    """The target rate is outside what the model can reach for this image."""


@dataclass
class RateControl:
    """A monotone scalar control of one model's rate on one image.

    Attributes:
        name: name of the searched parameter (``"rate"``, ``"level"``).
        bounds: ``(lo, hi)``; the estimated rate increases from ``lo`` to ``hi``.
        estimate: ``p -> estimated bpp`` (likelihood based, no entropy coding).
        controls: ``p -> keyword controls`` for :func:`compressai_rdc.codec.encode`.
        split: optional point evaluated first (HEVRC: ``q = v``, the border of
            the τ and ρ branches); only the side holding the target is searched.
    """

    name: str
    bounds: Tuple[float, float]
    estimate: Callable[[float], float]
    controls: Callable[[float], Dict[str, Any]]
    split: Optional[float] = None
    #: container bits per pixel the estimate leaves out, known before any encode
    #: (the header, when ``estimate`` is the coded payload); the search adds it
    overhead_bpp: float = 0.0
    #: ``estimate(p) + overhead_bpp`` is the real container rate at ``p`` (the model codes
    #: each probe), so :func:`encode_to_target` searches to its tolerance and never re-encodes
    exact: bool = False
    #: optional cheaper control of the same parameter on a downsampled copy of the
    #: image: :func:`search_rate` searches it and corrects it with few estimates of this one
    coarse: Optional["RateControl"] = None
    #: estimates already computed, ``p -> bpp`` (shared by repeated searches)
    cache: Dict[float, float] = field(default_factory=dict)
    #: optional ``p -> model.compress output`` of the padded image reusing the probes'
    #: work (same bytes as ``compress(**controls(p))``); else a plain encode
    compress: Optional[Callable[[float], Dict[str, Any]]] = None

    def encode(self, model: nn.Module, x: Tensor, p: float) -> bytes:
        """Container bytes of ``x`` ``(1, 3, H, W)`` at ``p``."""
        if self.compress is None:
            return codec.encode(model, x, **self.controls(p))
        _, pad = _padded(model, x)
        with torch.no_grad():
            out = self.compress(p)
        return codec.pack_output(model, out, tuple(x.shape), pad, self.controls(p))


@dataclass
class Probe:
    """A model's faster rate evaluation for a search (from its ``rate_control`` hook):
    ``estimate(p) -> bpp``, optionally ``compress(p) -> model.compress output``
    and the container overhead ``overhead_bpp`` the estimate leaves out; ``exact``:
    ``estimate`` is the payload of ``compress`` (see :attr:`RateControl.exact`)."""

    estimate: Callable[[float], float]
    compress: Optional[Callable[[float], Dict[str, Any]]] = None
    overhead_bpp: float = 0.0
    exact: bool = False


@dataclass
class SearchResult:
    """Outcome of :func:`search_rate`."""

    control: str
    value: float
    controls: Dict[str, Any]
    estimated_bpp: float  #: estimate at ``value`` plus the overhead the search assumed
    evaluations: int  #: model evaluations (cached values are not counted again)
    history: List[Tuple[float, float]] = field(default_factory=list)
    coarse_evaluations: int = 0  #: evaluations of :attr:`RateControl.coarse`


@dataclass
class TargetReport:
    """What :func:`encode_to_target` did: the control found and the real rate."""

    target_bpp: float
    actual_bpp: float
    estimated_bpp: float
    control: str
    value: float
    evaluations: int
    encodes: int
    seconds: float
    coarse_evaluations: int = 0  #: evaluations on the downsampled copy (coarse-to-fine search)

    @property
    def relative_error(self) -> float:
        """``(actual − target) / target``."""
        return (self.actual_bpp - self.target_bpp) / self.target_bpp


# -----------------------------------------------------------------------------
# Estimated rate
# -----------------------------------------------------------------------------
def estimate_bpp(model: nn.Module, x: Tensor, num_pixels: int, **controls: Any) -> float:
    """Rate in bits per pixel estimated from the model's likelihoods (eval mode).

    Args:
        model: CompressAI model in eval mode.
        x: padded input ``(1, 3, Hp, Wp)``.
        num_pixels: pixels of the original (unpadded) image.
        **controls: passed to the ``rate_likelihoods`` hook.
    """
    with torch.no_grad():
        likelihoods = hooks(model).rate_likelihoods(x, **controls)
    return bits(likelihoods) / num_pixels


def bits(likelihoods: Any) -> float:
    """Total ``−log₂`` of every likelihood tensor in ``likelihoods`` (tensor, dict or list)."""
    return sum(float(torch.log(lk.clamp_min(1e-9)).sum()) for lk in _flatten(likelihoods)) / -math.log(2)


def _flatten(likelihoods: Any) -> List[Tensor]:
    if isinstance(likelihoods, Tensor):
        return [likelihoods]
    if isinstance(likelihoods, dict):
        return [t for v in likelihoods.values() for t in _flatten(v)]
    if isinstance(likelihoods, (list, tuple)):
        return [t for v in likelihoods for t in _flatten(v)]
    raise InvalidArgumentError(f"cannot read likelihoods of type {type(likelihoods).__name__}")


# -----------------------------------------------------------------------------
# Controls of the built-in model families
# -----------------------------------------------------------------------------
def _padded(model: nn.Module, x: Tensor) -> Tuple[Tensor, Tuple[int, int, int, int]]:
    return pad_to_multiple(x, codec.pad_multiple(model))


#: ``(padded x, pixels of the original image, fixed controls) -> Probe or None``
GainEstimator = Callable[[Tensor, int, Dict[str, Any]], Optional[Probe]]


def gain_control(model: nn.Module, x: Tensor, fixed: Dict[str, Any], estimator: Optional[GainEstimator] = None) -> RateControl:
    """The continuous gain ``rate ∈ [0, L−1]`` of ``model`` on ``x`` ``(1, 3, H, W)``.

    ``estimator`` (from the model's ``rate_control`` hook) may return a faster
    :class:`Probe` for these fixed controls; otherwise each probe runs ``rate_likelihoods``.
    """
    xp, _ = _padded(model, x)
    n = x.shape[-2] * x.shape[-1]
    probe = estimator(xp, n, fixed) if estimator is not None else None
    if probe is None:
        probe = Probe(lambda r: estimate_bpp(model, xp, n, rate=float(r), **fixed))
    return RateControl(name="rate", bounds=(0.0, float(model.levels - 1)), estimate=probe.estimate,
                       controls=lambda r: dict(fixed, rate=float(r)), compress=probe.compress)


#: ``(image (1, 3, H, W), level -> its map (1, 1, H, W), fixed controls) -> Probe or None``
LevelEstimator = Callable[[Tensor, Callable[[float], Tensor], Dict[str, Any]], Optional[Probe]]

#: the coarse copy of a level search is the image downsampled by this factor (area average) ...
COARSE_FACTOR = 4
#: ... when its shorter side keeps at least this many pixels (else the search has no coarse copy)
COARSE_MIN_SIDE = 64


def _importance(model: nn.Module, x: Tensor, fixed: Dict[str, Any]) -> Tuple[Tensor, Dict[str, Any]]:
    """The importance map of ``x`` (``importance`` given, or the ``qmap_strategy``'s,
    default ``uniform``) and the fixed controls without those two keys."""
    fixed = dict(fixed)
    importance = fixed.pop("importance", None)
    strategy = fixed.pop("qmap_strategy", None)
    if importance is None:
        from compressai_rdc.qmap import create_strategy_for

        if strategy is None:
            strategy = "uniform"
        if isinstance(strategy, str):
            strategy = create_strategy_for(model, strategy)
        if not callable(strategy):
            raise InvalidArgumentError(f"qmap_strategy must be a registered name or a callable, got {strategy!r}")
        importance = strategy(x)
    return importance.to(x), fixed


def _qmap_control(model: nn.Module, x: Tensor, fixed: Dict[str, Any], estimator: Optional[LevelEstimator] = None,
                  coarse: bool = True) -> RateControl:
    """The Γ level of ``model``'s quality map on ``x``; ``estimator`` (the model's hook)
    may give a faster :class:`Probe`. With ``coarse`` and a large enough image the
    control carries a coarse copy on ``x`` and its map downsampled by :data:`COARSE_FACTOR`."""
    from compressai_rdc.qmap.gamma import LEVEL_RANGE, gamma_level

    importance, fixed = _importance(model, x, fixed)

    def qmap(t: float) -> Tensor:
        return gamma_level(importance, float(t))

    probe = estimator(x, qmap, fixed) if estimator is not None else None
    if probe is None:
        xp, pad = _padded(model, x)
        n = x.shape[-2] * x.shape[-1]
        probe = Probe(lambda t: estimate_bpp(model, xp, n, qmap=F.pad(qmap(t), pad, mode="replicate"), **fixed))
    ctl = RateControl(name="level", bounds=LEVEL_RANGE, estimate=probe.estimate,
                      controls=lambda t: dict(fixed, qmap=qmap(t)), split=1.0, overhead_bpp=probe.overhead_bpp,
                      exact=probe.exact, compress=probe.compress)
    if coarse and min(x.shape[-2:]) >= COARSE_FACTOR * COARSE_MIN_SIDE:
        size = (x.shape[-2] // COARSE_FACTOR, x.shape[-1] // COARSE_FACTOR)
        small = dict(fixed, importance=F.interpolate(importance, size=size, mode="area"))
        ctl.coarse = _qmap_control(model, F.interpolate(x, size=size, mode="area"), small, estimator, coarse=False)
    return ctl


def rate_control(model: nn.Module, x: Tensor, *, control: str = "auto", **fixed: Any) -> RateControl:
    """The scalar rate control of ``model`` on image ``x`` ``(1, 3, H, W)``: the model's
    ``rate_control`` hook (default :func:`generic_rate_control`).

    Args:
        model: the codec (eval mode).
        x: one image ``(1, 3, H, W)`` in [0, 1].
        control: ``"rate"`` (continuous gain), ``"level"`` (quality-map Γ
            level) or ``"auto"`` (the model's choice).
        **fixed: controls held fixed during the search (``layers``, ...);
            for ``level`` also ``qmap_strategy`` (name or callable) or a
            precomputed ``importance`` ``(1, 1, H, W)``.

    Raises:
        InvalidArgumentError: the model has no such control.
    """
    if control not in ("auto", "rate", "level"):
        raise InvalidArgumentError(f"control {control!r} is invalid; valid: auto, rate, level")
    return hooks(model).rate_control(x, control=control, **fixed)


def generic_rate_control(
    model: nn.Module, x: Tensor, *, control: str = "auto", gain_estimator: Optional[GainEstimator] = None,
    level_estimator: Optional[LevelEstimator] = None, **fixed: Any
) -> RateControl:
    """The default ``rate_control`` hook.

    ``"auto"`` is ``rate`` if the model has gain levels, else ``level``. A gain
    search on a model that also takes a map (``rdc-qmap``) codes the map
    ``q = v`` of the strategy: the map places the bits, the gain sets their
    number. ``gain_estimator``: see :func:`gain_control`; ``level_estimator``: a
    model's faster :class:`Probe` of the level search (``hevrc``).
    """
    has_rate = accepts(model.compress, "rate") and hasattr(model, "levels")
    has_qmap = accepts(model.compress, "qmap")
    if control == "auto":
        control = "rate" if has_rate else "level"
    if control == "rate" and has_rate:
        if "qmap_strategy" in fixed or "importance" in fixed:
            if not has_qmap:
                raise InvalidArgumentError(f"qmap_strategy/importance are invalid for {type(model).__name__}: it takes no quality map")
            fixed = _fixed_qmap(model, x, fixed)
        return gain_control(model, x, fixed, gain_estimator)
    if control == "level" and has_qmap:
        return _qmap_control(model, x, fixed, level_estimator)
    valid = [n for n, ok in (("rate", has_rate), ("level", has_qmap)) if ok]
    raise InvalidArgumentError(
        f"{type(model).__name__} has no {control!r} rate control for target-bpp encoding; "
        f"valid: {', '.join(valid) or 'none (the model has a single rate; pick another quality)'}"
    )


def _fixed_qmap(model: nn.Module, x: Tensor, fixed: Dict[str, Any]) -> Dict[str, Any]:
    """For a gain search on a quality-map model: the map at ``q = v`` of the strategy."""
    from compressai_rdc.qmap.gamma import gamma_level

    importance, fixed = _importance(model, x, fixed)
    return dict(fixed, qmap=gamma_level(importance, 1.0))


# -----------------------------------------------------------------------------
# Search
# -----------------------------------------------------------------------------
#: search methods of :func:`search_rate`
METHODS = ("brent", "golden", "bounded")


class _Found(Exception):
    def __init__(self, p: float):
        self.p = p


def search_rate(
    ctl: RateControl,
    target_bpp: float,
    *,
    method: str = "brent",
    rtol: float = 0.01,
    overhead_bpp: Optional[float] = None,
    scale: float = 1.0,
    max_evaluations: int = 40,
    _bracket: bool = True,
) -> SearchResult:
    """Find ``p`` with ``estimate(p) + overhead_bpp ≈ target_bpp``.

    Args:
        ctl: the control (:func:`rate_control`).
        target_bpp: the target (> 0).
        method: one of :data:`METHODS`: ``"brent"`` (default: scipy ``brentq``
            root finding on the log-rate difference; fewest evaluations),
            ``"golden"`` (scipy's pure golden-section minimisation of
            ``|log est − log target|``, the search HEVRC §4.3 names) or
            ``"bounded"`` (scipy's bounded Brent minimisation of the same:
            golden-section with parabolic steps).
        rtol: stop as soon as the estimate is within this relative distance.
        overhead_bpp: bits per pixel the container adds to the estimate
            (default: the control's :attr:`RateControl.overhead_bpp`).
        scale: measured ratio of real to estimated rate (coder and header);
            the search matches ``scale · estimate + overhead_bpp``.
        max_evaluations: bound on model evaluations.

    A control with a :attr:`~RateControl.coarse` copy is searched coarse to fine
    (:func:`_coarse_to_fine`): the search runs on the copy, corrected by the
    ratio of the estimates at the points of this control evaluated so far.

    Raises:
        RateRangeError: the target is outside ``[estimate(lo), estimate(hi)]``;
            the message states the range.
    """
    if not (isinstance(target_bpp, (int, float)) and math.isfinite(target_bpp) and target_bpp > 0):
        raise InvalidArgumentError(f"target bpp must be a positive number, got {target_bpp!r}")
    if method not in METHODS:
        raise InvalidArgumentError(f"method {method!r} is invalid; valid: {', '.join(METHODS)}")
    if overhead_bpp is None:
        overhead_bpp = ctl.overhead_bpp
    if ctl.coarse is not None:
        return _coarse_to_fine(ctl, target_bpp, method=method, rtol=rtol, overhead_bpp=overhead_bpp, scale=scale,
                               max_evaluations=max_evaluations)
    history: List[Tuple[float, float]] = []
    evaluations = 0

    def est(p: float) -> float:
        nonlocal evaluations
        p = float(p)
        if p not in ctl.cache:
            if evaluations >= max_evaluations:
                raise _Found(min(history, key=lambda h: abs(math.log(h[1] / target_bpp)))[0])
            ctl.cache[p] = ctl.estimate(p)
            evaluations += 1
        value = ctl.cache[p] * scale + overhead_bpp
        history.append((p, value))
        return value

    def f(p: float) -> float:
        d = math.log(max(est(p), 1e-12)) - math.log(target_bpp)
        if abs(d) <= rtol:
            raise _Found(p)
        return d

    lo, hi = _cached_bracket(ctl, target_bpp, scale, overhead_bpp) if _bracket else ctl.bounds
    narrowed = (lo, hi) != tuple(ctl.bounds)
    try:
        if ctl.split is not None and lo <= ctl.split <= hi:
            if f(ctl.split) < 0:
                lo = ctl.split
            else:
                hi = ctl.split
        f_lo, f_hi = f(lo), f(hi)
        if f_lo > 0 or f_hi < 0:
            if narrowed:  # the cached bracket did not hold (a non-monotone rate): search the full range
                return search_rate(ctl, target_bpp, method=method, rtol=rtol, overhead_bpp=overhead_bpp, scale=scale,
                                   max_evaluations=max_evaluations - evaluations, _bracket=False)
            a, b = est(ctl.bounds[0]), est(ctl.bounds[1])
            raise RateRangeError(
                f"target {target_bpp:.4g} bpp is outside this model's range {a:.4g}–{b:.4g} bpp for this image "
                f"at these settings ({ctl.name} from {ctl.bounds[0]:g} to {ctl.bounds[1]:g})"
            )
        if method == "brent":
            p = optimize.brentq(f, lo, hi, xtol=1e-4 * (hi - lo), maxiter=max_evaluations)
        elif method == "bounded":
            p = optimize.minimize_scalar(
                lambda p: abs(f(p)), bounds=(lo, hi), method="bounded", options={"xatol": 1e-4 * (hi - lo)}
            ).x
        else:  # scipy's golden section brackets outside (lo, hi): outside, the objective grows with the distance
            a, b = lo, hi

            def clipped(p: float) -> float:
                c = min(max(p, a), b)
                return abs(f(c)) + abs(p - c)

            p = min(max(optimize.minimize_scalar(clipped, bracket=(a, b), method="golden", options={"xtol": 1e-4}).x, a), b)
    except _Found as found:
        p = found.p
    p = float(p)
    return SearchResult(ctl.name, p, ctl.controls(p), est(p), evaluations, history)


#: corrected searches on the coarse copy before :func:`_coarse_to_fine` searches the control itself
COARSE_STEPS = 4


def _coarse_to_fine(ctl: RateControl, target_bpp: float, *, method: str, rtol: float, overhead_bpp: float,
                    scale: float, max_evaluations: int) -> SearchResult:
    """Search ``ctl`` through its coarse copy ``c``: solve ``c(p) · r(p) ≈ target`` on
    the copy (cheap), evaluate ``ctl`` at the solution, and repeat with the
    correction ``log r`` through the two estimates of ``ctl`` nearest the target
    (none at first, constant with one, linear in ``p`` with two, extrapolated at
    most one anchor distance) until an estimate
    is within ``rtol``. Each estimate of ``ctl`` also narrows its bracket (the rate is
    monotone). After :data:`COARSE_STEPS` misses, or when the corrected copy cannot
    reach the target, the ordinary search of ``ctl`` takes over from that bracket
    (and raises :class:`RateRangeError` with ``ctl``'s own range)."""
    coarse = ctl.coarse
    coarse_before = len(coarse.cache)
    history: List[Tuple[float, float]] = []
    evaluations = 0

    def coarse_estimate(p: float) -> float:
        """The copy's estimate; once the copy has been searched (``anchors``), its curve
        between the estimates made: monotone cubic in ``log`` rate (no new evaluation)."""
        if p not in coarse.cache:
            known = sorted(coarse.cache.items())
            if not (interpolate and len(known) >= 2 and known[0][0] <= p <= known[-1][0]):
                coarse.cache[p] = coarse.estimate(p)
                return coarse.cache[p]
            curve = _interpolate.PchipInterpolator([k for k, _ in known], [math.log(max(v, 1e-12)) for _, v in known])
            return math.exp(float(curve(p)))
        return coarse.cache[p]

    def gap(e: float) -> float:
        return abs(math.log(max(e * scale + overhead_bpp, 1e-12) / target_bpp))

    lo, hi = _cached_bracket(ctl, target_bpp, scale, overhead_bpp)
    for _ in range(COARSE_STEPS):
        if evaluations >= max_evaluations:
            break
        interpolate = bool(ctl.cache)
        anchors = [(p, math.log(max(e, 1e-12) / max(coarse_estimate(p), 1e-12)))
                   for p, e in sorted(ctl.cache.items(), key=lambda pe: gap(pe[1]))[:2]]

        def corrected(p: float, anchors=anchors) -> float:
            if not anchors:
                return coarse_estimate(p)
            (p0, r0), (p1, r1) = sorted(anchors)[0], sorted(anchors)[-1]
            if p1 == p0:
                return coarse_estimate(p) * math.exp(r0)
            # linear, extrapolated at most one anchor distance beyond them (farther is no estimate)
            span = p1 - p0
            q = min(max(p, p0 - span), p1 + span)
            return coarse_estimate(p) * math.exp(r0 + (r1 - r0) * (q - p0) / span)

        model = RateControl(ctl.name, (lo, hi), corrected, ctl.controls, split=ctl.split)
        # the copy's estimates so far are free points of the corrected curve: they bracket the search
        model.cache.update((p, corrected(p)) for p in list(coarse.cache) if lo <= p <= hi)
        try:
            # the first search aims only roughly (the copy's rate is not this control's); later ones are free
            p = search_rate(model, target_bpp, method=method, rtol=rtol / 4 if interpolate else rtol,
                            overhead_bpp=overhead_bpp, scale=scale).value
        except RateRangeError:
            break
        if p not in ctl.cache:
            ctl.cache[p] = ctl.estimate(p)
            evaluations += 1
        value = ctl.cache[p] * scale + overhead_bpp
        history.append((p, value))
        if gap(ctl.cache[p]) <= rtol:
            return SearchResult(ctl.name, p, ctl.controls(p), value, evaluations, history,
                                coarse_evaluations=len(coarse.cache) - coarse_before)
        lo, hi = (max(lo, p), hi) if value < target_bpp else (lo, min(hi, p))
    if history and evaluations >= max_evaluations:  # out of estimates: the nearest one
        p, value = min(history, key=lambda h: abs(math.log(h[1] / target_bpp)))
        return SearchResult(ctl.name, p, ctl.controls(p), value, evaluations, history,
                            coarse_evaluations=len(coarse.cache) - coarse_before)
    res = search_rate(replace(ctl, coarse=None), target_bpp, method=method, rtol=rtol, overhead_bpp=overhead_bpp,
                      scale=scale, max_evaluations=max_evaluations - evaluations)
    res.evaluations += evaluations
    res.history[:0] = history
    res.coarse_evaluations = len(coarse.cache) - coarse_before
    return res


def _cached_bracket(ctl: RateControl, target: float, scale: float, overhead: float) -> Tuple[float, float]:
    """Tightest ``(lo, hi)`` around the target from estimates already computed
    (the rate is monotone), so a repeated search starts next to its answer."""
    lo, hi = ctl.bounds
    for p, e in ctl.cache.items():
        v = e * scale + overhead
        if v < target and p > lo:
            lo = p
        elif v > target and p < hi:
            hi = p
    return (lo, hi) if lo < hi else ctl.bounds  # crossed: the cached values are not monotone


def search_control(model: nn.Module, x: Tensor, target_bpp: float, **kwargs: Any) -> Tuple[Dict[str, Any], float]:
    """Controls for :func:`compressai_rdc.codec.encode` that meet ``target_bpp`` (estimated).

    Args:
        model: codec in eval mode with updated entropy coders.
        x: one image ``(1, 3, H, W)`` (or ``(3, H, W)``) in [0, 1].
        target_bpp: rate target in bits per pixel.
        **kwargs: ``control``, ``method``, ``rtol``, ``overhead_bpp`` (default: the
            control's known container overhead, e.g. ``hevrc``'s header) and fixed
            controls, see :func:`rate_control` and :func:`search_rate`.

    Returns:
        ``(controls, estimated_bpp)``.
    """
    res = _search(model, x, target_bpp, **kwargs)
    return res.controls, res.estimated_bpp


def _search(model, x, target_bpp, *, control="auto", method="brent", rtol=0.01, overhead_bpp=None, **fixed) -> SearchResult:
    x = _single(x)
    ctl = rate_control(model, x, control=control, **fixed)
    return search_rate(ctl, target_bpp, method=method, rtol=rtol, overhead_bpp=overhead_bpp)


def _single(x: Tensor) -> Tensor:
    if isinstance(x, Tensor) and x.dim() == 3:
        x = x[None]
    if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[0] != 1 or x.shape[1] != 3:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise InvalidArgumentError(f"target-bpp encoding takes one image (1, 3, H, W); got {shape} (encode images one by one)")
    return x


def encode_to_target(
    model: nn.Module,
    x: Tensor,
    target_bpp: float,
    *,
    tolerance: float = 0.02,
    max_refinements: int = 1,
    control: str = "auto",
    method: str = "brent",
    **fixed: Any,
) -> Tuple[bytes, TargetReport]:
    """Entropy-code ``x`` at (close to) ``target_bpp``, counting the real container bytes.

    The search runs on the control's estimates (:attr:`RateControl.exact`
    ones are the real rate: the search stops within ``tolerance`` and the final
    encode packs the probe's strings). Otherwise, after the single encode the
    header size and the ratio of real to estimated payload are known; if the
    real rate misses by more than ``tolerance`` the search is re-run with them (starting from the bracket of the estimates already made) and the
    image coded again.

    Args:
        model: codec in eval mode, entropy coders updated.
        x: one image ``(1, 3, H, W)`` in [0, 1].
        target_bpp: target in bits per pixel of the whole container.
        tolerance: accepted relative error of the real rate.
        max_refinements: re-encodes allowed after the first.
        control, method: see :func:`rate_control`, :func:`search_rate`.
        **fixed: fixed controls (``layers``, ``qmap_strategy``, ``importance``...).

    Returns:
        ``(bytes, report)``; ``report.actual_bpp`` is counted from the bytes.
    """
    t0 = time.perf_counter()
    x = _single(x)
    ctl = rate_control(model, x, control=control, **fixed)
    # an exact control's estimate is the real rate: its search may stop anywhere within the tolerance
    res = search_rate(ctl, target_bpp, method=method, rtol=tolerance if ctl.exact else 0.01)
    evaluations, coarse_evaluations, encodes = res.evaluations, res.coarse_evaluations, 1
    data = ctl.encode(model, x, res.value)
    actual = codec.bits_per_pixel(data)
    for _ in range(max_refinements):
        if abs(actual - target_bpp) <= tolerance * target_bpp:
            break
        # the header is a fixed cost; the coder's deviation from the estimate is proportional
        header_bpp = 8.0 * codec.read_header(data).header_size / (x.shape[-2] * x.shape[-1])
        ratio = (actual - header_bpp) / ctl.cache[res.value]
        res = search_rate(ctl, target_bpp, method=method, scale=ratio, overhead_bpp=header_bpp, rtol=tolerance / 4)
        evaluations += res.evaluations
        coarse_evaluations += res.coarse_evaluations
        data = ctl.encode(model, x, res.value)
        actual, encodes = codec.bits_per_pixel(data), encodes + 1
    report = TargetReport(
        target_bpp=float(target_bpp),
        actual_bpp=actual,
        estimated_bpp=res.estimated_bpp,
        control=res.control,
        value=res.value,
        evaluations=evaluations,
        encodes=encodes,
        seconds=time.perf_counter() - t0,
        coarse_evaluations=coarse_evaluations,
    )
    return data, report
