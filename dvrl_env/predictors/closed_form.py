"""The logistic predictor trained in closed form: no autograd, no optimiser object.

With the official schedule (100 epochs over a batch of 1000 in mini-batches of 256) an
env step makes 400 Adam steps on a model of a few hundred weights, and
:func:`~dvrl_env.predictors.fit_weighted` spends almost all its time in autograd and
optimiser overhead. For a linear model the gradient of the weighted softmax
cross-entropy is explicit, ``(softmax(x W^T + b) - onehot(y))^T (s * x) / n``, so this
module computes it and Adam's update with a handful of numpy calls per mini-batch, on
the CPU. Same schedule, same mini-batches, same loss and the same Adam (torch's
defaults): the weights agree with ``fit_weighted`` up to float rounding
(``tests/test_batched.py`` checks it), about 20x faster. K predictors that visit the same
rows in the same order (sub-envs in lockstep) train together, as columns of one matrix.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.special import expit
from torch import nn

from dvrl_env.predictors.models import PredictorSpec

BETA1, BETA2, EPS = 0.9, 0.999, 1e-8  # torch.optim.Adam's defaults, as make_adam uses


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
) -> None:
    """:func:`~dvrl_env.predictors.fit_weighted` for a ``torch.nn.Linear`` on the CPU."""
    order_array = orders.numpy()
    fit_logistic_arrays(
        model.weight.detach().numpy()[None], model.bias.detach().numpy()[None],
        augment(x.numpy()), y.numpy(), order_array, weights.numpy()[order_array][None],
        batch_size=batch_size, lr=lr,
    )


def augment(x: np.ndarray) -> np.ndarray:
    """``[x, 1]``: the bias becomes the last column of the weights."""
    return np.concatenate([x, np.ones((len(x), 1), dtype=x.dtype)], axis=1)


def fit_logistic_arrays(
    weight: np.ndarray,
    bias: np.ndarray,
    x_aug: np.ndarray,
    labels: np.ndarray,
    index: np.ndarray,
    sample_weights: np.ndarray,
    *,
    batch_size: int,
    lr: float,
) -> None:
    """Train K predictors' ``weight`` ``(K, C, d)`` and ``bias`` ``(K, C)`` in place.

    ``index`` ``(epochs, N)``: the rows of ``x_aug`` (``(M, d + 1)``, see :func:`augment`)
    and ``labels`` that each epoch visits, in order, the same for the K predictors;
    ``sample_weights`` ``(K, epochs, N)``: each predictor's weight of each visit (the
    same rows in every epoch, in another order). Mini-batches are consecutive runs of
    ``batch_size`` visits, a mini-batch's loss is ``sum(s_i l_i) / len``. Rows that every
    predictor weights 0 add exactly nothing to a gradient, so they are left out of the
    arithmetic (the mini-batch schedule and sizes stay).
    """
    k, classes, _ = weight.shape
    epochs, n = index.shape
    starts = np.arange(0, n, batch_size)
    sizes = np.diff(np.append(starts, n))
    scaled = sample_weights * np.repeat((1.0 / sizes).astype(np.float32), sizes)
    kept = (scaled != 0).any(axis=0) if k > 1 else scaled[0] != 0
    n_kept = np.count_nonzero(kept[0])
    if np.count_nonzero(kept) != n_kept * epochs:
        raise ValueError("Every epoch must visit the same rows (with the same weights).")
    flat = np.flatnonzero(kept)  # the kept visits, and where each mini-batch's end
    ends = np.cumsum(np.add.reduceat(kept, starts, axis=1, dtype=np.int64), axis=1)
    # visit weights laid out (epochs, n_kept, K): one row per visit, one column per predictor
    kept_weights = scaled.reshape(k, -1)[:, flat].T.reshape(epochs, n_kept, k)
    visits = Visits(index.take(flat).reshape(epochs, n_kept),
                    np.ascontiguousarray(kept_weights, dtype=np.float32),
                    np.concatenate([np.zeros((epochs, 1), dtype=np.int64), ends], axis=1))
    # parameters as columns: (d + 1, K * C), predictor-major
    params = np.concatenate([weight, bias[:, :, None]], axis=2).astype(np.float32)
    columns = np.ascontiguousarray(params.transpose(2, 0, 1).reshape(-1, k * classes))
    train = _train_binary if classes == 2 else _train_softmax
    train(columns, np.ascontiguousarray(x_aug, dtype=np.float32), labels, visits, lr, k)
    params = columns.reshape(-1, k, classes).transpose(1, 2, 0)
    weight[...] = params[:, :, :-1]
    bias[...] = params[:, :, -1]


class Visits:
    """Per epoch: the rows visited (``rows``, ``(epochs, n)``), their scaled weights
    (``(epochs, n, K)``), and the mini-batch boundaries in that list (``bounds``,
    ``(epochs, batches + 1)``)."""

    def __init__(self, rows: np.ndarray, weights: np.ndarray, bounds: np.ndarray):
        self.rows, self.weights, self.bounds = rows, weights, bounds.tolist()
        self.steps = (bounds.shape[1] - 1) * bounds.shape[0]

    def epochs(self, x: np.ndarray):
        """Yield each epoch's gathered features, rows, weights and mini-batch slices."""
        x_epoch = np.empty((self.rows.shape[1], x.shape[1]), dtype=np.float32)
        for rows, weights, bounds in zip(self.rows, self.weights, self.bounds, strict=True):
            np.take(x, rows, axis=0, out=x_epoch, mode="clip")
            parts = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
            yield x_epoch, rows, weights, parts


class _Adam:
    """torch's Adam, with moments kept as ``m / (1 - beta1)`` and ``v / (1 - beta2)`` so a
    step is nine numpy calls; ``step`` returns ``factor`` times the update to subtract
    (in a buffer that the next step reuses)."""

    def __init__(self, shape: tuple[int, ...], lr: float, steps: int, factor: float = 1.0):
        t = np.arange(1, steps + 1, dtype=np.float64)
        c = np.sqrt((1.0 - BETA2) / (1.0 - BETA2**t))
        self.eps = (EPS / c).tolist()
        self.inverse_step = (c * (1.0 - BETA1**t) / (lr * (1.0 - BETA1) * factor)).tolist()
        self.t = 0
        self.m = np.zeros(shape, dtype=np.float32)
        self.v = np.zeros(shape, dtype=np.float32)
        self.buffer = np.empty(shape, dtype=np.float32)

    def step(self, grad: np.ndarray) -> np.ndarray:
        """``grad`` is overwritten."""
        m, v, out, t = self.m, self.v, self.buffer, self.t
        self.t += 1
        m *= BETA1
        m += grad
        grad *= grad
        v *= BETA2
        v += grad
        np.sqrt(v, out=out)
        out += self.eps[t]
        out *= self.inverse_step[t]
        return np.divide(m, out, out=out)


def _train_binary(columns, x, labels, visits: Visits, lr, k) -> None:
    """Two classes: the softmax is a sigmoid of ``z_1 - z_0`` and the two weight rows'
    gradients are opposite, so Adam's updates are too: one column of work per predictor,
    applied to both of its rows."""
    y1 = (labels == 1).astype(np.float32)[:, None]
    start = columns[:, 1::2] - columns[:, 0::2]  # (d + 1, K)
    delta = start.copy()
    adam = _Adam(delta.shape, lr, visits.steps, factor=2.0)
    for x_epoch, rows, weights, parts in visits.epochs(x):
        y_epoch = y1[rows]
        for part in parts:
            xb = x_epoch[part]
            error = expit(xb @ delta)
            error -= y_epoch[part]
            error *= weights[part]
            delta -= adam.step(xb.T @ error)
    total = (start - delta) / 2.0  # the sum of the updates: row 1 lost it, row 0 gained it
    columns[:, 1::2] -= total
    columns[:, 0::2] += total


def _train_softmax(columns, x, labels, visits: Visits, lr, k) -> None:
    """Any number of classes: logits laid out ``(K, C, n)`` so the softmax runs down rows."""
    classes = columns.shape[1] // k
    onehot = np.ascontiguousarray(np.eye(classes, dtype=np.float32)[labels].T)  # (C, M)
    params = np.ascontiguousarray(columns.T)  # (K * C, d + 1)
    adam = _Adam(params.shape, lr, visits.steps)
    for x_epoch, rows, weights, parts in visits.epochs(x):
        y_epoch = onehot[:, rows]
        w_epoch = np.ascontiguousarray(weights.T)[:, None, :]  # (K, 1, n)
        for part in parts:
            xb = x_epoch[part]
            z = (params @ xb.T).reshape(k, classes, -1)
            z -= z.max(axis=1, keepdims=True)
            np.exp(z, out=z)
            z /= z.sum(axis=1, keepdims=True)
            z -= y_epoch[:, part]
            z *= w_epoch[:, :, part]
            params -= adam.step(z.reshape(k * classes, -1) @ xb)
    columns[...] = params.T
