"""The seed READMEs' three pictures per model, the learning-rate sweep, and the results' plots, as PNGs."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fmnist.atomic import atomic_path  # noqa: E402
from fmnist.data import CLASS_NAMES  # noqa: E402
from fmnist.export import get_format  # noqa: E402
from fmnist.jobs import NATIVE_FORMAT  # noqa: E402
from fmnist.metrics import pareto_front  # noqa: E402
from fmnist.runtimes import get_runtime, list_runtimes  # noqa: E402

DPI = 150  # a reader zooms into the PNG: at 72, 7-point text was a blur


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


def _marker_area(size_bytes, largest: float):
    """Marker area grows with the square root of the file's bytes (so area reads as size)."""
    return 12 + 250 * np.sqrt(np.asarray(size_bytes, dtype=float) / largest)


def _precision(fmt: str) -> str:
    if fmt == NATIVE_FORMAT:
        return "float"
    found = get_format(fmt)
    return "int8-class (calibrated)" if found.calibrated else "float16 / dynamic" if found.quantized else "float"


def _size_legend(largest: float) -> list:
    """Marker-area keys at round byte counts within the plotted range."""
    steps = [b for b in (1e3, 1e4, 1e5, 1e6, 1e7, 1e8) if b <= largest][-3:]
    return [plt.scatter([], [], s=_marker_area(b, largest), color="grey", alpha=0.5,
                        label=f"{b / 1e3:,.0f} kB" if b < 1e6 else f"{b / 1e6:,.0f} MB") for b in steps]


def accuracy_vs_latency(rows: list[dict], path: Path) -> None:
    """One panel per model (its own accuracy range, a shared latency axis): a point per variant,
    format and runtime, colour the runtime, shape the precision, area the file's bytes. The Pareto
    front over every model is numbered on the points and named in the table below, so no label
    covers data. A microcontroller interpreter's host latency means nothing: its rows are left out."""
    rows = [r for r in rows if not get_runtime(r["runtime"]).microcontroller]
    if not rows:
        return
    models = sorted({r["model"] for r in rows})
    runtimes = sorted({r["runtime"] for r in rows})
    colours = dict(zip(runtimes, plt.get_cmap("tab10").colors))
    shapes = {"float": "o", "float16 / dynamic": "s", "int8-class (calibrated)": "^"}
    largest = max(r["size_bytes"] for r in rows)
    front = [rows[i] for i in pareto_front([(r["latency_us"]["p50"], r["accuracy"]) for r in rows])]
    columns, panel_rows = 4, -(-len(models) // 4)
    panels_height, table_height = 3.3 * panel_rows + 1.2, 0.6 + 0.24 * len(front)
    fig = plt.figure(figsize=(16, panels_height + table_height))
    top, bottom = fig.subfigures(2, 1, height_ratios=[panels_height, table_height])
    axes = top.subplots(panel_rows, columns, sharex=True, squeeze=False)
    for ax, model in zip(axes.flat, models):
        mine = [r for r in rows if r["model"] == model]
        for r in mine:
            ax.scatter(r["latency_us"]["p50"], 100 * r["accuracy"], s=_marker_area(r["size_bytes"], largest),
                       marker=shapes[_precision(r["format"])], color=colours[r["runtime"]], alpha=0.55,
                       edgecolors="none")
        for number, r in enumerate(front, 1):
            if r["model"] == model:
                point = (r["latency_us"]["p50"], 100 * r["accuracy"])
                ax.scatter(*point, s=110, facecolors="none", edgecolors="black", linewidths=1.4)
                ax.annotate(str(number), point, xytext=(-9, 7), textcoords="offset points", fontsize=9,
                            fontweight="bold", ha="right")
        ax.set_title(model + (" (your model)" if mine[0]["source"] == "user" else ""), fontsize=11)
        ax.set_xscale("log")
        ax.grid(alpha=0.3, which="both")
        ax.tick_params(labelsize=9, labelbottom=True)
        ax.set_xlabel("batch-1 p50 (µs, log)", fontsize=9)
    for ax in list(axes.flat)[len(models):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("test accuracy (%)", fontsize=10)
    legends = {"runtime (colour)": [plt.scatter([], [], color=c, label=runtime) for runtime, c in colours.items()],
               "precision (shape)": [plt.scatter([], [], color="grey", marker=m, label=name)
                                     for name, m in shapes.items()],
               "file size (area)": _size_legend(largest),
               "": [plt.scatter([], [], s=110, facecolors="none", edgecolors="black",
                                label="on the Pareto front\n(numbered: table below)")]}
    for x, (title, handles) in zip((0.02, 0.42, 0.66, 0.84), legends.items()):
        top.legend(handles=handles, title=title, loc="upper left", ncol=3 if len(handles) > 3 else 1, fontsize=10,
                   title_fontsize=10, frameon=False, bbox_to_anchor=(x, 0.985), alignment="left")
    top.suptitle("Accuracy vs batch-1 latency, one panel per model", fontsize=13, y=1.0)
    top.subplots_adjust(top=1 - 1.3 / panels_height, bottom=0.04, hspace=0.45, wspace=0.18)
    table_ax = bottom.subplots()
    table_ax.axis("off")
    cells = [[str(i), r["model"], r["variant"], r["format"], r["runtime"], f"{100 * r['accuracy']:.2f}",
              f"{r['latency_us']['p50']:,.1f}", f"{r['size_bytes']:,}"] for i, r in enumerate(front, 1)]
    shown = table_ax.table(cells, colLabels=["#", "model", "variant", "format", "runtime", "accuracy %", "p50 µs",
                                             "bytes"], loc="upper center", cellLoc="left")
    shown.auto_set_font_size(False)
    shown.set_fontsize(10)
    shown.scale(1, 1.3)
    table_ax.set_title("The Pareto front over every model: no other row is both faster and more accurate",
                       fontsize=11)
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


def sqnr_by_layer(series: dict[str, dict[str, list[float]]], path: Path) -> None:
    """One panel per model, a line per artifact (its variant): the int8 graph's SQNR against the
    float graph after each weighted layer. Shared axes, so models compare at a glance."""
    variants = sorted({v for lines in series.values() for v in lines}, key=lambda v: (not v.startswith("base"), v))
    colours = dict(zip(variants, plt.get_cmap("tab10").colors))
    columns = min(4, len(series))
    panel_rows = -(-len(series) // columns)
    fig, axes = plt.subplots(panel_rows, columns, figsize=(3.6 * columns, 2.6 * panel_rows + 0.8), sharey=True,
                             squeeze=False)
    for ax, (model, lines) in zip(axes.flat, sorted(series.items())):
        for variant in (v for v in variants if v in lines):
            ax.plot(range(1, len(lines[variant]) + 1), lines[variant], marker="o", markersize=4,
                    color=colours[variant])
        ax.set_title(model, fontsize=11)
        ax.set_xticks(range(1, max(len(v) for v in lines.values()) + 1))
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=9)
    for ax in list(axes.flat)[len(series):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("SQNR (dB)", fontsize=10)
    for ax in list(axes.flat)[max(0, len(series) - columns):len(series)]:
        ax.set_xlabel("weighted layer", fontsize=10)
    fig.legend(handles=[plt.Line2D([], [], color=c, marker="o", label=v) for v, c in colours.items()],
               loc="upper center", ncol=len(variants), fontsize=10, frameon=False, bbox_to_anchor=(0.5, 0.985))
    fig.suptitle("Where int8 loses precision: SQNR vs the float graph after each weighted layer (higher is better)",
                 fontsize=12, y=1.0)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.75 / fig.get_figheight()))
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


def op_shares(bars: dict[str, dict[str, dict[str, dict[str, float]]]], path: Path) -> None:
    """A row of panels per model, a column per unit (time, NPU cycles, MACs: never two in one
    panel): a stacked horizontal bar per runtime and format, split by kind of op."""
    units = list(dict.fromkeys(unit for model in bars.values() for unit in model))
    families = sorted({f for model in bars.values() for unit in model.values() for shares in unit.values()
                       for f in shares})
    colours = dict(zip(families, plt.get_cmap("tab10").colors))
    heights = [0.75 + 0.24 * max(len(labelled) for labelled in bars[model].values()) for model in sorted(bars)]
    fig, axes = plt.subplots(len(bars), len(units), figsize=(5.2 * len(units), 0.9 + sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for row, model in zip(axes, sorted(bars)):
        most = max(len(labelled) for labelled in bars[model].values())
        for ax, unit in zip(row, units):
            labelled = bars[model].get(unit, {})
            labels = sorted(labelled)
            left = np.zeros(len(labels))
            for family in families:
                widths = np.array([100 * labelled[label].get(family, 0.0) for label in labels])
                ax.barh(labels, widths, left=left, color=colours[family], height=0.7)
                left += widths
            ax.set_xlim(0, 100)
            ax.set_ylim(most - 0.4, -0.6)  # bars from the top, the same bar height in every panel of the row
            ax.set_title(f"{model}: % of {unit}", fontsize=10, loc="left")
            ax.tick_params(labelsize=8.5)
            ax.grid(alpha=0.3, axis="x")
    fig.legend(handles=[plt.Rectangle((0, 0), 1, 1, color=c, label=f) for f, c in colours.items()],
               loc="upper center", ncol=4, fontsize=10, frameon=False, bbox_to_anchor=(0.5, 1.0))
    fig.suptitle("Share of each kind of op, base models' main artifacts (one unit per column)", fontsize=13, y=1.012)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.7 / fig.get_figheight()))
    _save(fig, path)


def instructions_by_core(rows: list[dict], path: Path) -> None:
    """Instructions per inference of each base model's C export on each Cortex-M core (log scale):
    the cost of one image on each core, as QEMU counted it."""
    base = [r for r in rows if r["variant"] == "base"]
    models = sorted({r["model"] for r in base}, key=lambda m: min(r["cortex_m"]["macs"] for r in base if r["model"] == m))
    cores = [c for c in list_runtimes() if any(r["runtime"] == c for r in base)]  # M0+ to M55, as registered
    counts = {(r["model"], r["runtime"]): r["cortex_m"]["instructions"] for r in base}
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(models) + 2), 4.2))
    width = 0.8 / max(1, len(cores))
    colours = plt.get_cmap("tab10")
    for i, core in enumerate(cores):
        xs = [j + (i - (len(cores) - 1) / 2) * width for j in range(len(models))]
        ax.bar(xs, [counts.get((m, core), np.nan) for m in models], width, label=core, color=colours(i))
    ax.set_yscale("log")
    ax.set_xticks(range(len(models)), models, rotation=20, ha="right")
    ax.set_ylabel("instructions per inference (QEMU count)")
    ax.set_title("The C export on emulated Cortex-M cores (base models, -O2)")
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend(title="core", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    _save(fig, path)
