"""The seed READMEs' three pictures per model, plus the learning-rate sweep, as small PNGs."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fmnist.atomic import atomic_path  # noqa: E402
from fmnist.data import CLASS_NAMES  # noqa: E402
from fmnist.metrics import pareto_front  # noqa: E402

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


def accuracy_vs_latency(rows: list[dict], path: Path) -> None:
    """One point per (model, variant, format, runtime); marker area is the artifact's size. A
    user's models are outlined in black and named "(user)" in the legend, apart from the zoo."""
    models = sorted({r["model"] for r in rows})
    user = {r["model"] for r in rows if r["source"] == "user"}
    runtimes = sorted({r["runtime"] for r in rows})
    colours = plt.get_cmap("tab10" if len(models) <= 10 else "tab20")
    markers = dict(zip(runtimes, "osD^v<>ph*"))
    points = [(r["latency_us"]["p50"], 100 * r["accuracy"]) for r in rows]
    area = np.sqrt(np.array([r["size_bytes"] for r in rows], dtype=float))
    area = 10 + 290 * area / area.max()
    fig, ax = plt.subplots(figsize=(11, 6.5))
    for i, r in enumerate(rows):
        ax.scatter(*points[i], s=area[i], marker=markers[r["runtime"]], alpha=0.55,
                   edgecolors="black" if r["model"] in user else "none", linewidths=1.2,
                   color=colours(models.index(r["model"]) % colours.N))
    front = pareto_front(points)
    ax.plot(*zip(*[points[i] for i in front]), color="black", linewidth=1, linestyle="--", label="Pareto front")
    for i in front:
        ax.annotate(f"{rows[i]['model']} {rows[i]['variant']}\n{rows[i]['format']}/{rows[i]['runtime']}",
                    points[i], fontsize=6, xytext=(4, -10), textcoords="offset points")
    for j, model in enumerate(models):
        ax.scatter([], [], color=colours(j % colours.N), edgecolors="black" if model in user else "none",
                   label=f"{model} (user)" if model in user else model)
    for runtime, marker in markers.items():
        ax.scatter([], [], color="grey", marker=marker, label=runtime)
    ax.set_xscale("log")
    ax.set(xlabel="batch-1 latency p50 (µs, log)", ylabel="test accuracy (%)",
           title="Accuracy vs latency (marker area: artifact size)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    _save(fig, path)


def latency_by_runtime(rows: list[dict], path: Path) -> None:
    """Per runtime, every row's latency distribution: a dot at p50 and a bar from p50 to p99."""
    runtimes = sorted({r["runtime"] for r in rows})
    fig, ax = plt.subplots(figsize=(9, 1 + 0.8 * len(runtimes)))
    rng = np.random.default_rng(0)
    for y, runtime in enumerate(runtimes):
        mine = [r["latency_us"] for r in rows if r["runtime"] == runtime]
        jitter = y + rng.uniform(-0.25, 0.25, len(mine))
        ax.hlines(jitter, [m["p50"] for m in mine], [m["p99"] for m in mine], alpha=0.4, linewidth=1)
        ax.scatter([m["p50"] for m in mine], jitter, s=10)
    ax.set_yticks(range(len(runtimes)), runtimes)
    ax.set_xscale("log")
    ax.set(xlabel="batch-1 latency (µs, log): dot p50, bar to p99", title="Latency by runtime, one mark per artifact")
    ax.grid(alpha=0.3, axis="x", which="both")
    _save(fig, path)


def sqnr_by_layer(series: dict[str, list[float]], path: Path) -> None:
    """Per model, the int8 graph's SQNR against the float graph after each weighted layer."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, values in sorted(series.items()):
        ax.plot(range(1, len(values) + 1), values, marker="o", label=label)
    ax.set(xlabel="weighted layer (input to output)", ylabel="SQNR vs float graph (dB)",
           title="Where int8 loses precision: SQNR after each layer (higher is better)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    _save(fig, path)


def best_latency_by_machine(series: dict[str, dict[str, float]], path: Path) -> None:
    """Grouped bars: per model, each machine's fastest sound edge row (batch-1 p50)."""
    models = sorted({m for values in series.values() for m in values})
    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(models)), 4.5))
    for i, (label, values) in enumerate(sorted(series.items())):
        ax.bar(np.arange(len(models)) + i * width, [values.get(m, np.nan) for m in models], width, label=label)
    ax.set_xticks(np.arange(len(models)) + width * (len(series) - 1) / 2, models, rotation=30, ha="right")
    ax.set_yscale("log")
    ax.set(ylabel="batch-1 p50 (µs, log)", title="Fastest sound edge row per model, by machine")
    ax.grid(alpha=0.3, axis="y", which="both")
    ax.legend(fontsize=8)
    _save(fig, path)


def op_shares(bars: dict[str, dict[str, dict[str, float]]], path: Path) -> None:
    """One panel per model: a stacked horizontal bar per runtime and format, split by kind of op
    (the share of its time, cycles or MACs)."""
    families = sorted({f for model in bars.values() for shares in model.values() for f in shares})
    colours = plt.get_cmap("tab10")
    columns = 3
    rows = -(-len(bars) // columns)
    tallest = max(len(b) for b in bars.values())
    fig, axes = plt.subplots(rows, columns, figsize=(15, rows * (0.6 + 0.28 * tallest)), squeeze=False)
    for ax, (model, labelled) in zip(axes.flat, sorted(bars.items())):
        labels = sorted(labelled)
        left = np.zeros(len(labels))
        for i, family in enumerate(families):
            widths = np.array([100 * labelled[label].get(family, 0.0) for label in labels])
            ax.barh(labels, widths, left=left, color=colours(i % colours.N), label=family)
            left += widths
        ax.set(title=model, xlim=(0, 100))
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(bars):]:
        ax.axis("off")
    handles, names = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=len(families), fontsize=8)
    fig.suptitle("Share of each kind of op (% of time, NPU cycles or MACs), base models' main artifacts")
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    _save(fig, path)
