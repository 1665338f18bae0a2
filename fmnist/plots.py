"""The seed READMEs' three pictures per model, plus the learning-rate sweep, as small PNGs."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fmnist.atomic import atomic_path  # noqa: E402
from fmnist.data import CLASS_NAMES  # noqa: E402

DPI = 72


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, bbox_inches="tight", format="png")
    plt.close(fig)


def learning_curves(history: dict, title: str, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    epochs = np.arange(1, len(history["loss"]) + 1)
    for ax, metric in zip(axes, ("accuracy", "loss")):
        ax.plot(epochs, history[metric], marker="o", label="train")
        if f"val_{metric}" in history:
            ax.plot(epochs, history[f"val_{metric}"], marker="o", label="validation")
        ax.set(xlabel="epoch", ylabel=metric, title=f"{title}: {metric}")
        ax.grid(alpha=0.3)
        ax.legend()
    _save(fig, path)


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, title: str, path: Path) -> None:
    matrix = np.zeros((len(CLASS_NAMES),) * 2, dtype=int)
    np.add.at(matrix, (labels, predicted), 1)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), n in np.ndenumerate(matrix):
        ax.text(j, i, n, ha="center", va="center", fontsize=7,
                color="white" if n > matrix.max() / 2 else "black")
    ax.set_xticks(range(10), CLASS_NAMES, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(10), CLASS_NAMES, fontsize=8)
    ax.set(xlabel="predicted", ylabel="true", title=f"{title}: test confusion matrix")
    _save(fig, path)


def prediction_grid(images, labels, predicted, title: str, path: Path, seed: int, count: int = 15) -> None:
    """Random test images with predicted vs true label; wrong predictions in red."""
    chosen = np.random.default_rng(seed).choice(len(images), size=count, replace=False)
    fig, axes = plt.subplots(3, count // 3, figsize=(9, 6))
    for ax, i in zip(axes.flat, chosen):
        ax.imshow(images[i], cmap="binary")
        ok = predicted[i] == labels[i]
        ax.set_title(f"{CLASS_NAMES[predicted[i]]}\n(true: {CLASS_NAMES[labels[i]]})", fontsize=8,
                     color="green" if ok else "red")
        ax.axis("off")
    fig.suptitle(f"{title}: random test predictions")
    _save(fig, path)


def lr_sweep(learning_rates, losses, pick: float, title: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.semilogx(learning_rates, losses, marker=".")
    ax.axvline(pick, color="red", linestyle="--", label=f"pick {pick:.2g}")
    ax.set(xlabel="learning rate", ylabel="training loss", title=f"{title}: learning rate vs loss")
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path)
