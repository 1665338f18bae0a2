"""Markdown reports under results/, written from the records on disk (the report never runs a model)."""
from __future__ import annotations

import shutil
from pathlib import Path

from tabulate import tabulate

from fmnist import storage
from fmnist.atomic import atomic_dir, write_json, write_text
from fmnist.export import get_format
from fmnist.harness import LATENCY_SCOPE as LATENCY_SCOPE_TEXT
from fmnist.metrics import MAX_ACCURACY_DROP, MIN_AGREEMENT, VARIANT_MAX_DROP
from fmnist.models import get_spec, list_models
from fmnist.runtimes import get_runtime

TRAINING_PLOTS = ("learning_curves.png", "confusion_matrix.png", "predictions.png")


def pct(value) -> str:
    return "" if value is None else f"{100 * value:.2f}%"


def environment_lines(env: dict) -> list[str]:
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v)
    return [f"- CPU: {env['cpu']} ({env['cores']} cores, {env['machine']}), Python {env['python']}",
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
                _reported(record), f"{record['train_seconds']:.0f} s", " · ".join(links)])
    headers = ["model", "README", "params", "epochs run", "stop reason", "optimizer", "train acc",
               "val acc", "test acc", "README reports", "train time", "plots"]
    lines = ["# Training: every registered model by its README's recipe", "",
             "Written by `fmnist-train` from the records in exports/; do not edit by hand.",
             "Train accuracy is the last epoch's running average (as Keras reports it and the READMEs "
             "quote it); val is the recipe's validation data (the test set for READMEs 001/002, a held-out "
             "5,000 training images for 003); test is the 10,000 test images.", "",
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
    return get_runtime(r["runtime"]).edge


def _reference_rows(ok: list[dict]) -> dict:
    """(model) -> the base model's direct Keras call: the reference the speed-ups are against."""
    return {r["model"]: r for r in ok if not _is_edge(r) and r["format"] == "keras" and r["variant"] == "base"
            and not get_runtime(r["runtime"]).base_only}


def _sound(r: dict, accuracy: float) -> bool:
    return not r["flagged"] and r["accuracy"] >= accuracy - MAX_ACCURACY_DROP


def _integer_rows(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["format"] != "keras" and get_format(r["format"]).full_integer]


def best_integer_row(rows: list[dict]) -> dict | None:
    """The integer artifact with the smallest accuracy cost, then the smallest file, then the
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
        integer = best_integer_row(mine)
        shrink = _shrink(integer, ok) if integer else None
        speedup = ref["latency_us"]["p50"] / fastest["latency_us"]["p50"] if ref and fastest else None
        rows.append([model, mine[0]["source"], pct(accuracy), _us(ref["latency_us"]["p50"]) if ref else "not measured",
                     _label(fastest) if fastest else "none sound", pct(fastest["accuracy"]) if fastest else "",
                     _us(fastest["latency_us"]["p50"]) if fastest else "", f"{speedup:,.0f}×" if speedup else "",
                     f"{_label(smallest)}: {smallest['size_bytes']:,} B" if smallest else "",
                     (f"{_label(integer)}: {pct(integer['accuracy'])} ({100 * integer['accuracy_delta']:+.2f} pts), "
                      f"{integer['size_bytes']:,} B" + (f", {shrink:.2f}× smaller" if shrink else "")
                      + (" ⚠" if integer["flagged"] else "")) if integer else "not measured"])
        if speedup is not None and speedup < SPEEDUP_TARGET:
            notes.append(f"{model}: the fastest sound edge row is {speedup:.0f}× the Keras call, short of "
                         f"{SPEEDUP_TARGET}×")
        if shrink is not None and shrink < INT8_SHRINK_TARGET:
            notes.append(f"{model}: its best integer artifact is {shrink:.2f}× smaller than its float "
                         f"counterpart, short of {INT8_SHRINK_TARGET}× (a small network's file is mostly "
                         f"fixed overhead)")
    headers = ["model", "README", "source acc", "Keras call p50 µs",
               f"fastest edge row within {100 * MAX_ACCURACY_DROP:g} pts", "its acc", "p50 µs", "speed-up",
               "smallest sound artifact", "best integer artifact (acc, Δ vs source, size, vs float)"]
    return [headers, *rows], notes


OWN_TARGETS = {"keras_accuracy": 0.925, "int8_accuracy": 0.923, "int8_bytes": 100_000, "p50_us": 50,
               "train_seconds": 600}


def _verdict(ok_: bool) -> str:
    return "met" if ok_ else "**missed**"


def own_model_lines(records: list[dict], exports: Path) -> list[str]:
    """Our own models against their targets, each stated with the measured figure (or that this
    run did not measure it)."""
    from fmnist.plots import pareto_front
    ok = [r for r in records if r["status"] == "ok"]
    front = {id(ok[i]) for i in pareto_front([(r["latency_us"]["p50"], r["accuracy"]) for r in ok])}
    t, lines = OWN_TARGETS, []
    for model in sorted({r["model"] for r in ok if r["source"] == "own"}):
        mine = [r for r in ok if r["model"] == model]
        keras = _reference_rows(mine).get(model)
        integer = best_integer_row([r for r in mine if _is_edge(r)])
        accuracy = keras["accuracy"] if keras else mine[0]["source_accuracy"]
        fastest = min((r for r in mine if _is_edge(r) and _sound(r, accuracy)),
                      key=lambda r: r["latency_us"]["p50"], default=None)
        lines.append(f"**{model}**:")
        lines.append("")
        lines.append(f"- Keras accuracy {pct(keras['accuracy'])} (target ≥ {pct(t['keras_accuracy'])}): "
                     f"{_verdict(keras['accuracy'] >= t['keras_accuracy'])}" if keras
                     else "- Keras accuracy: not measured in this run")
        if integer:
            lines += [f"- int8 ({_label(integer)}) accuracy {pct(integer['accuracy'])} (target ≥ "
                      f"{pct(t['int8_accuracy'])}): {_verdict(integer['accuracy'] >= t['int8_accuracy'])}",
                      f"- int8 file {integer['size_bytes']:,} B (target ≤ {t['int8_bytes']:,}): "
                      f"{_verdict(integer['size_bytes'] <= t['int8_bytes'])}"]
        else:
            lines.append("- int8: not measured in this run")
        lines.append(f"- edge batch-1 p50 {_us(fastest['latency_us']['p50'])} µs ({_label(fastest)}; target ≤ "
                     f"{t['p50_us']} µs): {_verdict(fastest['latency_us']['p50'] <= t['p50_us'])}" if fastest
                     else "- edge latency: no sound edge row in this run")
        try:
            seconds = storage.read_record(storage.model_dir(exports, model))["train_seconds"]
            lines.append(f"- training {seconds / 60:.1f} min (target ≤ {t['train_seconds'] / 60:.0f}): "
                         f"{_verdict(seconds <= t['train_seconds'])}")
        except storage.TrainedModelError as e:
            lines.append(f"- training time: unknown ({e})")
        lines += [f"- rows on the accuracy-vs-latency Pareto front: "
                  f"{', '.join(_label(r) for r in mine if id(r) in front) or '**none**'}", ""]
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
    fp32 = {(r["model"], r["variant"]): r["size_bytes"] for r in ok if r["format"] == "tflite"}
    for r in ok:
        key = (r["model"], r["variant"], r["format"])
        if key in seen:
            continue
        seen.add(key)
        ref = fp32.get((r["model"], r["variant"]))
        rows.append([r["model"], r["variant"], r["format"], f"{r['size_bytes']:,}", f"{r['size_gzip_bytes']:,}",
                     f"{ref / r['size_bytes']:.2f}×" if ref else "", f"{r['params']:,}",
                     f"{r['nonzero_params']:,}" if r.get("nonzero_params") else "", f"{r['macs']:,}"])
    return _table(rows, ["model", "variant", "format", "bytes", "gzip bytes", "fp32 TFLite / this", "params",
                         "non-zero params", "MACs/image"])


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
    records = document["records"]
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
