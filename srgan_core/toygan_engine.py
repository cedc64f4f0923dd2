"""The toy GAN's fast engine: G, D, their Adam optimisers and the GAN step, compiled with numba.

`toygan.reference_train` is the GAN as the maths says, in plain PyTorch (nn.Sequential,
torch.optim.Adam, BCEWithLogitsLoss). This module computes the same steps without PyTorch. With 32
values a batch there is little to compute: a step is five 128 x 128 matrix products and an Adam
update of 17k weights. What costs is calling: PyTorch dispatches ~100 operations a step, and even
numpy, written for it, made ~85 array calls a step, each touching the data once more. So the step
is written as loops, compiled once (numba, cached on disk), and a whole stretch of epochs runs in
one call:

- each network keeps all its weights in one flat float32 vector, nn.Linear's (weight, bias) per
  layer in order: one vector of gradients, one Adam loop, and each layer a view of it;
- the two 128 x 128 layers' products (W @ a forward, W.T @ du and du @ a.T backward) go to the
  BLAS (sgemm), with a row per unit and a column per value, its fast layout at these sizes;
- everything else (the layers with one input or one output, the leaky ReLU, the loss gradient,
  Adam, the moving average of G) is loops that visit each number once, in float32 but for the
  sums, and allocate next to nothing: the buffers are made once per FastGAN.

Rounding: Adam does torch's operations in torch's order, each rounding where torch's does (but for
the two multiply-adds torch fuses in its updates of m and v), because the GAN amplifies any rounding
difference: one ulp in a step can move a hidden unit across its kink, and after some hundreds of
epochs two trainers part. The sums the loops make (over a layer's units, over a batch) are added up
in double and rounded once, close to what the BLAS's fused multiply-adds give. Summed in float32
instead, G's weights parted from the PyTorch loop's within 300 epochs in 3 of 32 runs (16 seeds on
AVX-512 and on AVX2 kernels); summed in double, in none, as with the previous numpy engine (and
D's curve in one seed of 24 more, as the numpy engine's in another). tests/test_toygan.py checks
step for step that this engine and the PyTorch loop agree, that each network's gradients are
autograd's and that `Adam` is torch.optim.Adam. Nothing here knows about data, snapshots or files:
`toygan.train` drives it; benchmarks/toygan.py times it.
"""
from __future__ import annotations

import functools
import math
import threading
from typing import TYPE_CHECKING

import numpy as np
from numba import njit
from threadpoolctl import ThreadpoolController

if TYPE_CHECKING:
    from srgan_core.toygan import ToyGANConfig

Layers = list[tuple[np.ndarray, np.ndarray]]  # (weight (out, in), bias (out,)) per layer, nn.Linear's layout

_jit = functools.partial(njit, cache=True, nogil=True, error_model="numpy")
F32 = np.float32


# ---------------------------------------------------------------- the two networks, compiled
# G is 1 -> h -> 1 and D is 1 -> d -> d -> 1, both with a leaky ReLU after each hidden layer.
# Flat layouts, nn.Linear's order: G = [w1 (h), b1 (h), w2 (h), b2 (1)],
# D = [w1 (d), b1 (d), W2 (d, d), b2 (d), w3 (d), b3 (1)]. Hidden activations are (units, values).


@_jit
def _d_views(p, d):
    """D's layers as views of its flat vector (weights or gradients alike)."""
    o = 2 * d + d * d
    return p[:d], p[d : 2 * d], p[2 * d : o].reshape((d, d)), p[o : o + d], p[o + d : o + 2 * d], p[o + 2 * d :]


# Sums in double of float32 values and products (each product exact in double): their order only
# moves the result by ~1e-16 before it is rounded to float32, so the compiler may reorder them
# ("reassoc") and add up several lanes at once instead of one long chain of dependent additions.
_sums = functools.partial(njit, cache=True, nogil=True, error_model="numpy", fastmath={"reassoc"})


@_sums
def _sum64(v):
    """The sum of a float32 vector, added up in double."""
    total = 0.0
    for x in v:
        total += x
    return total


@_sums
def _dot64(u, v):
    """The dot product of two float32 vectors, added up in double."""
    total = 0.0
    for i in range(u.size):
        total += np.float64(u[i]) * v[i]
    return total


@_jit
def _leaky(u, slope):
    """The leaky ReLU of u, and its slope there (1 or `slope`), which backward multiplies by."""
    return (u, F32(1)) if u > 0 else (u * slope, slope)


@_jit
def _g_forward(p, z, slope, a, s, y):
    """y = G(z); keeps the hidden activations a and the leaky-ReLU slopes s (1 or `slope`) for backward."""
    h, n = a.shape
    w1, b1, w2, b2 = p[:h], p[h : 2 * h], p[2 * h : 3 * h], p[3 * h]
    acc = np.zeros(n)
    for k in range(h):
        for j in range(n):
            a[k, j], s[k, j] = _leaky(w1[k] * z[j] + b1[k], slope)
            acc[j] += np.float64(w2[k]) * a[k, j]
    for j in range(n):
        y[j] = F32(acc[j]) + b2


@_jit
def _g_backward(p, z, a, s, dy, grad):
    """G's weight and bias gradients for d loss / d y = dy, after _g_forward(p, z, ...)."""
    h, n = a.shape
    w2 = p[2 * h : 3 * h]
    du = np.empty(n, F32)  # d loss / d hidden pre-activation, one unit at a time
    for k in range(h):
        for j in range(n):
            du[j] = (w2[k] * dy[j]) * s[k, j]
        grad[k], grad[h + k], grad[2 * h + k] = _dot64(du, z), _sum64(du), _dot64(dy, a[k])
    grad[3 * h] = _sum64(dy)


@_jit
def _d_forward(p, x, slope, a1, s1, u2, a2, s2, logits):
    """logits = D(x); keeps what backward reads in a1, s1, a2, s2 (u2 is scratch)."""
    d, n = a1.shape
    w1, b1, W2, b2, w3, b3 = _d_views(p, d)
    for k in range(d):
        for j in range(n):
            a1[k, j], s1[k, j] = _leaky(w1[k] * x[j] + b1[k], slope)
    np.dot(W2, a1, u2)
    acc = np.zeros(n)
    for k in range(d):
        for j in range(n):
            a2[k, j], s2[k, j] = _leaky(u2[k, j] + b2[k], slope)
            acc[j] += np.float64(w3[k]) * a2[k, j]
    for j in range(n):
        logits[j] = F32(acc[j]) + b3[0]


@_jit
def _d_backward(p, x, a1, s1, a2, s2, dlogits, du2, da1, grad, dx):
    """Backpropagate d loss / d logits through D after _d_forward(p, x, ...): into `grad` (D's
    gradients) when it has D's size, and into dx (d loss / d x) when it has x's (pass empty
    arrays to skip either)."""
    d, n = a1.shape
    w1, _, W2, _, w3, _ = _d_views(p, d)
    params = grad.size == p.size
    for k in range(d):
        for j in range(n):
            du2[k, j] = (w3[k] * dlogits[j]) * s2[k, j]
        if params:
            grad[-1 - d + k] = _dot64(dlogits, a2[k])
    np.dot(W2.T, du2, da1)
    for k in range(d):  # da1 becomes du1, d loss / d layer-1 pre-activation
        for j in range(n):
            da1[k, j] *= s1[k, j]
    if params:
        gw1, gb1, gW2, gb2, _, gb3 = _d_views(grad, d)
        gb3[0] = _sum64(dlogits)
        np.dot(du2, a1.T, gW2)
        for k in range(d):
            gb2[k] = _sum64(du2[k])
            gw1[k], gb1[k] = _dot64(da1[k], x), _sum64(da1[k])
    if dx.size == n:
        acc = np.zeros(n)
        for k in range(d):
            for j in range(n):
                acc[j] += np.float64(w1[k]) * da1[k, j]
        for j in range(n):
            dx[j] = acc[j]


@_jit
def _adam(p, grad, m, v, t, lr, beta1, beta2, eps):
    """torch.optim.Adam's update number t (no weight decay, no amsgrad), in place, in torch's order:
    m.lerp_(g, 1 - b1); v.mul_(b2).addcmul_(g, g, 1 - b2); denom = v.sqrt() / sqrt(1 - b2^t) + eps;
    p.addcdiv_(m, denom, -lr / (1 - b1^t)). The step sizes are computed in double, as torch does."""
    w1, w2, b2 = F32(1 - beta1), F32(1 - beta2), F32(beta2)
    step, root, e = F32(-lr / (1 - beta1**t)), F32(math.sqrt(1 - beta2**t)), F32(eps)
    for i in range(p.size):
        g = grad[i]
        mi = m[i] + (g - m[i]) * w1
        vi = v[i] * b2 + (g * w2) * g
        m[i], v[i] = mi, vi
        p[i] += (mi * step) / (np.sqrt(vi) / root + e)


@_jit
def _expit(x):
    return F32(1) / (F32(1) + np.exp(-x))


@_jit
def ema_decay(ema: float, t: int) -> float:
    """The average's decay after t updates: short memory at first, so it never drags the
    random initial weights along (the schedule of TensorFlow's ExponentialMovingAverage)."""
    return min(ema, (1 + t) / (10 + t))


@_jit
def _avg_weight(ema, t):
    """How far the moving average of G moves towards G after update t (0: no average kept). Called
    from Python it comes back as a Python float: make it float32 again before passing it on."""
    return F32(1 - ema_decay(ema, t)) if ema else F32(0)


@_jit
def _d_step(gp, dp, dgrad, dm, dv, t, real, z_d, logits, slope, lr, beta1, beta2, eps, gw, dw):
    """The first half of an epoch: D learns to tell real (label 1) from generated (label 0), G fixed.
    gw = G's buffers for b values, dw = D's for 2b; writes D's 2b logits."""
    b = real.size
    x, a1, s1, u2, a2, s2, dlogits, du2, da1 = dw
    x[:b] = real
    ga, gs = gw[1], gw[2]
    _g_forward(gp, z_d, slope, ga, gs, x[b:])
    _d_forward(dp, x, slope, a1, s1, u2, a2, s2, logits)
    scale = F32(1 / (2 * b))  # d mean BCE / d logit = (sigmoid(logit) - label) / 2b
    for j in range(2 * b):
        dlogits[j] = (_expit(logits[j]) - (F32(1) if j < b else F32(0))) * scale
    _d_backward(dp, x, a1, s1, a2, s2, dlogits, du2, da1, dgrad, dlogits[:0])
    _adam(dp, dgrad, dm, dv, t, lr, beta1, beta2, eps)


@_jit
def _g_step(gp, ggrad, gm, gv, t, dp, z_g, logits, slope, lr, beta1, beta2, eps, g_avg, avg_weight, gw, dw):
    """The second half: G learns to make D call its values real (label 1), through the fixed D; then
    the moving average of G moves by avg_weight (0: no average kept). gw, dw: buffers for b values."""
    y, a, s, dy = gw
    x, a1, s1, u2, a2, s2, dlogits, du2, da1 = dw
    b = z_g.size
    _g_forward(gp, z_g, slope, a, s, y)
    _d_forward(dp, y, slope, a1, s1, u2, a2, s2, logits)
    scale = F32(1 / b)
    for j in range(b):
        dlogits[j] = (_expit(logits[j]) - F32(1)) * scale
    _d_backward(dp, y, a1, s1, a2, s2, dlogits, du2, da1, dlogits[:0], dy)
    _g_backward(gp, z_g, a, s, dy, ggrad)
    _adam(gp, ggrad, gm, gv, t, lr, beta1, beta2, eps)
    if avg_weight:
        for i in range(gp.size):
            g_avg[i] += (gp[i] - g_avg[i]) * avg_weight


@_jit
def _epochs(gp, ggrad, gm, gv, dp, dgrad, dm, dv, t, g_avg, ema, real, z_d, z_g, logits_d, logits_g,
            slope, lr, beta1, beta2, eps, gw, dw2, dw):
    """Epochs t+1 .. t+len(real): _d_step then _g_step on each row of real, z_d, z_g."""
    for i in range(real.shape[0]):
        t += 1
        _d_step(gp, dp, dgrad, dm, dv, t, real[i], z_d[i], logits_d[i], slope, lr, beta1, beta2, eps, gw, dw2)
        _g_step(gp, ggrad, gm, gv, t, dp, z_g[i], logits_g[i], slope, lr, beta1, beta2, eps, g_avg,
                _avg_weight(ema, t), gw, dw)


# ---------------------------------------------------------------- the Python side


def _values(x: np.ndarray) -> np.ndarray:
    """x as a contiguous float32 array (a copy only when it is not one), the one kind the compiled
    functions are built for: anything else would compile another version, in other arithmetic."""
    return np.ascontiguousarray(x, F32)


def _g_work(h: int, n: int) -> tuple[np.ndarray, ...]:
    """G's buffers for n values: output, activations, slopes, gradient at the output."""
    return np.empty(n, F32), np.empty((h, n), F32), np.empty((h, n), F32), np.empty(n, F32)


def _d_work(d: int, n: int) -> tuple[np.ndarray, ...]:
    """D's buffers for n values: input, a1, s1, u2, a2, s2, d logits, du2, da1."""
    return (np.empty(n, F32), *(np.empty((d, n), F32) for _ in range(5)), np.empty(n, F32),
            np.empty((d, n), F32), np.empty((d, n), F32))


def flatten(layers: Layers) -> np.ndarray:
    """nn.Linear (weight, bias) pairs as one flat float32 vector, in order."""
    return np.concatenate([np.r_[np.ravel(w), np.ravel(b)] for w, b in layers]).astype(F32)


def unflatten(flat: np.ndarray, widths: tuple[int, ...]) -> Layers:
    """The inverse of flatten for a net of these widths: copies, nn.Linear's shapes."""
    layers, o = [], 0
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        w = flat[o : o + fan_in * fan_out].reshape(fan_out, fan_in).copy()
        o += fan_in * fan_out
        layers.append((w, flat[o : o + fan_out].copy()))
        o += fan_out
    return layers


class Adam:
    """torch.optim.Adam (no weight decay, no amsgrad) on one flat float32 vector, in place: m and v
    are torch's exp_avg and exp_avg_sq, not a rescaled state, so it could be handed to torch."""

    def __init__(self, params: np.ndarray, grads: np.ndarray, lr: float, betas: tuple[float, float], eps: float = 1e-8):
        self.params, self.grads = params, grads
        self.lr, self.betas, self.eps = lr, betas, eps
        self.m, self.v = np.zeros_like(params), np.zeros_like(params)
        self.t = 0

    def step(self) -> None:
        self.t += 1
        _adam(self.params, self.grads, self.m, self.v, self.t, self.lr, *self.betas, self.eps)


@functools.cache
def blas_threads() -> ThreadpoolController:
    """The BLAS libraries' thread settings (finding them takes milliseconds: once)."""
    return ThreadpoolController()


class FastGAN:
    """G, D and their optimisers, and the GAN step: one epoch (`step`), its two halves (`step_d`,
    `step_g`, for the step-by-step page) or a stretch of epochs in one compiled call (`run`). All
    give the same bits. Call them with the BLAS on one thread (toygan.train does): a matmul split
    over threads rounds differently on some kernels."""

    def __init__(self, config: ToyGANConfig, g_layers: Layers, d_layers: Layers) -> None:
        c = config
        self.config = c
        self.g_widths, self.d_widths = (1, c.hidden, 1), (1, c.d_hidden, c.d_hidden, 1)
        self.g_params, self.d_params = flatten(g_layers), flatten(d_layers)
        self.g_grads, self.d_grads = np.zeros_like(self.g_params), np.zeros_like(self.d_params)
        betas = (c.beta1, c.beta2)
        self.opt_g = Adam(self.g_params, self.g_grads, c.lr, betas)
        self.opt_d = Adam(self.d_params, self.d_grads, c.lr, betas)
        self.slope = F32(c.negative_slope)
        self.ema = c.ema
        self.g_avg = self.g_params.copy()
        b = c.batch_size
        self._gw = _g_work(c.hidden, b)
        self._dw2, self._dw = _d_work(c.d_hidden, 2 * b), _d_work(c.d_hidden, b)

    def _optim(self) -> tuple:
        return self.config.lr, self.config.beta1, self.config.beta2, self.opt_d.eps

    def step_d(self, real: np.ndarray, z_d: np.ndarray, logits: np.ndarray) -> None:
        """D's update on b real values and G(z_d); writes D's 2b logits (real first) into `logits`."""
        self.opt_d.t += 1
        _d_step(self.g_params, self.d_params, self.d_grads, self.opt_d.m, self.opt_d.v, self.opt_d.t,
                _values(real), _values(z_d), logits, self.slope, *self._optim(), self._gw, self._dw2)

    def step_g(self, z_g: np.ndarray, logits: np.ndarray) -> None:
        """G's update through the fixed D on G(z_g), then the moving average; writes D's b logits."""
        self.opt_g.t += 1
        _g_step(self.g_params, self.g_grads, self.opt_g.m, self.opt_g.v, self.opt_g.t, self.d_params, _values(z_g), logits,
                self.slope, *self._optim(), self.g_avg, F32(_avg_weight(float(self.ema), self.opt_g.t)), self._gw, self._dw)

    def step(self, real: np.ndarray, z_d: np.ndarray, z_g: np.ndarray, logits_d: np.ndarray, logits_g: np.ndarray):
        """One epoch. Writes D's logits of both halves into logits_d / logits_g, for the loss history."""
        self.step_d(real, z_d, logits_d)
        self.step_g(z_g, logits_g)

    def run(self, real: np.ndarray, z_d: np.ndarray, z_g: np.ndarray, logits_d: np.ndarray, logits_g: np.ndarray):
        """len(real) epochs in one call, row i of each array being epoch i's (as `step` takes them)."""
        if self.opt_d.t != self.opt_g.t:
            raise RuntimeError("run() needs D and G at the same epoch: finish the half-done one with step_d/step_g")
        _epochs(self.g_params, self.g_grads, self.opt_g.m, self.opt_g.v, self.d_params, self.d_grads, self.opt_d.m,
                self.opt_d.v, self.opt_g.t, self.g_avg, float(self.ema), _values(real), _values(z_d), _values(z_g),
                logits_d, logits_g,
                self.slope, *self._optim(), self._gw, self._dw2, self._dw)
        self.opt_d.t += len(real)
        self.opt_g.t += len(real)

    def g_values(self, z: np.ndarray) -> np.ndarray:
        """G(z), the current G (not the average a run keeps), float32."""
        z = _values(z)
        y, a, s, _ = _g_work(self.config.hidden, len(z))
        _g_forward(self.g_params, z, self.slope, a, s, y)
        return y

    def d_logits(self, x: np.ndarray) -> np.ndarray:
        """D's logits for the values x, float32."""
        x = _values(x)
        _, a1, s1, u2, a2, s2, logits, _, _ = _d_work(self.config.d_hidden, len(x))
        _d_forward(self.d_params, x, self.slope, a1, s1, u2, a2, s2, logits)
        return logits

    def kept_generator(self) -> Layers:
        """The generator a run keeps: the moving average of G's weights (G itself when ema is 0)."""
        return unflatten(self.g_avg if self.ema else self.g_params, self.g_widths)

    def d_prob(self, x: np.ndarray) -> np.ndarray:
        """D(x), the probability D gives x of being real. On one BLAS thread, as every step runs:
        OpenBLAS's AVX2 kernels round a matmul split over threads differently, and a run's curve and
        the step-by-step page's must agree to the bit for the same weights."""
        with blas_threads().limit(limits=1, user_api="blas"):
            logits = self.d_logits(x)
        return F32(1) / (F32(1) + np.exp(-logits))


def warm_up() -> None:
    """Compile (or load from numba's disk cache) every function a run and the step-by-step page use,
    on a two-epoch GAN of the default sizes: the first compile takes seconds, which a server does
    better before its first visitor than during the first toy run."""
    from srgan_core.toygan import ToyGANConfig, _init_layers

    c = ToyGANConfig(epochs=2)
    rng = np.random.default_rng(0)
    gan = FastGAN(c, _init_layers((1, c.hidden, 1), rng), _init_layers((1, c.d_hidden, c.d_hidden, 1), rng))
    x = rng.standard_normal((2, c.batch_size)).astype(F32)
    logits_d, logits_g = np.empty((2, 2 * c.batch_size), F32), np.empty((2, c.batch_size), F32)
    with blas_threads().limit(limits=1, user_api="blas"):
        gan.run(x[:1], x[:1], x[:1], logits_d[:1], logits_g[:1])
        gan.step(x[1], x[1], x[1], logits_d[1], logits_g[1])
        gan.d_prob(x[0])
        gan.g_values(x[0])


def warm_up_in_background() -> threading.Thread:
    """warm_up() on a daemon thread (numba releases nothing a server needs meanwhile)."""
    thread = threading.Thread(target=warm_up, name="toygan-compile", daemon=True)
    thread.start()
    return thread
