"""The logistic predictor trained in closed form: no autograd, no optimiser object, one
compiled loop.

With the official schedule (100 epochs over a batch of 1000 in mini-batches of 256) an
env step makes 400 Adam steps on a model of a few hundred weights: the arithmetic of
one step is a few microseconds, and anything that pays an interpreter's or a
framework's overhead per step (autograd and an optimiser object, or even a dozen numpy
calls) spends most of its time on that overhead. For a linear model the gradient of the
weighted softmax cross-entropy is explicit, ``(softmax(x W^T + b) - onehot(y))^T (s * x)
/ n``, so this module writes the whole fit (every epoch, mini-batch, gradient and Adam
step) as one loop compiled by numba. Same schedule, same mini-batches, same loss and
torch's Adam: the weights agree with ``fit_weighted`` up to float rounding
(``tests/test_batched.py`` checks it).

K predictors train in one call, each on its own rows in its own order, so sub-envs need
not be in lockstep; each predictor's arithmetic is the same whatever K is, so a vector
env's predictors equal single envs' bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit
from torch import nn

from dvrl_env.predictors.models import PredictorSpec

BETA1, BETA2, EPS = 0.9, 0.999, 1e-8  # torch.optim.Adam's defaults, as make_adam uses
#: dot products may be summed in any order (so they vectorise); nothing else is relaxed
_FASTMATH = {"reassoc", "contract"}
#: log2(e), and ln 2 split in two so that ``k * _LN2_HI`` is exact (Cody-Waite)
_LOG2E, _LN2_HI, _LN2_LO = np.float32(1.4426950408889634), np.float32(0.693359375), \
    np.float32(-2.12194440e-4)


def uses_closed_form(spec: PredictorSpec, device: torch.device) -> bool:
    """Whether predictors of ``spec`` on ``device`` train with :func:`fit_logistic`."""
    return spec.linear and device.type == "cpu"


def fit_logistic(
    model: nn.Linear,
    x: torch.Tensor,
    y: torch.Tensor,
    weights: torch.Tensor,
    *,
    orders: torch.Tensor,
    batch_size: int,
    lr: float,
    rows: torch.Tensor | None = None,
) -> None:
    """:func:`~dvrl_env.predictors.fit_weighted` for a ``torch.nn.Linear`` on the CPU.

    ``rows``: the batch as rows of ``x`` and ``y`` (``weights`` and ``orders`` index it);
    default: all of them. Saves gathering the batch's features first.
    """
    if rows is None:
        rows = torch.arange(len(weights))
    weight, bias = model.weight.detach().numpy(), model.bias.detach().numpy()
    params = np.concatenate([weight, bias[:, None]], axis=1)[None]
    train_logistic(params, x.numpy(), y.numpy(), rows.numpy()[None], weights.numpy()[None],
                   orders.numpy()[None], batch_size=batch_size, lr=lr)
    weight[...] = params[0, :, :-1]
    bias[...] = params[0, :, -1]


def train_logistic(
    params: np.ndarray,
    x: np.ndarray,
    labels: np.ndarray,
    rows: np.ndarray,
    weights: np.ndarray,
    orders: np.ndarray,
    *,
    batch_size: int,
    lr: float,
) -> None:
    """Train K logistic predictors in place.

    ``params`` ``(K, C, d + 1)``: each predictor's weight rows with its bias as the last
    column. ``rows`` ``(K, N)``: each predictor's batch, as rows of ``x`` ``(M, d)`` and
    ``labels`` ``(M,)``; ``weights`` ``(K, N)``: its selection weights; ``orders``
    ``(K, epochs, N)``: the order in which each epoch visits its batch. Mini-batches are
    consecutive runs of ``batch_size`` visits and a mini-batch's loss is
    ``sum(s_i l_i) / len``: points weighted 0 add nothing to a gradient and are skipped,
    while the schedule and the mini-batch sizes stay.
    """
    k, classes, width = params.shape
    if rows.shape != weights.shape or rows.ndim != 2 or len(rows) != k or \
            orders.ndim != 3 or orders.shape[0] != k or orders.shape[2] != rows.shape[1]:
        raise ValueError(f"rows {rows.shape} and weights {weights.shape} must both be (K={k}, "
                         f"N), and orders {orders.shape} (K, epochs, N).")
    if x.ndim != 2 or x.shape[1] + 1 != width:
        raise ValueError(f"x has shape {x.shape}; the predictors take {width - 1} features.")
    x = np.ascontiguousarray(x, dtype=np.float32)
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    weights = np.ascontiguousarray(weights, dtype=np.float32)
    orders = np.ascontiguousarray(orders, dtype=np.int64)
    if rows.size and (rows.min() < 0 or rows.max() >= len(x)):
        raise ValueError(f"rows must be rows of x, in [0, {len(x)}).")
    if orders.size and (orders.min() < 0 or orders.max() >= rows.shape[1]):
        raise ValueError(f"orders must index the batch, in [0, {rows.shape[1]}).")
    work = np.ascontiguousarray(params, dtype=np.float32)
    if classes == 2:
        # the softmax is a sigmoid of z_1 - z_0, the two rows' gradients are opposite and
        # so are Adam's updates: train the difference, then split the total update
        delta = np.ascontiguousarray(work[:, 1] - work[:, 0])
        start = delta.copy()
        _train_binary(delta, x, (labels == 1).astype(np.float32), rows, weights, orders,
                      batch_size, lr, BETA1, BETA2, EPS)
        total = (start - delta) / 2.0  # row 1 lost it, row 0 gained it
        work[:, 1] -= total
        work[:, 0] += total
    else:
        _train_softmax(work, x, labels.astype(np.int64), rows, weights, orders, batch_size,
                       lr, BETA1, BETA2, EPS)
    params[...] = work


@njit(cache=True, fastmath=_FASTMATH)
def _adam_step(params, grad, m, v, t, lr, beta1, beta2, eps, factor):
    """torch.optim.Adam's update of ``params`` (1-D) at step ``t`` (from 1), times
    ``factor``."""
    step_size = lr / (1.0 - beta1**t) * factor
    correction = np.sqrt(1.0 - beta2**t)
    for j in range(params.shape[0]):
        g = grad[j]
        m[j] = beta1 * m[j] + (1.0 - beta1) * g
        v[j] = beta2 * v[j] + (1.0 - beta2) * g * g
        params[j] -= step_size * m[j] / (np.sqrt(v[j]) / correction + eps)


@njit(cache=True, fastmath=_FASTMATH)
def _exp(z, out, bits):
    """``out = exp(z)`` elementwise, vectorised: numba's ``np.exp`` calls libm once per
    element (no vector math library here), so a mini-batch's exponentials are the
    critical path of the fit. Cody-Waite reduction ``z = k ln2 + r`` and a degree-6
    polynomial for ``exp(r)``, then ``2^k`` written into the exponent bits; relative
    error under 3e-7 on [-87, 87] (inputs are clamped there: a probability under 1e-37
    is 0 for every purpose here)."""
    for i in range(z.shape[0]):
        v = min(max(z[i], np.float32(-87.0)), np.float32(87.0))
        k = np.floor(v * _LOG2E + np.float32(0.5))
        r = v - k * _LN2_HI - k * _LN2_LO
        p = np.float32(1.0 / 720.0)
        p = p * r + np.float32(1.0 / 120.0)
        p = p * r + np.float32(1.0 / 24.0)
        p = p * r + np.float32(1.0 / 6.0)
        p = p * r + np.float32(0.5)
        p = p * r + np.float32(1.0)
        out[i] = p * r + np.float32(1.0)
        bits[i] = (np.int32(k) + np.int32(127)) << 23
    powers = bits.view(np.float32)
    for i in range(z.shape[0]):
        out[i] *= powers[i]


@njit(cache=True, fastmath=_FASTMATH)
def _train_binary(delta, x, y1, rows, weights, orders, batch_size, lr, beta1, beta2, eps):
    """Two classes: ``delta`` ``(K, d + 1)`` is ``w_1 - w_0``, trained by twice the
    update Adam makes to ``w_1``. A mini-batch runs in three passes (its logits, their
    exponentials at once, the gradient), so the exponentials vectorise."""
    k_all, epochs, n = orders.shape
    d = x.shape[1]
    grad = np.empty(d + 1, dtype=np.float32)
    m = np.empty(d + 1, dtype=np.float32)
    v = np.empty(d + 1, dtype=np.float32)
    neg_z = np.empty(batch_size, dtype=np.float32)  # the mini-batch's selected visits
    exps = np.empty(batch_size, dtype=np.float32)
    bits = np.empty(batch_size, dtype=np.int32)
    visit_rows = np.empty(batch_size, dtype=np.int64)
    visit_weights = np.empty(batch_size, dtype=np.float32)
    for k in range(k_all):
        w = delta[k]
        m[:] = 0.0
        v[:] = 0.0
        t = 0
        for e in range(epochs):
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                scale = np.float32(1.0 / (stop - start))
                grad[:] = 0.0
                c = 0
                for i in range(start, stop):
                    s = weights[k, orders[k, e, i]]
                    if s == 0:
                        continue
                    r = rows[k, orders[k, e, i]]
                    row = x[r]
                    z = w[d]
                    for j in range(d):
                        z += row[j] * w[j]
                    neg_z[c] = -z
                    visit_rows[c] = r
                    visit_weights[c] = s
                    c += 1
                _exp(neg_z[:c], exps[:c], bits[:c])
                for i in range(c):
                    r = visit_rows[i]
                    row = x[r]
                    err = (np.float32(1.0) / (np.float32(1.0) + exps[i])
                           - y1[r]) * visit_weights[i] * scale
                    for j in range(d):
                        grad[j] += err * row[j]
                    grad[d] += err
                t += 1
                _adam_step(w, grad, m, v, t, lr, beta1, beta2, eps, 2.0)


@njit(cache=True, fastmath=_FASTMATH)
def _train_softmax(params, x, labels, rows, weights, orders, batch_size, lr, beta1, beta2,
                   eps):
    """Any number of classes: ``params`` ``(K, C, d + 1)``; the mini-batch's three passes
    as in :func:`_train_binary`."""
    k_all, classes, width = params.shape
    epochs, n = orders.shape[1], orders.shape[2]
    d = width - 1
    grad = np.empty((classes, width), dtype=np.float32)
    m = np.empty(classes * width, dtype=np.float32)
    v = np.empty(classes * width, dtype=np.float32)
    logits = np.empty(batch_size * classes, dtype=np.float32)  # visit-major
    exps = np.empty(batch_size * classes, dtype=np.float32)
    bits = np.empty(batch_size * classes, dtype=np.int32)
    visit_rows = np.empty(batch_size, dtype=np.int64)
    visit_weights = np.empty(batch_size, dtype=np.float32)
    for k in range(k_all):
        w = params[k]
        m[:] = 0.0
        v[:] = 0.0
        t = 0
        for e in range(epochs):
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                scale = np.float32(1.0 / (stop - start))
                grad[:] = 0.0
                c = 0
                for i in range(start, stop):
                    s = weights[k, orders[k, e, i]]
                    if s == 0:
                        continue
                    r = rows[k, orders[k, e, i]]
                    row = x[r]
                    z = logits[c * classes:(c + 1) * classes]
                    for a in range(classes):
                        acc = w[a, d]
                        for j in range(d):
                            acc += row[j] * w[a, j]
                        z[a] = acc
                    top = z.max()
                    for a in range(classes):
                        z[a] -= top
                    visit_rows[c] = r
                    visit_weights[c] = s
                    c += 1
                _exp(logits[:c * classes], exps[:c * classes], bits[:c * classes])
                for i in range(c):
                    r = visit_rows[i]
                    row = x[r]
                    p = exps[i * classes:(i + 1) * classes]
                    total = np.float32(0.0)
                    for a in range(classes):
                        total += p[a]
                    for a in range(classes):
                        err = (p[a] / total - (np.float32(1.0) if a == labels[r]
                                               else np.float32(0.0))) * visit_weights[i] * scale
                        for j in range(d):
                            grad[a, j] += err * row[j]
                        grad[a, d] += err
                t += 1
                _adam_step(w.reshape(-1), grad.reshape(-1), m, v, t, lr, beta1, beta2, eps,
                           1.0)
