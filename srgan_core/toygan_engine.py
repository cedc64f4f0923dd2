"""The toy GAN's fast engine: G, D, their Adam optimisers and one GAN step, by hand in numpy.

`toygan.reference_train` is the GAN as the maths says, in plain PyTorch (nn.Sequential,
torch.optim.Adam, BCEWithLogitsLoss). This module computes exactly the same step without PyTorch:
with 32 values a batch, PyTorch spends its time dispatching operations, not computing, so what
makes 30,000 epochs take seconds instead of minutes is doing fewer, cheaper array operations:

- each network keeps all its weights in one flat float32 vector (so one vector of gradients and
  a single Adam update), each layer a view of it holding the weight matrix with the bias as an
  extra row; the layer input carries a column of ones, so one matmul does the affine map forward
  and one gives both gradients backward;
- every activation and gradient buffer is allocated once per batch size and written with `out=`;
- the leaky ReLU is a multiplication by a stored slope array, reused by the backward pass.

tests/test_toygan.py checks step for step that this engine and the PyTorch loop agree, and that
`Adam` is torch.optim.Adam. Nothing here knows about data, snapshots or files: `toygan.train`
drives it.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from scipy import special

if TYPE_CHECKING:
    from srgan_core.toygan import ToyGANConfig

Layers = list[tuple[np.ndarray, np.ndarray]]  # (weight (out, in), bias (out,)) per layer, nn.Linear's layout


class MLP:
    """A dense net on scalar inputs with leaky-ReLU hidden layers, all weights in one flat float32 vector.

    Layer l keeps an augmented matrix W (fan_in + 1, fan_out) whose last row is the bias; its input
    carries a column of ones, so one matmul does the affine map forward and one gives both gradients
    backward. One flat vector of weights means one flat vector of gradients and a single Adam update.
    """

    def __init__(self, widths: tuple[int, ...], negative_slope: float, layers: Layers) -> None:
        shapes = [(fan_in + 1, fan_out) for fan_in, fan_out in zip(widths[:-1], widths[1:])]
        offsets = np.cumsum([0] + [r * c for r, c in shapes])
        self.params = np.zeros(offsets[-1], np.float32)
        self.grads = np.zeros(offsets[-1], np.float32)
        self.W = [self.params[o : o + r * c].reshape(r, c) for o, (r, c) in zip(offsets, shapes)]
        self.dW = [self.grads[o : o + r * c].reshape(r, c) for o, (r, c) in zip(offsets, shapes)]
        for W, (weight, bias) in zip(self.W, layers):
            W[:-1] = weight.T
            W[-1] = bias
        self.widths = widths
        self.slope = np.float32(negative_slope)
        self._work: dict[int, Work] = {}

    def layers(self, params: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """(weight (out, in), bias) per layer, nn.Linear's layout; of `params` (a vector laid out
        like self.params, e.g. an average of them) when given."""
        if params is None:
            return [(W[:-1].T.copy(), W[-1].copy()) for W in self.W]
        offsets = np.cumsum([0] + [W.size for W in self.W])
        mats = [params[o : o + W.size].reshape(W.shape) for o, W in zip(offsets, self.W)]
        return [(M[:-1].T.copy(), M[-1].copy()) for M in mats]

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Outputs for a batch of scalars; activations stay in the batch-size workspace for backward."""
        w = self._work.get(len(x)) or self._work.setdefault(len(x), Work(self.widths, len(x)))
        w.a[0][:, 0] = x
        last = len(self.W) - 1
        for l, W in enumerate(self.W):
            np.matmul(w.a[l], W, out=w.u[l])
            if l < last:  # leaky ReLU as u * s, s = 1 where u > 0 else the slope; s is reused backward
                np.greater(w.u[l], 0, out=w.pos[l])
                np.copyto(w.s[l], w.pos[l])
                np.maximum(w.s[l], self.slope, out=w.s[l])
                np.multiply(w.u[l], w.s[l], out=w.a[l + 1][:, :-1])
        return w.u[last][:, 0]

    def backward(self, dout: np.ndarray, param_grads: bool = True, input_grad: bool = False) -> np.ndarray | None:
        """Backpropagate d loss / d output of the last forward of this batch size: into self.grads
        if param_grads, and to the input (returned) if input_grad."""
        w = self._work[len(dout)]
        w.du[-1][:, 0] = dout
        for l in range(len(self.W) - 1, -1, -1):
            if param_grads:
                np.matmul(w.a[l].T, w.du[l], out=self.dW[l])
            if l == 0 and not input_grad:
                return None
            if w.du[l].shape[1] == 1:  # an outer product: broadcasting beats a K=1 matmul
                np.multiply(w.du[l], self.W[l][:-1].T, out=w.da[l])
            else:
                np.matmul(w.du[l], self.W[l][:-1].T, out=w.da[l])
            if l > 0:
                np.multiply(w.da[l], w.s[l - 1], out=w.du[l - 1])
        return w.da[0][:, 0]


class Work:
    """Buffers for one batch size, allocated once: a[l] layer inputs with a ones column, u[l]
    pre-activations, s[l] leaky-ReLU slopes (pos[l]: u[l] > 0), du[l] / da[l] gradients at u[l] / a[l]."""

    def __init__(self, widths: tuple[int, ...], n: int) -> None:
        self.a = [np.ones((n, w + 1), np.float32) for w in widths[:-1]]
        self.u = [np.empty((n, w), np.float32) for w in widths[1:]]
        self.s = [np.empty((n, w), np.float32) for w in widths[1:-1]]
        self.pos = [np.empty((n, w), bool) for w in widths[1:-1]]
        self.du = [np.empty((n, w), np.float32) for w in widths[1:]]
        self.da = [np.empty((n, w), np.float32) for w in widths[:-1]]


class Adam:
    """torch.optim.Adam's update (no weight decay, no amsgrad), in place on one flat vector.
    Same operations in the same order as torch's single-tensor implementation."""

    def __init__(self, params: np.ndarray, grads: np.ndarray, lr: float, betas: tuple[float, float], eps: float = 1e-8):
        self.params, self.grads = params, grads
        self.lr, self.betas, self.eps = lr, betas, eps
        self.m, self.v, self.tmp = (np.zeros_like(params) for _ in range(3))
        self.t = 0

    def step(self) -> None:
        self.t += 1
        b1, b2 = self.betas
        g, m, v, tmp = self.grads, self.m, self.v, self.tmp
        np.subtract(g, m, out=tmp)  # m.lerp_(g, 1 - b1)
        tmp *= 1 - b1
        m += tmp
        v *= b2  # v.mul_(b2).addcmul_(g, g, value=1 - b2)
        np.multiply(g, g, out=tmp)
        tmp *= 1 - b2
        v += tmp
        np.sqrt(v, out=tmp)  # denom = v.sqrt() / sqrt(1 - b2^t) + eps
        tmp /= math.sqrt(1 - b2**self.t)
        tmp += self.eps
        np.divide(m, tmp, out=tmp)  # p.addcdiv_(m, denom, value=-lr / (1 - b1^t))
        tmp *= self.lr / (1 - b1**self.t)
        self.params -= tmp


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
        self.x = np.empty(2 * b, np.float32)  # D's batch: b real then b generated
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
        # 1. update D to tell real (label 1) from generated (label 0), G fixed.
        self.x[:b] = real
        self.x[b:] = self.G.forward(z_d)
        logits_d[:] = self.D.forward(self.x)
        # d mean BCE / d logit = (sigmoid(logit) - label) / 2b
        np.subtract(special.expit(logits_d), self.y, out=self.dlogit_d)
        self.dlogit_d *= 1 / (2 * b)
        self.D.backward(self.dlogit_d)
        self.opt_d.step()
        # 2. update G through the fixed D: make D call generated values real (label 1).
        logits_g[:] = self.D.forward(self.G.forward(z_g))
        np.subtract(special.expit(logits_g), self.one, out=self.dlogit_g)
        self.dlogit_g *= 1 / b
        self.G.backward(self.D.backward(self.dlogit_g, param_grads=False, input_grad=True))
        self.opt_g.step()
        # 3. the generator we keep: a moving average of G's weights, G's own oscillation smoothed out.
        if self.ema:
            np.subtract(self.G.params, self.g_avg, out=self.g_diff)  # g_avg.lerp_(G, 1 - decay)
            self.g_diff *= 1 - ema_decay(self.ema, self.opt_g.t)
            self.g_avg += self.g_diff

    def kept_generator(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return self.G.layers(self.g_avg if self.ema else None)

    def d_prob(self, x: np.ndarray) -> np.ndarray:
        return special.expit(self.D.forward(x.astype(np.float32)))
