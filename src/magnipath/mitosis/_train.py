"""Training the mitosis classifier: balanced sampling and Pearce's 'negative feed'.

Epoch 1 (and every epoch without negative feed) trains on a balanced sample:
every positive tile plus random negatives so that about ``positive_fraction``
(1/3) of the epoch is positive (positives are repeated when there are too few).
With negative feed, after each epoch the model classifies every training tile;
the misclassified tiles plus a random sample of the correctly classified ones
(``feed_correct_ratio`` per misclassified tile; by default a third of it drawn
from correct positives, see ``feed_positive_fraction``), randomly rotated
(multiples of 90°) and with Gaussian noise added, are the next epoch's data
(:func:`negative_feed`, :func:`distort`). After each epoch the batch-norm
statistics are recomputed on that epoch's tiles with the final weights
(:func:`recalibrate_batchnorm`), and the weights of the epoch with the best
validation F1 are kept.
"""

from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import asdict, dataclass, replace

import numpy as np

from magnipath.mitosis._data import MitosisError, TileSet
from magnipath.mitosis._metrics import binary_metrics
from magnipath.mitosis._model import MitosisModel, build_model, new_card, prepare_inputs, save_model
from magnipath.progress import CancelCallback, ProgressCallback, check_cancel, report


@dataclass(frozen=True)
class MitosisTrainConfig:
    """Settings of :func:`train` (Pearce's choices in brackets).

    Attributes
    ----------
    stain : str
        ``"rgb"``, ``"rgb+he"`` (6 channels) or ``"normalise"``.
    filters : tuple of int
        Channels per conv block [128, 64].
    affine : int
        Dense layer width [512].
    dropout : float
    loss : str
        ``"bce"`` [chosen], ``"hinge"`` or ``"rare_hinge"``.
    rare_a : float
        ``a`` of the rare hinge [2 and 4].
    lr : float
        Adam learning rate [1e-5 to 1e-6 on the full data; larger for short runs].
    epochs, batch_size : int
    positive_fraction : float
        Share of positives in balanced epochs [about 1/3].
    negatives_per_epoch : int or None
        Negatives of a balanced epoch; default ``(1 / positive_fraction - 1)``
        per positive tile.
    negative_feed : bool
    feed_correct_ratio : float
        Correct tiles sampled per misclassified tile in the feed.
    feed_positive_fraction : float or None
        ``None``: the correct tiles of the feed are a plain random sample (the
        paper's literal rule; mostly negatives, and the training swings between
        all-positive and all-negative epochs); a fraction (default 1/3, the
        paper's balance): that share is drawn from correct positives (see
        :func:`negative_feed`).
    noise_sigma : float
        Standard deviation of the feed's Gaussian noise, in 0..255 units.
    time_budget_s : float or None
    device : str
    seed : int
    """

    stain: str = "rgb"
    filters: tuple[int, ...] = (128, 64)
    affine: int = 512
    dropout: float = 0.5
    loss: str = "bce"
    rare_a: float = 2.0
    lr: float = 1e-4
    epochs: int = 10
    batch_size: int = 32
    positive_fraction: float = 1.0 / 3.0
    negatives_per_epoch: int | None = None
    negative_feed: bool = True
    feed_correct_ratio: float = 1.0
    feed_positive_fraction: float | None = 1.0 / 3.0
    noise_sigma: float = 3.0
    time_budget_s: float | None = None
    device: str = "auto"
    seed: int = 0

    def replace(self, **kw) -> MitosisTrainConfig:
        """A copy with the given fields changed (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in kw.items() if v is not None})


def balanced_indices(labels: np.ndarray, rng: np.random.Generator,
                     positive_fraction: float = 1.0 / 3.0,
                     n_negatives: int | None = None) -> np.ndarray:
    """Every positive tile plus random negatives, positives making ``positive_fraction``.

    When ``n_negatives`` is given the positives are drawn (with repetition if
    needed) to make the fraction. Returns shuffled indices.
    """
    if not 0.0 < positive_fraction < 1.0:
        raise MitosisError(f"positive_fraction must lie in (0, 1), got {positive_fraction}.")
    y = np.asarray(labels)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    if len(pos) == 0:
        raise MitosisError("the training tiles hold no positive (mitosis) tile; add slides with "
                           "mitoses or lower the threshold of the probability map.")
    if n_negatives is None:
        n_neg = min(len(neg), round(len(pos) * (1 - positive_fraction) / positive_fraction))
        p = pos
    else:
        n_neg = min(len(neg), int(n_negatives))
        n_pos = max(1, round(n_neg * positive_fraction / (1 - positive_fraction)))
        p = rng.choice(pos, n_pos, replace=n_pos > len(pos))
    idx = np.concatenate([p, rng.choice(neg, n_neg, replace=False)])
    return rng.permutation(idx)


def negative_feed(predictions: np.ndarray, labels: np.ndarray, n_correct: int,
                  rng: np.random.Generator, *, threshold: float = 0.5,
                  positive_fraction: float | None = None) -> np.ndarray:
    """Pearce's negative feed: every misclassified tile plus ``n_correct`` random correct ones.

    Parameters
    ----------
    predictions : numpy.ndarray
        ``(N,)`` probabilities (or 0/1 predictions); positive when ``> threshold``.
    labels : numpy.ndarray
        ``(N,)`` 0/1 truth.
    n_correct : int
        Correctly classified tiles to add (all of them when fewer exist).
    rng : numpy.random.Generator
    positive_fraction : float or None
        ``None`` (the paper): the correct tiles are a plain random sample, so
        mostly negatives. A fraction: that share of the sample is drawn from the
        correct positives (all of them when fewer), the rest from the correct
        negatives.

    Returns
    -------
    numpy.ndarray
        Sorted int64 indices: all misclassified tiles and the sample of correct ones.
    """
    p = np.asarray(predictions, dtype=np.float64) > threshold
    y = np.asarray(labels).astype(bool)
    if p.shape != y.shape:
        raise MitosisError(f"{p.size} predictions for {y.size} labels.")
    wrong = np.flatnonzero(p != y)
    right = np.flatnonzero(p == y)
    k = min(max(int(n_correct), 0), len(right))
    if positive_fraction is None:
        sample = rng.choice(right, k, replace=False) if k else np.zeros(0, np.int64)
    else:
        rp, rn = right[y[right]], right[~y[right]]
        kp = min(len(rp), round(k * float(positive_fraction)))
        kn = min(len(rn), k - kp)
        sample = np.concatenate([rng.choice(rp, kp, replace=False),
                                 rng.choice(rn, kn, replace=False)])
    return np.sort(np.concatenate([wrong, sample]).astype(np.int64))


def distort(tiles: np.ndarray, rng: np.random.Generator, noise_sigma: float = 3.0) -> np.ndarray:
    """Random rotation by a multiple of 90° and additive Gaussian noise (uint8 in and out)."""
    out = np.empty_like(tiles)
    for i, t in enumerate(tiles):
        out[i] = np.rot90(t, int(rng.integers(4)))
    if noise_sigma > 0:
        noisy = out.astype(np.float32) + rng.normal(0.0, noise_sigma, out.shape).astype(np.float32)
        out = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    return out


def _flip_rotate(tiles: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = np.empty_like(tiles)
    for i, t in enumerate(tiles):
        t = np.rot90(t, int(rng.integers(4)))
        out[i] = t[:, ::-1] if rng.random() < 0.5 else t
    return out


def recalibrate_batchnorm(net, tiles: TileSet, idx: np.ndarray, stain: str, device,
                          batch_size: int = 64, max_tiles: int = 1024) -> None:
    """Recompute the batch-norm statistics of ``net`` on training tiles ("precise BN").

    The running statistics become the plain average over up to ``max_tiles``
    of the tiles ``idx`` (the epoch's training data) with the current weights,
    so that evaluation does not depend on statistics from earlier epochs.
    """
    import torch

    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    if not bns or len(idx) == 0:
        return
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the passes below
    sel = np.sort(idx[:max_tiles])
    vec = tiles.tile_vectors(sel)
    net.train()
    with torch.no_grad():
        for s in range(0, len(sel), batch_size):
            b = sel[s:s + batch_size]
            if len(b) < 2:
                continue
            x = prepare_inputs(tiles.images[b], stain, vec[s:s + batch_size])
            net.features(torch.from_numpy(x).to(device))
    net.eval()


def train(tiles: TileSet, val: TileSet | None = None, out: str | os.PathLike | None = None,
          config: MitosisTrainConfig = MitosisTrainConfig(), *,
          progress: ProgressCallback | None = None,
          cancel: CancelCallback | None = None) -> tuple[MitosisModel, dict]:
    """Train the classifier on labelled tiles; optionally write the model folder ``out``.

    Returns
    -------
    (MitosisModel, dict)
        The model (best validation F1, else the last epoch) and a summary with the
        per-epoch history (loss, tiles, misclassified, validation metrics).
    """
    import torch

    from magnipath.device import resolve_device
    from magnipath.mitosis._losses import make_loss

    t0 = time.monotonic()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    device = resolve_device(config.device)
    tc = tiles.config
    mpp = tc.mpp or (float(np.median(tiles.mpps)) if tiles.mpps else None)
    card = new_card(tile=tiles.images.shape[1], mpp=mpp, stain=config.stain,
                    filters=config.filters, affine=config.affine, dropout=config.dropout,
                    a=tc.a, threshold=tc.threshold)
    model = build_model(card)
    net = model.net.to(device)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    loss_fn = make_loss(config.loss, rare_a=config.rare_a)
    vec_all = tiles.tile_vectors(np.arange(len(tiles)))
    history: list[dict] = []
    best, best_state = -math.inf, None
    epoch_idx = balanced_indices(tiles.labels, rng, config.positive_fraction,
                                 config.negatives_per_epoch)
    feed = False
    for epoch in range(config.epochs):
        net.train()
        losses = []
        nb = math.ceil(len(epoch_idx) / config.batch_size)
        for b in range(nb):
            check_cancel(cancel)
            bi = epoch_idx[b * config.batch_size:(b + 1) * config.batch_size]
            if len(bi) < 2:
                continue
            imgs = distort(tiles.images[bi], rng, config.noise_sigma) if feed \
                else _flip_rotate(tiles.images[bi], rng)
            x = torch.from_numpy(prepare_inputs(imgs, config.stain, vec_all[bi])).to(device)
            y = torch.from_numpy(tiles.labels[bi].astype(np.float32)).to(device)
            loss = loss_fn(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            report(progress, "mitosis/train", b + 1, nb, epoch=epoch + 1, loss=losses[-1])
        recalibrate_batchnorm(net, tiles, epoch_idx, config.stain, device)
        rec: dict = {"epoch": epoch + 1, "tiles": len(epoch_idx), "feed": feed,
                     "train_loss": float(np.mean(losses)) if losses else None}
        if config.negative_feed:
            pred = model.predict(tiles.images, vec_all, device=device)
            rec["train"] = binary_metrics(pred, tiles.labels)
            n_wrong = int(((pred > 0.5) != tiles.labels.astype(bool)).sum())
            rec["misclassified"] = n_wrong
            if n_wrong:
                epoch_idx = rng.permutation(negative_feed(
                    pred, tiles.labels, round(config.feed_correct_ratio * n_wrong), rng,
                    positive_fraction=config.feed_positive_fraction))
                feed = True
            else:
                epoch_idx = balanced_indices(tiles.labels, rng, config.positive_fraction,
                                             config.negatives_per_epoch)
                feed = False
        else:
            epoch_idx = balanced_indices(tiles.labels, rng, config.positive_fraction,
                                         config.negatives_per_epoch)
        if val is not None and len(val):
            rec["val"] = binary_metrics(model.predict(val.images, val.tile_vectors(
                np.arange(len(val))), device=device), val.labels)
            score = rec["val"]["f1"]
            score = -1.0 if math.isnan(score) else score
        else:
            score = float(epoch)
        if score >= best:
            best, best_state = score, copy.deepcopy(net.state_dict())
            rec["best"] = True
        history.append(rec)
        report(progress, "mitosis/epoch", epoch + 1, config.epochs,
               loss=rec["train_loss"] or 0.0,
               val_f1=(rec.get("val") or {}).get("f1", float("nan")))
        if config.time_budget_s and time.monotonic() - t0 > config.time_budget_s:
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    net.to("cpu").eval()
    model.card.update(train_config={k: list(v) if isinstance(v, tuple) else v
                                    for k, v in asdict(config).items()},
                      history=history, slides=tiles.slides,
                      positives=int(tiles.labels.sum()), tiles=len(tiles))
    if out is not None:
        save_model(model, out)
    return model, {"model": None if out is None else str(out), "epochs": len(history),
                   "history": history, "seconds": round(time.monotonic() - t0, 1)}
