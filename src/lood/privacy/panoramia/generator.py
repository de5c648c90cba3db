"""A small class-conditional variational autoencoder: the non-member generator of PANORAMIA.

PANORAMIA (Kazmi et al., NeurIPS 2024) audits a model with *generated* non-members: a
generative model is trained on part of the target's training data and its samples serve as
non-members. This module provides a generator that trains in a minute or two on two CPU cores
on flattened MNIST-like inputs (d = 784 or 64).

Model (Kingma & Welling 2014; conditional as in Sohn et al. 2015): the encoder maps
``[x, onehot(y)]`` through one hidden ReLU layer to the mean and log-variance of a diagonal
Gaussian ``q(z | x, y)``; the decoder maps ``[z, onehot(y)]`` through one hidden ReLU layer to
per-feature Bernoulli means. The loss per record is the negative ELBO
``BCE(x, decoder mean) + beta * KL(q(z | x, y) || N(0, I))`` (sums over features / latents).

Inputs may be in any range: :meth:`ConditionalVAE.fit` records per-feature minima and ranges of
its training data and works on ``(x - lo) / span`` in [0, 1] (constant features decode to their
constant). Samples are the decoder means mapped back, so they live in the same space as the
training inputs (e.g. a split's normalised space).

Determinism: initial weights come from ``seed`` (global torch RNG state is saved and restored),
data order from ``numpy.random.default_rng(seed)``, the reparameterisation noise and the
sampling noise from seeded ``torch.Generator`` objects, so equal seeds give equal weights and
samples on CPU for a fixed torch thread count (float sums depend on it). Weights are saved with safetensors (:func:`save_generator`), never pickled.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

_META_KEY = "_lood_generator"
_FORMAT = "lood-cvae-v1"


@dataclass(frozen=True)
class VAEConfig:
    """Architecture and optimisation settings of :class:`ConditionalVAE`."""

    latent_dim: int = 8
    hidden: int = 256
    epochs: int = 30
    batch_size: int = 64
    lr: float = 2e-3
    beta: float = 1.0  # weight of the KL term

    def __post_init__(self) -> None:
        for name in ("latent_dim", "hidden", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.epochs < 0:
            raise ValueError(f"epochs must be >= 0, got {self.epochs}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not self.beta >= 0:
            raise ValueError(f"beta must be >= 0, got {self.beta}")


@dataclass
class FitResult:
    """What :meth:`ConditionalVAE.fit` returns."""

    loss_history: np.ndarray  # [epochs] mean negative ELBO per record over each epoch
    seconds: float
    extra: dict[str, float] = field(default_factory=dict)


class ConditionalVAE(nn.Module):
    """Class-conditional VAE for flattened inputs ``[n, d]`` with integer labels in [0, C).

    Build it with :meth:`create` (seeded initialisation), train it with :meth:`fit`, draw
    labelled samples with :meth:`sample`.
    """

    def __init__(self, d: int, n_classes: int, config: VAEConfig | None = None) -> None:
        super().__init__()
        if d < 1 or n_classes < 1:
            raise ValueError(f"need d >= 1 and n_classes >= 1, got d={d}, n_classes={n_classes}")
        self.config = config or VAEConfig()
        self.d, self.n_classes = int(d), int(n_classes)
        h, k = self.config.hidden, self.config.latent_dim
        self.enc = nn.Linear(d + n_classes, h)
        self.enc_mu = nn.Linear(h, k)
        self.enc_logvar = nn.Linear(h, k)
        self.dec = nn.Linear(k + n_classes, h)
        self.dec_out = nn.Linear(h, d)
        # data scaling and class frequencies of the training data (part of the state dict)
        self.register_buffer("lo", torch.zeros(d))
        self.register_buffer("span", torch.ones(d))
        self.register_buffer("class_prior", torch.full((n_classes,), 1.0 / n_classes))

    @classmethod
    def create(
        cls, d: int, n_classes: int, config: VAEConfig | None = None, seed: int = 0
    ) -> ConditionalVAE:
        """A new model whose initial weights depend only on ``seed`` (global RNG untouched)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            return cls(d, n_classes, config)

    # -- the network ------------------------------------------------------------------------

    def _onehot(self, y: torch.Tensor) -> torch.Tensor:
        return F.one_hot(y, self.n_classes).to(self.lo.dtype)

    def encode(self, x01: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(z | x, y) for inputs already scaled to [0, 1]."""
        h = torch.relu(self.enc(torch.cat([x01, self._onehot(y)], dim=1)))
        return self.enc_mu(h), self.enc_logvar(h)

    def decode_logits(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Logits of the per-feature Bernoulli means (scaled space)."""
        h = torch.relu(self.dec(torch.cat([z, self._onehot(y)], dim=1)))
        return self.dec_out(h)

    def negative_elbo(
        self, x01: torch.Tensor, y: torch.Tensor, noise: torch.Tensor
    ) -> torch.Tensor:
        """Per-record negative ELBO ``[n]`` with reparameterisation noise ``noise [n, latent]``."""
        mu, logvar = self.encode(x01, y)
        z = mu + torch.exp(0.5 * logvar) * noise
        bce = F.binary_cross_entropy_with_logits(self.decode_logits(z, y), x01, reduction="none")
        kl = 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).sum(1)
        return bce.sum(1) + self.config.beta * kl

    # -- data scaling -------------------------------------------------------------------------

    def to_unit(self, x: torch.Tensor) -> torch.Tensor:
        """Inputs mapped to [0, 1] with the training data's per-feature range (clipped)."""
        return ((x - self.lo) / self.span).clamp(0.0, 1.0)

    def from_unit(self, x01: torch.Tensor) -> torch.Tensor:
        return x01 * self.span + self.lo

    # -- training -----------------------------------------------------------------------------

    def _check_xy(self, x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y)
        if x.ndim != 2 or x.shape[1] != self.d:
            raise ValueError(f"x must be [n, {self.d}], got shape {x.shape}")
        if y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"y must be integer labels of shape ({x.shape[0]},), got {y.shape}")
        if len(y) and (y.min() < 0 or y.max() >= self.n_classes):
            raise ValueError(
                f"labels must lie in [0, {self.n_classes}), got [{y.min()}, {y.max()}]"
            )
        if not np.isfinite(x).all():
            raise ValueError("x must be finite")
        return torch.from_numpy(x.copy()), torch.from_numpy(y.astype(np.int64))

    def fit(self, x: np.ndarray, y: np.ndarray, seed: int = 0, progress=None) -> FitResult:
        """Train on ``x [n, d]``, ``y [n]`` with Adam for ``config.epochs`` epochs.

        Records the data range and class frequencies first. Each epoch visits the records in the
        order ``numpy.random.default_rng(seed).permutation(n)`` (a new permutation per epoch from
        the same generator), in mini-batches of ``config.batch_size``. ``progress(epoch, loss)``
        is called after every epoch when given.
        """
        xt, yt = self._check_xy(x, y)
        n = xt.shape[0]
        if n == 0:
            raise ValueError("fit needs at least one record")
        cfg = self.config
        t0 = time.perf_counter()
        with torch.no_grad():
            lo = xt.min(0).values
            span = xt.max(0).values - lo
            self.lo.copy_(lo)
            self.span.copy_(torch.where(span > 0, span, torch.ones_like(span)))
            counts = torch.bincount(yt, minlength=self.n_classes).to(self.lo.dtype)
            self.class_prior.copy_(counts / counts.sum())
        x01 = self.to_unit(xt)
        rng = np.random.default_rng(seed)
        gen = torch.Generator().manual_seed(int(seed))
        opt = torch.optim.Adam(self.parameters(), lr=cfg.lr)
        history = np.empty(cfg.epochs)
        self.train()
        for epoch in range(cfg.epochs):
            order = torch.from_numpy(rng.permutation(n))
            total = 0.0
            for start in range(0, n, cfg.batch_size):
                idx = order[start : start + cfg.batch_size]
                noise = torch.randn(len(idx), cfg.latent_dim, generator=gen)
                loss = self.negative_elbo(x01[idx], yt[idx], noise)
                opt.zero_grad(set_to_none=True)
                loss.mean().backward()
                opt.step()
                total += float(loss.detach().sum())
            history[epoch] = total / n
            if not math.isfinite(history[epoch]):
                raise FloatingPointError(f"VAE loss became {history[epoch]} in epoch {epoch}")
            if progress is not None:
                progress(epoch, history[epoch])
        self.eval()
        return FitResult(history, time.perf_counter() - t0)

    @torch.no_grad()
    def evaluate(self, x: np.ndarray, y: np.ndarray, seed: int = 0) -> float:
        """Mean negative ELBO per record on ``x``, ``y`` (one seeded noise draw per record)."""
        xt, yt = self._check_xy(x, y)
        noise = torch.randn(
            len(yt), self.config.latent_dim, generator=torch.Generator().manual_seed(seed)
        )
        return float(self.negative_elbo(self.to_unit(xt), yt, noise).mean())

    # -- sampling -----------------------------------------------------------------------------

    def sample_labels(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` labels drawn from the training data's class frequencies."""
        rng = np.random.default_rng(seed)
        prior = self.class_prior.double().numpy()
        return rng.choice(self.n_classes, size=int(n), p=prior / prior.sum()).astype(np.int64)

    @torch.no_grad()
    def sample(self, labels: np.ndarray, seed: int = 0, temperature: float = 1.0) -> np.ndarray:
        """One sample per label (float32 ``[n, d]``, in the training data's space).

        z ~ N(0, temperature^2 I) from ``torch.Generator().manual_seed(seed)``; the sample is the
        decoder's mean for (z, label), mapped back from [0, 1].
        """
        labels = np.asarray(labels)
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                f"labels must be a 1-D integer array, got {labels.dtype} {labels.shape}"
            )
        if len(labels) and (labels.min() < 0 or labels.max() >= self.n_classes):
            raise ValueError(f"labels must lie in [0, {self.n_classes})")
        if not temperature >= 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        y = torch.from_numpy(labels.astype(np.int64))
        gen = torch.Generator().manual_seed(int(seed))
        z = temperature * torch.randn(len(y), self.config.latent_dim, generator=gen)
        x01 = torch.sigmoid(self.decode_logits(z, y))
        return self.from_unit(x01).numpy().astype(np.float32)


def train_generator(
    x: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    config: VAEConfig | None = None,
    seed: int = 0,
    progress=None,
) -> tuple[ConditionalVAE, FitResult]:
    """Create a :class:`ConditionalVAE` seeded with ``seed`` and fit it to ``x``, ``y``."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"x must be [n, d], got shape {x.shape}")
    model = ConditionalVAE.create(x.shape[1], n_classes, config, seed)
    return model, model.fit(x, y, seed=seed, progress=progress)


def real_data_classifier(x_real: np.ndarray, y_real: np.ndarray):
    """The classifier of :func:`sample_accuracy`, fitted to real data: a standardised multinomial
    logistic regression (``C = 0.1``, lbfgs, deterministic). Fit it once to score several sets."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    clf.fit(np.asarray(x_real, dtype=np.float64), np.asarray(y_real))
    return clf


def sample_accuracy(
    x_real: np.ndarray, y_real: np.ndarray, x_gen: np.ndarray, y_gen: np.ndarray
) -> float:
    """Figure of merit of labelled samples: accuracy on them of a classifier fit to real data
    (:func:`real_data_classifier`). Samples that look like their label's class score high,
    chance is about 1 / C."""
    clf = real_data_classifier(x_real, y_real)
    return float(clf.score(np.asarray(x_gen, dtype=np.float64), np.asarray(y_gen)))


def save_generator(path: str | Path, model: ConditionalVAE) -> None:
    """Write the model's state dict with safetensors; its shape and config go in the header."""
    from safetensors.torch import save_file

    header = {
        "format": _FORMAT,
        "d": model.d,
        "n_classes": model.n_classes,
        "config": asdict(model.config),
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata={_META_KEY: json.dumps(header, sort_keys=True)})


def load_generator(path: str | Path) -> ConditionalVAE:
    """Read a model written by :func:`save_generator` (CPU, eval mode). Never unpickles."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except FileNotFoundError:
        raise
    except Exception as exc:  # safetensors raises its own error types
        raise ValueError(f"{path}: not a readable safetensors file ({exc})") from exc
    if _META_KEY not in meta:
        raise ValueError(f"{path}: not a lood generator file (missing {_META_KEY!r} header)")
    header = json.loads(meta[_META_KEY])
    if header.get("format") != _FORMAT:
        raise ValueError(f"{path}: unknown generator format {header.get('format')!r}")
    model = ConditionalVAE(
        int(header["d"]), int(header["n_classes"]), VAEConfig(**header["config"])
    )
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path}: weights do not match the header ({exc})") from exc
    return model.eval()
