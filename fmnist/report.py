"""Markdown reports under results/, written from the records on disk (the report never runs a model)."""
from __future__ import annotations

import shutil
from pathlib import Path

from tabulate import tabulate

from fmnist import storage
from fmnist.environment import HOST_LABEL
from fmnist.atomic import atomic_dir, write_json, write_text
from fmnist.export import get_format
from fmnist.harness import LATENCY_SCOPE as LATENCY_SCOPE_TEXT
from fmnist.jobs import NATIVE_FORMAT
from fmnist.quantization import LAYER_OPS, worst_layer
from fmnist.metrics import MAX_ACCURACY_DROP, MIN_AGREEMENT, VARIANT_MAX_DROP
from fmnist.models import get_spec, list_models
from fmnist.runtimes import get_runtime

TRAINING_PLOTS = ("learning_curves.png", "confusion_matrix.png", "predictions.png")


def pct(value) -> str:
    return "" if value is None else f"{100 * value:.2f}%"


def _features(machine: dict) -> str:
    """', with avx2, fma' (a CPU's name does not tell its vector extensions); '' for older records."""
    features = machine.get("cpu_features")
    return f", with {', '.join(features)}" if features else ""


def environment_lines(env: dict) -> list[str]:
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v)
    return [f"- CPU: {env['cpu']} ({env['cores']} cores, {env['machine']}{_features(env)}), Python {env['python']}",
            f"- Libraries: {versions}",
            f"- Seed: {env['seed']}; run on {env['date']}"]


def _reported(record: dict) -> str:
    names = {"train_accuracy": "train", "validation_accuracy": "val", "test_accuracy": "test"}
    return ", ".join(f"{names[k]} {pct(v)}" for k, v in record["reported"].items()) or "none"


def _quick_run(record: dict) -> str:
    """Says when a row is not the full recipe, so a quick run is never mistaken for a result."""
    parts = []
    if record["subset"]:
        parts.append(f"subset of {record['subset']} images")
    if record["epochs_planned"] != get_spec(record["model"]).recipe.epochs:
        parts.append(f"{record['epochs_planned']} epochs")
    return f" (quick run: {', '.join(parts)})" if parts else ""


def _threads(record: dict) -> str:
    threads = record.get("train_threads")
    return f" ({threads} thread{'s' if threads > 1 else ''})" if threads else ""


def write_training(exports: Path, results: Path) -> Path:
    """results/training.md: one row per trained registered model, plus the plots it links."""
    rows, env = [], None
    plots_dir = Path(results) / "training"
    with atomic_dir(plots_dir) as tmp_plots:
        for name in list_models():
            folder = storage.model_dir(exports, name)
            try:
                record = storage.read_record(folder)
            except storage.TrainedModelError:
                continue
            env = env or record["environment"]
            (tmp_plots / name).mkdir()
            links = []
            sweep_plot = Path(exports) / storage.SWEEP_DIR / name / "lr_vs_loss.png"
            for plot in [folder / p for p in TRAINING_PLOTS] + [sweep_plot]:
                if plot.is_file():
                    shutil.copy(plot, tmp_plots / name / plot.name)
                    links.append(f"[{plot.stem.replace('_', ' ')}](training/{name}/{plot.name})")
            rows.append([
                name + _quick_run(record), record["source"], f"{record['params']:,}",
                f"{record['epochs_run']}/{record['epochs_planned']}", record["stop_reason"],
                f"{record['recipe']['optimizer']} lr {record['recipe']['learning_rate']:.3g}",
                pct(record["train_accuracy"]), pct(record["validation_accuracy"]), pct(record["test_accuracy"]),
                _reported(record), f"{record['train_seconds']:.0f} s" + _threads(record), " · ".join(links)])
    headers = ["model", "README", "params", "epochs run", "stop reason", "optimizer", "train acc",
               "val acc", "test acc", "README reports", "train time", "plots"]
    lines = ["# Training: every registered model by its README's recipe", "",
             "Written by `fmnist-train` from the records in exports/; do not edit by hand.",
             "Train accuracy is the last epoch's running average (as Keras reports it and the READMEs "
             "quote it); val is the recipe's validation data (the test set for READMEs 001/002, a held-out "
             "5,000 training images for 003); test is the 10,000 test images. Train time is wall-clock; "
             "`fmnist-bench` and `fmnist-export` train one model per core at a time, one thread each (shown), "
             "`fmnist-train` one at a time on every core.", "",
             tabulate(rows, headers, tablefmt="github", disable_numparse=True), ""]
    if env:
        lines += ["## Environment", "", *environment_lines(env), ""]
    path = Path(results) / "training.md"
    write_text(path, "\n".join(lines))
    return path


# --- benchmark outputs --------------------------------------------------------------------------
SPEEDUP_TARGET, INT8_SHRINK_TARGET = 100, 3.5
NO_DATA = "_No measured rows in this run for this section._"


def flatten(record: dict, prefix: str = "") -> dict:
    """Nested fields as dotted columns (latency_us.p50), for the CSV."""
    flat = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        elif isinstance(value, list):
            flat[f"{prefix}{key}"] = "; ".join(map(str, value))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _csv(records: list[dict]) -> str:
    import csv
    import io
    rows = [flatten(r) for r in records]
    columns = list(dict.fromkeys(k for row in rows for k in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, columns)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _us(value) -> str:
    if value is None:
        return ""
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _label(r: dict) -> str:
    return f"{r['variant']} · {r['format']} · {r['runtime']}"


def _is_edge(r: dict) -> bool:
    """An edge runtime whose latency here means something (not TFLM's host emulation of an MCU)."""
    runtime = get_runtime(r["runtime"])
    return runtime.edge and not runtime.microcontroller


def _reference_rows(ok: list[dict]) -> dict:
    """(model) -> the base model's direct Keras call: the reference the speed-ups are against."""
    return {r["model"]: r for r in ok if not _is_edge(r) and r["format"] == NATIVE_FORMAT and r["variant"] == "base"
            and not get_runtime(r["runtime"]).base_only}


def _sound(r: dict, accuracy: float) -> bool:
    return not r["flagged"] and r["accuracy"] >= accuracy - MAX_ACCURACY_DROP


def _integer_rows(rows: list[dict]) -> list[dict]:
    """int8-class rows: statically quantized artifacts (int8, 16x8, int8 with a float layer)."""
    return [r for r in rows if r["format"] != NATIVE_FORMAT and get_format(r["format"]).calibrated]


def best_integer_row(rows: list[dict]) -> dict | None:
    """The int8-class artifact with the smallest accuracy cost, then the smallest file, then the
    fastest: what a user who must ship int8 would pick."""
    return min(_integer_rows(rows), key=lambda r: (-round(r["accuracy"], 4), r["size_bytes"], r["latency_us"]["p50"]),
               default=None)


def _shrink(row: dict, ok: list[dict]) -> float | None:
    """How many times smaller an integer artifact is than its float counterpart (same variant)."""
    counterpart = get_format(row["format"]).float_counterpart
    sizes = [r["size_bytes"] for r in ok if (r["model"], r["variant"], r["format"]) ==
             (row["model"], row["variant"], counterpart)]
    return sizes[0] / row["size_bytes"] if sizes else None


def headline(records: list[dict]) -> tuple[list, list]:
    """One row per measured model: the Keras call (when measured), the fastest sound edge row, the
    smallest sound artifact, the best integer artifact, and the targets stated with their figures."""
    ok = [r for r in records if r["status"] == "ok"]
    references = _reference_rows(ok)
    rows, notes = [], []
    for model in sorted({r["model"] for r in ok}):
        mine = [r for r in ok if r["model"] == model]
        ref = references.get(model)
        accuracy = ref["accuracy"] if ref else max(r["source_accuracy"] for r in mine)
        sound = [r for r in mine if _sound(r, accuracy)]
        fastest = min((r for r in sound if _is_edge(r)), key=lambda r: r["latency_us"]["p50"], default=None)
        smallest = min(sound, key=lambda r: r["size_bytes"], default=None)
        integer = best_integer_row([r for r in mine if _is_edge(r)])
        shrink = max(filter(None, (_shrink(r, ok) for r in _integer_rows(mine) if get_format(r["format"]).full_integer)),
                     default=None)
        speedup = ref["latency_us"]["p50"] / fastest["latency_us"]["p50"] if ref and fastest else None
        rows.append([model, mine[0]["source"], pct(accuracy), _us(ref["latency_us"]["p50"]) if ref else "not measured",
                     _label(fastest) if fastest else "none sound", pct(fastest["accuracy"]) if fastest else "",
                     _us(fastest["latency_us"]["p50"]) if fastest else "", f"{speedup:,.0f}×" if speedup else "",
                     f"{_label(smallest)}: {smallest['size_bytes']:,} B" if smallest else "",
                     (f"{_label(integer)}: {pct(integer['accuracy'])} ({100 * integer['accuracy_delta']:+.2f} pts), "
                      f"{integer['size_bytes']:,} B" + (f", {_shrink(integer, ok):.2f}× smaller"
                                                         if _shrink(integer, ok) else "")
                      + (" ⚠" if integer["flagged"] else "")) if integer else "not measured"])
        if speedup is not None and speedup < SPEEDUP_TARGET:
            notes.append(f"{model}: the fastest sound edge row is {speedup:.0f}× the Keras call, short of "
                         f"{SPEEDUP_TARGET}×")
        if shrink is not None and shrink < INT8_SHRINK_TARGET:
            notes.append(f"{model}: its smallest full-integer artifact is {shrink:.2f}× smaller than its float "
                         f"counterpart, short of {INT8_SHRINK_TARGET}× (a small network's file is mostly "
                         f"fixed overhead)")
    headers = ["model", "README", "source acc", "Keras call p50 µs",
               f"fastest edge row within {100 * MAX_ACCURACY_DROP:g} pts", "its acc", "p50 µs", "speed-up",
               "smallest sound artifact", "best int8-class artifact: int8, 16x8 or int8-mixed (acc, Δ vs its Keras model, size, vs float)"]
    return [headers, *rows], notes


def _verdict(ok_: bool) -> str:
    return "met" if ok_ else "**missed**"


def _target_lines(model: str, mine: list[dict], exports: Path) -> list[str]:
    """Each of a model's registered targets with the figure this run measured (or why there is none)."""
    targets = get_spec(model).targets
    keras = _reference_rows(mine).get(model)
    accuracy = keras["accuracy"] if keras else mine[0]["source_accuracy"]
    integer = best_integer_row([r for r in mine if _is_edge(r) and get_format(r["format"]).full_integer
                                and get_format(r["format"]).activation_bits == 8])  # "int8" targets: 8-bit only
    fastest = min((r for r in mine if _is_edge(r) and _sound(r, accuracy)),
                  key=lambda r: r["latency_us"]["p50"], default=None)
    micro = max((r for r in mine if get_runtime(r["runtime"]).microcontroller
                 and get_format(r["format"]).microcontroller),
                key=lambda r: (r["variant"] == "base", r["accuracy"]), default=None)
    try:
        seconds = storage.read_record(storage.model_dir(exports, model))["train_seconds"]
    except storage.TrainedModelError:
        seconds = None
    measured = {  # target -> (what, figure shown, passes?) or None when not measured in this run
        "keras_accuracy": keras and ("Keras accuracy", pct(keras["accuracy"]), lambda t: keras["accuracy"] >= t, pct),
        "int8_accuracy": integer and (f"int8 ({_label(integer)}) accuracy", pct(integer["accuracy"]),
                                      lambda t: integer["accuracy"] >= t, pct),
        "int8_bytes": integer and ("int8 file", f"{integer['size_bytes']:,} B", lambda t: integer["size_bytes"] <= t,
                                   lambda t: f"{t:,} B"),
        "p50_us": fastest and (f"edge batch-1 p50 ({_label(fastest)})", f"{_us(fastest['latency_us']['p50'])} µs",
                               lambda t: fastest["latency_us"]["p50"] <= t, lambda t: f"{t} µs"),
        "tflm_accuracy": micro and (f"accuracy on TFLM ({_label(micro)})", pct(micro["accuracy"]),
                                    lambda t: micro["accuracy"] >= t, pct),
        "tflm_flash_bytes": micro and ("int8 flash on TFLM", f"{micro['tflm']['flash_bytes']:,} B",
                                       lambda t: micro["tflm"]["flash_bytes"] <= t, lambda t: f"{t:,} B"),
        "tflm_arena_bytes": micro and ("tensor arena on TFLM (smallest that runs)",
                                       f"{micro['tflm']['arena_bytes_min']:,} B",
                                       lambda t: micro["tflm"]["arena_bytes_min"] <= t, lambda t: f"{t:,} B"),
        "train_seconds": seconds is not None and ("training", f"{seconds / 60:.1f} min", lambda t: seconds <= t,
                                                  lambda t: f"{t / 60:.0f} min"),
    }
    lines = []
    for name, target in targets.items():
        figure = measured[name]
        if not figure:
            lines.append(f"- {name.replace('_', ' ')}: not measured in this run")
            continue
        what, shown, passes, fmt = figure
        bound = "≥" if name.endswith("accuracy") else "≤"
        lines.append(f"- {what} {shown} (target {bound} {fmt(target)}): {_verdict(passes(target))}")
    return lines


def own_model_lines(records: list[dict], exports: Path) -> list[str]:
    """Our own models against their registered targets, each stated with the measured figure (or
    that this run did not measure it), and where they sit on the Pareto front."""
    from fmnist.plots import pareto_front
    ok = [r for r in records if r["status"] == "ok"]
    front = {id(ok[i]) for i in pareto_front([(r["latency_us"]["p50"], r["accuracy"]) for r in ok])}
    lines = []
    for model in sorted({r["model"] for r in ok if r["source"] == "own"}):
        mine = [r for r in ok if r["model"] == model]
        lines += [f"**{model}** ({get_spec(model).summary}):", "", *_target_lines(model, mine, exports),
                  f"- rows on the accuracy-vs-latency Pareto front: "
                  f"{', '.join(_label(r) for r in mine if id(r) in front) or 'none'}", ""]
    return lines


def _table(rows, headers) -> str:
    return tabulate(rows, headers, tablefmt="github", disable_numparse=True)


def accuracy_table(ok: list[dict]) -> str:
    if not ok:
        return NO_DATA
    rows = [[r["model"], r["variant"], r["format"], r["runtime"], pct(r["accuracy"]),
             f"{100 * r['accuracy_delta']:+.2f}", pct(r["agreement"]), f"{r['max_abs_diff']:.1e}",
             pct(r["source_accuracy"]) + (f" ({100 * (r['source_accuracy'] - r['base_test_accuracy']):+.2f} vs base)"
                                          if r.get("base_test_accuracy") is not None else ""),
             "⚠ " + ", ".join(r["flag_reasons"]) if r["flagged"] else ""] for r in ok]
    return _table(rows, ["model", "variant", "format", "runtime", "accuracy", "Δ pts vs its Keras model",
                         "top-1 agreement", "max |Δp|", "its Keras model's acc", "flag"])


def latency_table(ok: list[dict]) -> str:
    if not ok:
        return NO_DATA
    keras = _reference_rows(ok)
    rows = []
    for r in ok:
        lat, single = r["latency_us"], r.get("single_thread")
        ref = keras.get(r["model"])
        rows.append([r["model"], r["variant"], r["format"], r["runtime"], r["threads"] or "all",
                     _us(lat["p50"]), _us(lat["p90"]), _us(lat["p99"]), _us(lat["mean"]), _us(lat["std"]), lat["n"],
                     f"{ref['latency_us']['p50'] / lat['p50']:,.0f}×" if ref else "",
                     _us(single["latency_us"]["p50"]) if single else "",
                     f"{r['throughput_ips']:,.0f}", f"{single['throughput_ips']:,.0f}" if single else "",
                     f"{r['load_ms']:.1f}", f"{r['first_inference_ms']:.2f}", f"{r['peak_rss_mb']:.0f}",
                     f"{r['model_rss_mb']:.1f}"])
    return _table(rows, ["model", "variant", "format", "runtime", "threads", "p50 µs", "p90", "p99", "mean", "std",
                         "calls", "vs Keras call", "p50 µs 1 thread", "img/s", "img/s 1 thread", "load ms",
                         "first call ms", "peak RSS MB", "model RSS MB"])


def size_table(ok: list[dict]) -> str:
    if not ok:
        return NO_DATA
    seen, rows = set(), []
    for r in ok:
        key = (r["model"], r["variant"], r["format"])
        if key in seen:
            continue
        seen.add(key)
        shrink = _shrink(r, ok) if r["format"] != NATIVE_FORMAT else None
        rows.append([r["model"], r["variant"], r["format"], f"{r['size_bytes']:,}", f"{r['size_gzip_bytes']:,}",
                     f"{shrink:.2f}×" if shrink else "", f"{r['params']:,}",
                     f"{r['nonzero_params']:,}" if r.get("nonzero_params") else "", f"{r['macs']:,}"])
    return _table(rows, ["model", "variant", "format", "bytes", "gzip bytes", "float counterpart / this", "params",
                         "non-zero params", "MACs/image"])


def _layer_name(tensor: str) -> str:
    """'mlp4x3/dense_2/MatMul;mlp4x3/dense_2/Relu;...' -> 'dense_2' (display only)."""
    parts = tensor.split(";")[0].split("/")
    return parts[1] if len(parts) > 1 else parts[0]


def _cost(rows: list[dict], variant: str, fmt: str) -> str:
    row = next((r for r in rows if (r["variant"], r["format"], r["runtime"]) == (variant, fmt, "litert")), None)
    if not row:
        return ""
    base = row.get("base_test_accuracy") or row["source_accuracy"]
    return (f"{pct(row['accuracy'])} ({100 * (row['accuracy'] - base):+.2f} pts, agree {pct(row['agreement'])})"
            + (" ⚠" if row["flagged"] else ""))


def _sixteen_by_eight(ok: list[dict]) -> list[str]:
    """What 16x8 costs in speed against int8, and who runs it, from the LiteRT rows of this run."""
    pairs = {}
    for r in ok:
        if r["runtime"] == "litert" and r["format"] in ("tflite-int8", "tflite-int16x8"):
            pairs.setdefault((r["model"], r["variant"]), {})[r["format"]] = r
    both = [p for p in pairs.values() if len(p) == 2]
    if not both:
        return []
    import statistics
    ratio = statistics.median(p["tflite-int16x8"]["latency_us"]["p50"] / p["tflite-int8"]["latency_us"]["p50"]
                              for p in both)
    delegated = {fmt: sum(bool(p[fmt].get("delegated")) for p in both) for fmt in ("tflite-int8", "tflite-int16x8")}
    return [f"16x8 against int8 on LiteRT, over the {len(both)} (model, variant) pairs of this run: batch-1 p50 "
            f"{ratio:.2f}× int8's (median). The XNNPACK delegate took {delegated['tflite-int8']} of {len(both)} "
            f"int8 graphs and {delegated['tflite-int16x8']} of {len(both)} 16x8 graphs: 16x8 runs on LiteRT's "
            f"builtin kernels (XNNPACK has no 16-bit-activation kernels), and TFLM's reference kernels run it too "
            f"(micro.md).", ""]


def quantization_page(records: list[dict], exports: Path, plot_path: Path) -> list[str] | None:
    """results/quantization.md: per-layer error of every calibrated TFLite artifact (from the
    manifests), each model's worst layer, and what int8, 16x8, the mixed rescue and QAT cost."""
    from fmnist import plots
    ok = [r for r in records if r["status"] == "ok"]
    worst_rows, all_rows, series = [], [], {}
    for folder in sorted({(r["model"], r["variant"]) for r in ok}):
        model_folder = storage.model_dir(exports, *folder)
        for artifact_folder in storage.artifact_folders(model_folder):
            try:
                manifest = storage.read_manifest(artifact_folder)
            except storage.ArtifactError:
                continue
            layers = manifest["details"].get("layer_errors")
            if not layers:
                continue
            weighted = [r for r in layers if r["op"] in LAYER_OPS]
            worst = worst_layer(layers)
            label = f"{folder[0]} · {folder[1]} · {manifest['format']}"
            if manifest["format"] == "tflite-int8":
                series[f"{folder[0]} {folder[1]}"] = [r["sqnr_db"] for r in weighted]
                if worst:
                    worst_rows.append([folder[0], folder[1], _layer_name(worst["tensor"]), worst["op"],
                                       f"{worst['rmse_over_scale']:.2f}", f"{worst['sqnr_db']:.1f}",
                                       f"{layers[-1]['sqnr_db']:.1f}",
                                       f"{manifest['validation']['agreement']:.4f}"])
            for r in layers:
                all_rows.append([label, _layer_name(r["tensor"]), r["op"], f"{r['rmse_over_scale']:.3f}",
                                 f"{r['sqnr_db']:.1f}", f"{r['sqnr_drop_db']:.1f}"])
    if not all_rows:
        return None
    cost_rows = []
    for model in sorted({r["model"] for r in ok}):
        mine = [r for r in ok if r["model"] == model]
        best = best_integer_row([r for r in mine if _is_edge(r)])
        cost_rows.append([model, _cost(mine, "base", "tflite-int8"), _cost(mine, "base", "tflite-int16x8"),
                          _cost(mine, "base", "tflite-int8-mixed"), _cost(mine, "qat", "tflite-int8"),
                          (f"{_label(best)}: {pct(best['accuracy'])}, {best['size_bytes']:,} B, "
                           f"{_us(best['latency_us']['p50'])} µs") if best else ""])
    if series:
        plots.sqnr_by_layer(series, plot_path)
    return ["# Quantization: where int8 loses precision, and what rescues it", "",
            "Written by `fmnist-bench` from the export manifests and the benchmark rows of a real run.", "",
            *_sixteen_by_eight(ok),
            "Per-layer error: each op output of the quantized TFLite graph against the same tensor of the "
            "model's float TFLite graph, both run on 200 calibration (training) images with every "
            "intermediate tensor kept (fmnist/quantization.py). RMSE/scale is the error in the layer's own "
            "quantization steps (rounding alone gives 0.29); SQNR is signal over that error in dB; the drop "
            "is what the layer adds. This is TensorFlow's QuantizationDebugger statistic, measured along "
            "the whole graph, and it works on quantization-aware models too, which the debugger refuses.", "",
            "## The worst layer of each int8 artifact", "",
            _table(worst_rows, ["model", "variant", "worst layer", "op", "RMSE/scale", "SQNR there (dB)",
                                "output SQNR (dB)", "agreement at export (1k images)"]), "",
            "![SQNR by layer](plots/sqnr_by_layer.png)" if series else "", "",
            "## What each int8-class option costs (LiteRT, all 10,000 test images)", "",
            "Accuracy, its change against the base model's Keras accuracy, and top-1 agreement with its own "
            "Keras model. PTQ int8: full integer. 16x8: int16 activations, int8 weights. Mixed: int8 with the "
            "worst layer kept float (the rescue). QAT: quantization-aware fine-tuning, then int8.", "",
            _table(cost_rows, ["model", "PTQ int8", "16x8", "mixed (rescue)", "QAT int8",
                               "best int8-class edge artifact"]), "",
            "## Every layer", "", _table(all_rows, ["artifact", "layer", "op", "RMSE/scale", "SQNR (dB)",
                                                     "drop (dB)"]), ""]


def micro_page(records: list[dict]) -> list[str] | None:
    """results/micro.md: every artifact measured on TFLM, its flash, arena, MACs and accuracy, and
    which common boards can hold it."""
    from fmnist.boards import BOARDS, FLASH_RESERVE, RAM_FREE_FOR_ARENA
    micro = [r for r in records if get_runtime(r["runtime"]).microcontroller]
    if not micro:
        return None
    ok = sorted((r for r in micro if r["status"] == "ok"),
                key=lambda r: (r["model"], r["variant"] != "base", r["variant"], r["format"]))
    rows = []
    for r in ok:
        t = r["tflm"]
        rows.append([r["model"], r["variant"], r["format"], f"{t['flash_bytes']:,}", f"{t['arena_bytes_min']:,}",
                     f"{t['arena_bytes_recorded']:,}" if t["arena_bytes_recorded"] else "", f"{r['macs']:,}",
                     pct(r["accuracy"]), f"{100 * r['accuracy_delta']:+.2f}", pct(t["agreement_with_litert"]),
                     _us(r["latency_us"]["p50"]), ", ".join(t["ops"]),
                     *("✓" if b.fits(t["flash_bytes"], t["arena_bytes_min"]) else "✗" for b in BOARDS)])
    problems = [f"- {r['model']} {r['variant']} {r['format']}: {r['error']}" for r in micro if r["status"] == "error"]
    unavailable = [f"- TFLM not measured: {r['error']}" for r in micro if r["status"] == "unavailable"]
    return ["# Microcontrollers: does it run on TFLM, does it agree, does it fit", "",
            "Written by `fmnist-bench` from a real run. Every int8 and 16x8 artifact run by TensorFlow Lite for "
            "Microcontrollers' own interpreter (the `tflite-micro` package, reference kernels): accuracy on all "
            "10,000 test images, top-1 agreement with LiteRT on the same file, the tensor arena (the smallest "
            "that runs, found by search, and what TFLM's recording allocator reports) and the flash the model "
            "takes (its bytes). `tflm` is the batch-1 microcontroller export (`fmnist-export --format tflm`).", "",
            f"A board fits a model when the model's bytes plus {FLASH_RESERVE // 1024} KiB (our reserve for TFLM's "
            f"interpreter, kernels and a small application) fit its flash, and the smallest arena fits "
            f"{RAM_FREE_FOR_ARENA:.0%} of its RAM (the rest for stack, heap and drivers). Board figures: README.md. "
            f"Host p50 is TFLM's reference kernels on this x86-64 host: it says nothing about a microcontroller's "
            f"latency.", "",
            "| board | MCU | flash | RAM |", "|---|---|---|---|",
            *[f"| {b.name} | {b.mcu} | {b.flash_bytes // 1024:,} KiB | {b.ram_bytes // 1024:,} KiB |" for b in BOARDS],
            "", _table(rows, ["model", "variant", "format", "flash B", "arena B (min)", "arena B (recorded)",
                              "MACs", "TFLM acc", "Δ pts vs Keras", "agree w/ LiteRT", "host p50 µs", "ops",
                              *(b.name for b in BOARDS)]) if rows else NO_DATA, "",
            *(["## Not run on TFLM", "", *problems, *unavailable, ""] if problems or unavailable else [])]


DEVICES_DIR = "devices"


def device_results(results: Path) -> list[dict]:
    """The device runs merged into results/ (results/devices/<label>.json, checked when merged)."""
    import json
    found = []
    for path in sorted((Path(results) / DEVICES_DIR).glob("*.json")):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return found


def devices_page(document: dict, plot_path: Path) -> list[str]:
    """results/devices.md: per model, the best edge row of each machine side by side."""
    from fmnist import plots
    machines = document["machines"]
    ok = [r for r in document["records"] if r["status"] == "ok" and _is_edge(r)]
    labels = [m for m in machines if any(r.get("machine", HOST_LABEL) == m for r in ok)]
    rows, best = [], {}
    for model in sorted({r["model"] for r in ok}):
        cells = []
        for label in labels:
            mine = [r for r in ok if r["model"] == model and r.get("machine", HOST_LABEL) == label]
            sound = [r for r in mine if _sound(r, r["source_accuracy"])]
            fastest = min(sound, key=lambda r: r["latency_us"]["p50"], default=None)
            best[(model, label)] = fastest
            cells.append(f"{_label(fastest)}: {_us(fastest['latency_us']['p50'])} µs, {pct(fastest['accuracy'])}, "
                         f"{fastest['size_bytes']:,} B" if fastest else "not measured")
        rows.append([model, *cells])
    plots.best_latency_by_machine({label: {model: r["latency_us"]["p50"] for (model, l), r in best.items()
                                           if l == label and r} for label in labels}, plot_path)
    described = [f"- **{label}**: {m['cpu']}{_features(m)}, {m['architecture']}, {m['cores']} cores, {m['os']}, Python {m['python']}"
                 for label, m in machines.items() if label in labels]
    return ["# Devices: the same artifacts on each machine", "",
            "Written by `fmnist-bench` / `fmnist-bench merge` from real runs: the host's own benchmark and each "
            "device's bundle run (README: Benchmark on your device). Per model and machine, the fastest sound "
            f"edge row (not flagged, within {100 * MAX_ACCURACY_DROP:g} points of its source model): batch-1 p50, "
            "accuracy on all 10,000 test images, artifact size. Every row is in benchmark.json with its `machine`.", "",
            *described, "", _table(rows, ["model", *labels]), "", "![best latency by machine](plots/devices.png)", ""]


def _problems(records: list[dict]) -> list[str]:
    lines = []
    for r in records:
        if r["status"] == "unavailable":
            lines.append(f"- **{r['runtime']}** ({r['device']}) not measured: {r['error']}")
        elif r["status"] == "error":
            lines.append(f"- {r['model']} {r['variant']} {r['format']} on {r['runtime']}: {r['error']}")
    return lines


def write_benchmark(document: dict, results: Path, exports: Path) -> None:
    """results/README.md, accuracy.md, latency.md, size.md, benchmark.json/.csv and the plots, staged
    in a temp folder and moved in together at the end (an interrupted run changes nothing)."""
    import os

    from fmnist import plots
    records = [r for r in document["records"] if r.get("machine", HOST_LABEL) == HOST_LABEL]
    devices = device_results(results)
    document = {**document, "records": records + [r for d in devices for r in d["records"]],
                "machines": {**document.get("machines", {}), **{d["machine"]["label"]: d["machine"] for d in devices}}}
    ok = sorted((r for r in records if r["status"] == "ok"),
                key=lambda r: (r["model"], r["variant"] != "base", r["variant"], r["format"], r["runtime"]))
    env = environment_lines(document["environment"])
    settings = document["settings"]
    method = [f"- Batch-1 latency: {settings['warmup_calls']} warm-up calls, then at least {settings['min_calls']} "
              f"calls and {settings['min_seconds']} s (at most {settings['max_calls']:,}); timed: "
              f"{LATENCY_SCOPE_TEXT}.",
              f"- Throughput at batch {settings['throughput_batch']}; accuracy on all 10,000 test images; parity "
              f"against the Keras source model of the same variant.",
              f"- Flagged (⚠): accuracy more than {100 * MAX_ACCURACY_DROP:g} pts below the source model, or top-1 "
              f"agreement under {100 * MIN_AGREEMENT:g}%; a variant whose own Keras accuracy is more than "
              f"{100 * VARIANT_MAX_DROP:g} pt below its base model's is flagged as such (the variant lost it, not "
              f"the export). Flagged artifacts are measured like any other: what they cost is the answer.",
              "- Memory: each runtime runs in a process of its own; peak RSS is that process's high-water mark "
              "while holding and running the artifact (reset before each), model RSS the part above the "
              "process's size before loading it."]
    head, notes = headline(records)
    problems = _problems(records)
    readme = ["# Results: which model, in which format, on which runtime", "",
              "Written by `fmnist-bench` (`tox -e bench`) from a real run; do not edit by hand.", "",
              "## Headline", "", _table(head[1:], head[0]), "",
              "Fastest edge row: the lowest batch-1 p50 on an edge runtime "
              f"({', '.join(sorted({r['runtime'] for r in ok if _is_edge(r)})) or 'none measured'}) among rows "
              f"that are not flagged and within {100 * MAX_ACCURACY_DROP:g} points of the source model's accuracy.",
              ""]
    if notes:
        readme += ["Where a target is missed:", "", *[f"- {n}" for n in notes], ""]
    own = own_model_lines(records, exports)
    if own:
        readme += ["## Our own model against its targets", "", *own]
    overhead = document.get("harness_overhead")
    if overhead:
        method.append(f"- Harness overhead: on {Path(overhead['artifact']).parent.parent.name} TFLite, "
                      f"{overhead['rounds']} interleaved rounds of the harness's timed loop and a bare "
                      f"`interpreter.invoke()` loop: {overhead['harness_p50_us']:.2f} µs against "
                      f"{overhead['bare_loop_us']:.2f} µs per call, ratio {overhead['ratio']:.3f} (interquartile "
                      f"{overhead['ratio_lower_quartile']:.3f}-{overhead['ratio_upper_quartile']:.3f}).")
    readme += ["## Environment", "", *env, "", "## Method", "", *method, "",
               "## More", "", "- [accuracy.md](accuracy.md): accuracy and parity, every row",
               "- [latency.md](latency.md): latency, throughput, cold start and memory, every row",
               "- [size.md](size.md): artifact sizes, parameters and MACs",
               "- [quantization.md](quantization.md): per-layer int8 error, and what 16x8, mixed precision and "
               "QAT buy back",
               "- [micro.md](micro.md): every int8 artifact on TensorFlow Lite for Microcontrollers: arena, flash, "
               "accuracy, and which boards hold it",
               "- [devices.md](devices.md): the same artifacts measured on other machines by the bundle runner "
               "(`fmnist-bench merge`)",
               "- [training.md](training.md): how each model was trained",
               "- [benchmark.json](benchmark.json) / [benchmark.csv](benchmark.csv): every record (fields in the "
               "project README)", "",
               "![accuracy vs latency](plots/accuracy_vs_latency.png)", "",
               "![latency per runtime](plots/latency_by_runtime.png)", ""]
    if problems:
        readme += ["## Not measured, and errors", "", *problems, ""]
    if document.get("not_made"):
        readme += ["## Not made (format does not apply to the variant)", "",
                   *sorted({f"- {s['format']} of {s['variant']} variants: {s['reason']}"
                            for s in document["not_made"]}), ""]

    def page(title, table):
        return "\n".join([f"# {title}", "", "Written by `fmnist-bench` from a real run.", "", table, "",
                          "## Environment", "", *env, "", "## Method", "", *method, ""])

    results.mkdir(parents=True, exist_ok=True)
    staged = Path(results) / f".bench-staging-{os.getpid()}"
    shutil.rmtree(staged, ignore_errors=True)
    (staged / "plots").mkdir(parents=True)
    try:
        write_text(staged / "README.md", "\n".join(readme))
        write_text(staged / "accuracy.md", page("Accuracy and parity", accuracy_table(ok)))
        write_text(staged / "latency.md", page("Latency, throughput, cold start, memory", latency_table(ok)))
        write_text(staged / "size.md", page("Size", size_table(ok)))
        if devices:
            write_text(staged / "devices.md", "\n".join(devices_page(document, staged / "plots" / "devices.png")))
        micro = micro_page(records)
        if micro:
            write_text(staged / "micro.md", "\n".join(micro + ["## Environment", "", *env, ""]))
        quantization = quantization_page(records, exports, staged / "plots" / "sqnr_by_layer.png")
        if quantization:
            write_text(staged / "quantization.md", "\n".join(quantization + ["## Environment", "", *env, ""]))
        write_json(staged / "benchmark.json", document)
        write_text(staged / "benchmark.csv", _csv(records))
        for plot in ("accuracy_vs_latency", "latency_by_runtime"):
            if ok:
                getattr(plots, plot)(ok, staged / "plots" / f"{plot}.png")
            else:  # no rows: an old plot would contradict the tables
                (Path(results) / "plots" / f"{plot}.png").unlink(missing_ok=True)
        (Path(results) / "plots").mkdir(exist_ok=True)
        for file in sorted(p for p in staged.rglob("*") if p.is_file()):
            os.replace(file, Path(results) / file.relative_to(staged))
    finally:
        shutil.rmtree(staged, ignore_errors=True)
