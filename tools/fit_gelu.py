#!/usr/bin/env python3
"""Fits the polynomial of libtacort's float32 GELU (runtime/vmath_impl.h, v_gelu).

GELU(t) = t Phi(t), and for q = erfc(|t| / sqrt 2) / 2 (Phi = q below 0, 1 - q above):

    q = e^{-t^2/2} r H(u),   r = 1 / (|t| + K),   u = 1 - 2 K r

with H(u) ~ e^{t^2/2} erfc(t / sqrt 2) (|t| + K) / 2, which is smooth and flat on
[0, T] (it tends to sqrt(2 / pi) / 2 as t grows): a polynomial in u, which maps
[0, T] into [-1, (T - K) / (T + K)], fits it without the cancellation a
polynomial in t would need. Weighted least squares on Chebyshev points,
reweighted towards the largest relative errors (Lawson's iteration, close to
minimax), then checked in float32 arithmetic as the kernel evaluates it.

Prints the coefficients, highest power first, as the kernel's H[] lists them.
Usage: .venv/bin/python tools/fit_gelu.py [--k 2] [--degree 10] [--t-max 13.25]
"""
import argparse
import math

import numpy as np


def target(t, k):
    return math.exp(t * t / 2) * math.erfc(t / math.sqrt(2)) * (t + k) / 2


def fit(k, degree, t_max, points=3000, rounds=30):
    u1 = (t_max - k) / (t_max + k)
    j = np.arange(points)
    u = (u1 - 1) / 2 + (u1 + 1) / 2 * np.cos(np.pi * (j + 0.5) / points)
    t = k * (1 + u) / (1 - u)
    y = np.array([target(x, k) for x in t])
    v = np.vander(u, degree + 1)
    w = 1 / np.abs(y)
    for _ in range(rounds):
        c, *_ = np.linalg.lstsq(v * w[:, None], y * w, rcond=None)
        e = np.abs(v @ c / y - 1)
        w = w * (e / e.max() + 1e-3) ** 0.5
    return c.astype(np.float32), float(e.max())


def float_error(c, k, t_max, n=40001):
    """Largest relative error of r H(u) evaluated in float32 (Horner, u from r) against
    e^{t^2/2} erfc(t / sqrt 2) / 2."""
    t = np.linspace(0, t_max, n).astype(np.float32)
    r = (np.float32(1) / (t + np.float32(k))).astype(np.float32)
    u = (np.float32(1) - np.float32(2 * k) * r).astype(np.float32)
    p = np.full_like(u, c[0])
    for ci in c[1:]:
        p = (p * u + ci).astype(np.float32)
    got = (r * p).astype(np.float64)
    ref = np.array([math.exp(x * x / 2) * math.erfc(x / math.sqrt(2)) / 2 for x in t.astype(np.float64)])
    return float(np.abs(got / ref - 1).max())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--k", type=float, default=2.0)
    ap.add_argument("--degree", type=int, default=10)
    ap.add_argument("--t-max", type=float, default=13.25)
    a = ap.parse_args()
    c, fit_err = fit(a.k, a.degree, a.t_max)
    print(f"# K = {a.k}, degree {a.degree}, t in [0, {a.t_max}]: fit {fit_err:.2e} relative, "
          f"{float_error(c, a.k, a.t_max):.2e} evaluated in float32")
    print(", ".join("%.9ef" % x for x in c))


if __name__ == "__main__":
    main()
