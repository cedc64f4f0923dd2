"""The toy GAN's fast engine: G, D, their Adam optimisers and one GAN step, by hand in numpy.

`toygan.reference_train` is the GAN as the maths says, in plain PyTorch (nn.Sequential,
torch.optim.Adam, BCEWithLogitsLoss). This module computes exactly the same step without PyTorch:
with 32 values a batch, PyTorch spends its time dispatching operations, not computing, so what
makes 30,000 epochs take seconds instead of minutes is doing fewer, cheaper array operations:

- each network keeps all its weights in one flat float32 vector (so one vector of gradients and
  a single Adam update), each layer a view of it: nn.Linear's weight (out, in) with the bias as an
  extra column. A layer's input holds one value per column, with a row of ones under them, so one
  matmul does the affine map forward and one gives both gradients backward;
- that layout (units down, values across) is the one the BLAS is fastest with at these sizes:
  for D's 128 x 128 layer on 32 values, W @ a and W.T @ du take 8 us where a @ W and du @ W.T,
  the other layout, take 11 and 18 (OpenBLAS, one thread, AVX-512);
- every buffer, and every view of one that a step uses, is made once per batch size, and every
  result is written in place with `out=`;
- the leaky ReLU is a multiplication by a stored slope array, reused by the backward pass, and
  not made at all where nothing goes backward (G's output for D's step, D's decision curve);
- where a layer has one output, backward is an outer product: BLAS's sgemm with k = 1 writes it
  twice as fast as numpy's broadcasting of a column against a row.

Adam does torch's operations in torch's order (but for two multiply-adds torch fuses), because the
GAN amplifies any rounding difference: one ulp more or less in a step can move a hidden unit across
its kink, and after some hundreds of epochs the two trainers part. tests/test_toygan.py checks
step for step that this engine and the PyTorch loop agree, and that `Adam` is torch.optim.Adam.
Nothing here knows about data, snapshots or files: `toygan.train` drives it;
benchmarks/toygan.py times it.
"""
from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

import numpy as np
from scipy import special
from scipy.linalg import blas
from threadpoolctl import ThreadpoolController

if TYPE_CHECKING:
    from srgan_core.toygan import ToyGANConfig

Layers = list[tuple[np.ndarray, np.ndarray]]  # (weight (out, in), bias (out,)) per layer, nn.Linear's layout


class MLP:
    """A dense net on scalar inputs with leaky-ReLU hidden layers, all weights in one flat float32 vector.

    Layer l is a view W[l] (fan_out, fan_in + 1): nn.Linear's weight with the bias as its last column.
    Its input (fan_in + 1, n) holds one value per column and a last row of ones, so W[l] @ input is
    the affine map and du @ input.T gives the weight and bias gradients at once.
    """

    def __init__(self, widths: tuple[int, ...], negative_slope: float, layers: Layers) -> None:
        shapes = [(fan_out, fan_in + 1) for fan_in, fan_out in zip(widths[:-1], widths[1:])]
        offsets = np.cumsum([0] + [r * c for r, c in shapes])
        self.params = np.zeros(offsets[-1], np.float32)
        self.grads = np.zeros(offsets[-1], np.float32)
        self.W = [self.params[o : o + r * c].reshape(r, c) for o, (r, c) in zip(offsets, shapes)]
        self.dW = [self.grads[o : o + r * c].reshape(r, c) for o, (r, c) in zip(offsets, shapes)]
        for W, (weight, bias) in zip(self.W, layers):
            W[:, :-1] = weight
            W[:, -1] = bias
        self.widths = widths
        self.slope = np.float32(negative_slope)
        self._work: dict[int, Work] = {}

    def layers(self, params: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """(weight (out, in), bias) per layer, nn.Linear's layout; of `params` (a vector laid out
        like self.params, e.g. an average of them) when given."""
        source = self.params if params is None else params
        offsets = np.cumsum([0] + [W.size for W in self.W])
        mats = [source[o : o + W.size].reshape(W.shape) for o, W in zip(offsets, self.W)]
        return [(M[:, :-1].copy(), M[:, -1].copy()) for M in mats]

    def work(self, n: int) -> Work:
        """The buffers for batches of n values, made on first use."""
        w = self._work.get(n)
        if w is None:
            w = self._work[n] = Work(self, n)
        return w

    def forward(self, x: np.ndarray, for_backward: bool = True) -> np.ndarray:
        """Outputs for a batch of scalars (a view of the workspace: copy it to keep it). The activations
        stay in the batch-size workspace for backward; for_backward=False skips the slopes that only
        backward reads (the outputs are the same numbers)."""
        w = self._work.get(len(x)) or self.work(len(x))
        if x is not w.x:  # a caller may fill w.x itself (FastGAN.x) and save this copy
            w.x[:] = x
        for W, a, u, s, a_next in w.hidden:  # affine map, then leaky ReLU into the next layer's input
            np.matmul(W, a, out=u)
            if for_backward:  # a_next = u * s, s = 1 where u > 0 else the slope
                np.greater(u, 0, out=s)
                np.maximum(s, self.slope, out=s)
                np.multiply(u, s, out=a_next)
            else:  # max(u, slope * u): the same numbers without s
                np.multiply(u, self.slope, out=a_next)
                np.maximum(u, a_next, out=a_next)
        np.matmul(self.W[-1], w.a_last, out=w.u_last)
        return w.y

    def backward(self, dout: np.ndarray, param_grads: bool = True, input_grad: bool = False) -> np.ndarray | None:
        """Backpropagate d loss / d output of the last forward of this batch size: into self.grads
        if param_grads, and to the input (returned) if input_grad."""
        w = self._work[len(dout)]
        du = dout[None, :]  # d loss / d pre-activation of the layer at hand, (fan_out, n)
        for dW, a_T, weight, da, s, du_below in w.layers_down:
            if param_grads:
                np.matmul(du, a_T, out=dW)
            if da is None:  # the first layer: what is left is the gradient at the input
                if not input_grad:
                    return None
                np.matmul(weight.T, du, out=w.dx)
                return w.dx[0]
            if len(du) == 1:  # one output unit: da = weight.T (x) du, an outer product
                blas.sgemm(1.0, du, weight, trans_a=1, beta=0.0, c=da.T, overwrite_c=1)
            else:
                np.matmul(weight.T, du, out=da)
            np.multiply(da, s, out=du_below)  # through the leaky ReLU below
            du = du_below
        return None


class Work:
    """Buffers for one batch size n, allocated once, a row per unit and a column per value:
    a[l] the input of layer l with a last row of ones (x = a[0][0]), u[l] pre-activations,
    s[l] leaky-ReLU slopes, du[l] / da[l] gradients at u[l] / a[l + 1] (without the ones row).
    `hidden` and `layers_down` list, per layer, the views forward and backward work on, so a step
    makes none: (W, a, u, s, a_next) going up, (dW, a.T, weight, da, s, du) coming down."""

    def __init__(self, net: MLP, n: int) -> None:
        widths = net.widths
        self.a = [np.ones((width + 1, n), np.float32) for width in widths[:-1]]
        self.u = [np.empty((width, n), np.float32) for width in widths[1:]]
        self.s = [np.empty((width, n), np.float32) for width in widths[1:-1]]
        self.du = [np.empty((width, n), np.float32) for width in widths[1:-1]]
        self.da = [np.empty((width, n), np.float32) for width in widths[1:-1]]
        self.dx = np.empty((1, n), np.float32)
        self.x, self.a_last, self.u_last, self.y = self.a[0][0], self.a[-1], self.u[-1], self.u[-1][0]
        last = len(net.W) - 1
        self.hidden = [(net.W[l], self.a[l], self.u[l], self.s[l], self.a[l + 1][:-1]) for l in range(last)]
        self.layers_down = []
        for l in range(last, -1, -1):  # from the output down; nothing is below the first layer
            below = (self.da[l - 1], self.s[l - 1], self.du[l - 1]) if l else (None, None, None)
            self.layers_down.append((net.dW[l], self.a[l].T, net.W[l][:, :-1], *below))


class Adam:
    """torch.optim.Adam's update (no weight decay, no amsgrad), in place on one flat vector.
    torch's single-tensor operations in torch's order, each rounding where torch's does, but for
    the multiply-adds torch fuses in its updates of m and v (numpy has no fused multiply-add:
    those two land an ulp apart now and then). Rescaled moments (ten passes, not thirteen) made D's
    update a third faster, but the trainers then parted more often (in 5 of 32 runs over 16 seeds
    and two BLAS kernels, against 2)."""

    def __init__(self, params: np.ndarray, grads: np.ndarray, lr: float, betas: tuple[float, float], eps: float = 1e-8):
        self.params, self.grads = params, grads
        self.lr, self.betas, self.eps = lr, betas, eps
        self.m, self.v, self.denom, self.tmp = (np.zeros_like(params) for _ in range(4))
        self.t = 0

    def step(self) -> None:
        self.t += 1
        b1, b2 = self.betas
        g, m, v, denom, tmp = self.grads, self.m, self.v, self.denom, self.tmp
        np.subtract(g, m, out=tmp)  # m.lerp_(g, 1 - b1)
        tmp *= 1 - b1
        m += tmp
        v *= b2  # v.mul_(b2).addcmul_(g, g, value=1 - b2): v + ((1 - b2) * g) * g
        np.multiply(g, 1 - b2, out=tmp)
        tmp *= g
        v += tmp
        np.sqrt(v, out=denom)  # denom = v.sqrt() / sqrt(1 - b2^t) + eps
        denom /= math.sqrt(1 - b2**self.t)
        denom += self.eps
        np.multiply(m, -self.lr / (1 - b1**self.t), out=tmp)  # p.addcdiv_(m, denom, value=-lr / (1 - b1^t))
        tmp /= denom
        self.params += tmp


@functools.cache
def blas_threads() -> ThreadpoolController:
    """The BLAS libraries' thread settings (finding them takes milliseconds: once)."""
    return ThreadpoolController()


def ema_decay(ema: float, t: int) -> float:
    """The average's decay after t updates: short memory at first, so it never drags the
    random initial weights along (the schedule of TensorFlow's ExponentialMovingAverage)."""
    return min(ema, (1 + t) / (10 + t))


class FastGAN:
    """G, D and their optimisers, and the GAN step."""

    def __init__(self, config: ToyGANConfig, g_layers: Layers, d_layers: Layers) -> None:
        c = config
        self.G = MLP((1, c.hidden, 1), c.negative_slope, g_layers)
        self.D = MLP((1, c.d_hidden, c.d_hidden, 1), c.negative_slope, d_layers)
        betas = (c.beta1, c.beta2)
        self.opt_g = Adam(self.G.params, self.G.grads, c.lr, betas)
        self.opt_d = Adam(self.D.params, self.D.grads, c.lr, betas)
        b = c.batch_size
        self.x = self.D.work(2 * b).x  # D's batch: b real then b generated, written where D reads it
        self.y = np.r_[np.ones(b), np.zeros(b)].astype(np.float32)
        self.dlogit_d = np.empty(2 * b, np.float32)
        self.dlogit_g = np.empty(b, np.float32)
        self.one = np.float32(1)
        self.ema = c.ema
        self.g_avg = self.G.params.copy()
        self.g_diff = np.empty_like(self.g_avg)

    def step(self, real: np.ndarray, z_d: np.ndarray, z_g: np.ndarray, logits_d: np.ndarray, logits_g: np.ndarray):
        """One epoch. Writes D's logits of both steps into logits_d / logits_g, for the loss history."""
        b = len(real)
        G, D = self.G, self.D
        # 1. update D to tell real (label 1) from generated (label 0), G fixed.
        self.x[:b] = real
        self.x[b:] = G.forward(z_d, for_backward=False)
        logits_d[:] = D.forward(self.x)
        # d mean BCE / d logit = (sigmoid(logit) - label) / 2b
        np.subtract(special.expit(logits_d), self.y, out=self.dlogit_d)
        self.dlogit_d *= 1 / (2 * b)
        D.backward(self.dlogit_d)
        self.opt_d.step()
        # 2. update G through the fixed D: make D call generated values real (label 1).
        logits_g[:] = D.forward(G.forward(z_g))
        np.subtract(special.expit(logits_g), self.one, out=self.dlogit_g)
        self.dlogit_g *= 1 / b
        G.backward(D.backward(self.dlogit_g, param_grads=False, input_grad=True))
        self.opt_g.step()
        # 3. the generator we keep: a moving average of G's weights, G's own oscillation smoothed out.
        if self.ema:
            np.subtract(G.params, self.g_avg, out=self.g_diff)  # g_avg.lerp_(G, 1 - decay)
            self.g_diff *= 1 - ema_decay(self.ema, self.opt_g.t)
            self.g_avg += self.g_diff

    def kept_generator(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return self.G.layers(self.g_avg if self.ema else None)

    def d_prob(self, x: np.ndarray) -> np.ndarray:
        """D(x), the probability D gives x of being real. On one BLAS thread, as every step runs:
        OpenBLAS's AVX2 kernels round a matmul split over threads differently, and a run's curve and
        the step-by-step page's must agree to the bit for the same weights."""
        with blas_threads().limit(limits=1, user_api="blas"):
            return special.expit(self.D.forward(x.astype(np.float32), for_backward=False))
