"""The pages of results/ a run has only when it measured their subject: quantization (per-layer int8
error and what rescues it), micro (microcontroller fit) and devices (other machines). Each render
function returns None when there is nothing to show, and the page is then not published."""
from __future__ import annotations

from pathlib import Path

from fmnist import plots
from fmnist.boards import BOARDS, FLASH_RESERVE, NPU_BOARDS, RAM_FREE_FOR_ARENA
from fmnist.metrics import MAX_ACCURACY_DROP
from fmnist.report import analysis as a
from fmnist.report.pages import environment_lines, features, pct, table, us
from fmnist.runtimes import get_runtime


def _layer_name(tensor: str) -> str:
    """'mlp4x3/dense_2/MatMul;mlp4x3/dense_2/Relu;...' -> 'dense_2' (display only)."""
    parts = tensor.split(";")[0].split("/")
    return parts[1] if len(parts) > 1 else parts[0]


def _cost(row: dict | None) -> str:
    if not row:
        return ""
    base = row.get("base_test_accuracy") or row["source_accuracy"]
    return (f"{pct(row['accuracy'])} ({100 * (row['accuracy'] - base):+.2f} pts, agree {pct(row['agreement'])})"
            + (" ⚠" if row["flagged"] else ""))


def _sixteen_lines(summary: dict | None) -> list[str]:
    if not summary:
        return []
    return [f"16-bit against 8-bit activations on {summary['runtime']}, over the {summary['pairs']} (model, variant) "
            f"pairs of this run: batch-1 p50 {summary['ratio']:.2f}× the 8-bit graph's (median). The delegate took "
            f"{summary['delegated_8']} of {summary['pairs']} 8-bit graphs and {summary['delegated_16']} of "
            f"{summary['pairs']} 16-bit graphs: the others run on the runtime's builtin kernels.", ""]


def quantization_page(document: dict, folder: Path) -> str | None:
    """results/quantization.md: per-layer error of every calibrated artifact (from the run's
    document), each model's worst layer, and what each int8-class option costs."""
    entries = document.get("layer_errors", [])
    if not entries:
        return None
    ok = a.ok_rows(a.host_rows(document["records"]))
    worst = a.worst_layers(entries)
    worst_rows = [[w["model"], w["variant"], w["format"], _layer_name(w["worst"]["tensor"]), w["worst"]["op"],
                   f"{w['worst']['rmse_over_scale']:.2f}", f"{w['worst']['sqnr_db']:.1f}",
                   f"{w['layers'][-1]['sqnr_db']:.1f}", f"{w['agreement']:.4f}"] for w in worst if w["worst"]]
    series = {f"{w['model']} {w['variant']}": w["sqnr_by_layer"] for w in worst if w["sqnr_by_layer"]}
    if series:
        plots.sqnr_by_layer(series, folder / "plots" / "sqnr_by_layer.png")
    columns, costs = a.integer_costs(ok)
    cost_rows = [[c["model"], *(_cost(c["cells"].get(col)) for col in columns),
                  (f"{a.label(c['best'])}: {pct(c['best']['accuracy'])}, {c['best']['size_bytes']:,} B, "
                   f"{us(c['best']['latency_us']['p50'])} µs") if c["best"] else ""] for c in costs]
    all_rows = [[f"{e['model']} · {e['variant']} · {e['format']}", _layer_name(r["tensor"]), r["op"],
                 f"{r['rmse_over_scale']:.3f}", f"{r['sqnr_db']:.1f}", f"{r['sqnr_drop_db']:.1f}"]
                for e in entries for r in e["layers"]]
    return "\n".join([
        "# Quantization: where int8 loses precision, and what rescues it", "",
        "Written by `fmnist-bench` from the export manifests and the benchmark rows of a real run.", "",
        *_sixteen_lines(a.sixteen_vs_eight(ok)),
        "Per-layer error: each op output of the quantized TFLite graph against the same tensor of the model's float "
        "TFLite graph, both run on 200 calibration (training) images with every intermediate tensor kept "
        "(fmnist/quantization.py). RMSE/scale is the error in the layer's own quantization steps (rounding alone "
        "gives 0.29); SQNR is signal over that error in dB; the drop is what the layer adds. This is TensorFlow's "
        "QuantizationDebugger statistic, measured along the whole graph, and it works on quantization-aware models "
        "too, which the debugger refuses.", "",
        "## The worst layer of each 8-bit artifact", "",
        table(worst_rows, ["model", "variant", "format", "worst layer", "op", "RMSE/scale", "SQNR there (dB)",
                           "output SQNR (dB)", "agreement at export (1k images)"]), "",
        *(["![SQNR by layer](plots/sqnr_by_layer.png)", ""] if series else []),
        "## What each int8-class option costs (all 10,000 test images, each on its format's own runtime)", "",
        "Accuracy, its change against the base model's Keras accuracy, and top-1 agreement with its own Keras "
        "model. The calibrated formats of the base model, then the quantization-aware (QAT) variant's 8-bit "
        "formats; the last column is the best int8-class edge row.", "",
        table(cost_rows, ["model", *columns, "best int8-class edge artifact"]), "",
        "## Every layer", "",
        table(all_rows, ["artifact", "layer", "op", "RMSE/scale", "SQNR (dB)", "drop (dB)"]), "",
        *environment_lines(document["environment"])])


def _npu_lines(document: dict) -> list[str]:
    """micro.md's Ethos-U section: Vela's estimates beside TFLM's arena for the same file, and which
    NPU boards hold each network."""
    host = a.host_rows(document["records"])
    estimates = a.estimate_rows(host)
    problems = [f"- {r['model']} {r['variant']} {r['format']} on {r['runtime']}: {r['error']}" for r in host
                if r["status"] == "error" and get_runtime(r["runtime"]).kind == "estimate"]
    if not estimates and not problems:
        return []
    arenas = {r["artifact_sha256"]: r["tflm"]["arena_bytes_min"] for r in a.ok_rows(host) if r.get("tflm")}
    configs = sorted({(r["runtime"], r["ethos_u"]["system_config"], r["ethos_u"]["memory_mode"],
                       r["ethos_u"]["system"], r["ethos_u"]["clock_hz"]) for r in estimates})
    rows = []
    for r in estimates:
        e = r["ethos_u"]
        weights = e["flash_bytes"] + e["dram_bytes"]
        rows.append([r["model"], r["variant"], r["format"], r["runtime"], f"{e['cycles_total']:,}",
                     f"{e['cycles_npu']:,}", us(e["inference_us"]), f"{e['inferences_per_second']:,.0f}",
                     f"{e['sram_bytes']:,}", f"{weights:,} ({e['weights_in']})",
                     f"{arenas[r['artifact_sha256']]:,}" if r["artifact_sha256"] in arenas else "",
                     f"{e['npu_ops']} / {e['cpu_ops']}",
                     *(("✓" if b.fits(e["sram_bytes"], weights) else "✗") if b.accelerator == r["runtime"] else "—"
                       for b in NPU_BOARDS)])
    return [
        "## Arm Ethos-U NPUs: Vela's estimates (nothing ran)", "",
        "Arm's compiler Vela compiled each int8 batch-1 (`tflm`) file and each 16x8 file (which has no batch-1 "
        "export: Vela fixes its batch at 1, and names the ops it leaves on the CPU) for each NPU configuration "
        "below, and estimated from its model of the NPU and the system's memories. These are estimates, not "
        "measurements: they are kept out of every 'fastest' choice of these pages. Per-layer cycles: "
        "[profile.md](profile.md) and `ethos_u.layers` in benchmark.json.", "",
        *[f"- **{runtime}**: Vela system config `{config}`, memory mode `{mode}`: {system}, clock "
          f"{clock / 1e6:,.0f} MHz." for runtime, config, mode, system, clock in configs], "",
        f"An NPU board holds a network when its weights plus {FLASH_RESERVE // 1024} KiB fit the memory they are "
        f"read from, and Vela's SRAM fits {RAM_FREE_FOR_ARENA:.0%} of the board's SRAM. Board figures: README.md.",
        "", "| board | SoC | NPU configuration | SRAM | weights memory |", "|---|---|---|---|---|",
        *[f"| {b.name} | {b.soc} | {b.accelerator} | {b.sram_bytes // 1024:,} KiB | {b.weights_bytes // 1024:,} KiB |"
          for b in NPU_BOARDS], "",
        table(rows, ["model", "variant", "format", "NPU", "cycles", "NPU cycles", "est. µs", "est. inf/s",
                     "SRAM B", "weights B (where)", "TFLM arena B (same file)", "ops NPU / CPU",
                     *(b.name for b in NPU_BOARDS)]), "",
        *(["### Not compiled", "", *problems, ""] if problems else [])]


def micro_page(document: dict, folder: Path) -> str | None:
    """results/micro.md: every artifact measured on a microcontroller runtime (flash, arena, MACs,
    accuracy, and which common boards can hold it), and the NPU estimates."""
    micro = a.micro_rows(a.host_rows(document["records"]))
    npu = _npu_lines(document)
    if not micro and not npu:
        return None
    rows = []
    for r in a.ok_rows(micro):
        t = r[r["runtime"]]  # a microcontroller runtime's own section: arena, flash, ops, agreement
        agreement = next((v for k, v in t.items() if k.startswith("agreement_with_")), None)
        rows.append([r["model"], r["variant"], r["format"], f"{t['flash_bytes']:,}", f"{t['arena_bytes_min']:,}",
                     f"{t['arena_bytes_recorded']:,}" if t["arena_bytes_recorded"] else "", f"{r['macs']:,}",
                     pct(r["accuracy"]), f"{100 * r['accuracy_delta']:+.2f}",
                     pct(agreement) if agreement is not None else "no LiteRT row", us(r["latency_us"]["p50"]),
                     f"{r['peak_rss_mb']:.1f}", ", ".join(t["ops"]),
                     f"= {t['outputs_from']['file']}" if t.get("outputs_from") else "own pass",
                     *("✓" if b.fits(t["flash_bytes"], t["arena_bytes_min"]) else "✗" for b in BOARDS)])
    problems = [f"- {r['model']} {r['variant']} {r['format']}: {r['error']}" for r in micro if r["status"] == "error"]
    unavailable = [f"- not measured: {r['error']}" for r in micro if r["status"] == "unavailable"]
    return "\n".join([
        "# Microcontrollers: does it run on TFLM, does it agree, does it fit", "",
        "Written by `fmnist-bench` from a real run. Every int8 and 16x8 artifact run by TensorFlow Lite for "
        "Microcontrollers' own interpreter (the `tflite-micro` package, reference kernels): accuracy on all 10,000 "
        "test images, top-1 agreement with LiteRT on the same file (from LiteRT's own row: 'no LiteRT row' when this "
        "run did not measure that file on LiteRT), the tensor arena (the smallest that runs, found by search, and "
        "what TFLM's recording allocator reports) and the flash the model takes (its bytes). `tflm` is the batch-1 "
        "microcontroller export (`fmnist-export --format tflm`). TFLM's full-test pass runs once per distinct "
        "network: a file whose outputs on the first 1,000 test images are bit-identical to another file's of the "
        "same model (its `tflite-int8` and `tflm` files are one integer network) takes that file's outputs for "
        "the rest ('full-test outputs' names it; `tflm.outputs_from` in benchmark.json).", "",
        f"A board fits a model when the model's bytes plus {FLASH_RESERVE // 1024} KiB (our reserve for TFLM's "
        f"interpreter, kernels and a small application) fit its flash, and the smallest arena fits "
        f"{RAM_FREE_FOR_ARENA:.0%} of its RAM (the rest for stack, heap and drivers). Board figures: README.md. "
        f"Host p50 is TFLM's reference kernels on this host: it says nothing about a microcontroller's latency. "
        f"Host RSS is the host process's batch-1 footprint (TFLM's Python interpreter included), not an MCU's RAM.",
        "", "| board | MCU | flash | RAM |", "|---|---|---|---|",
        *[f"| {b.name} | {b.mcu} | {b.flash_bytes // 1024:,} KiB | {b.ram_bytes // 1024:,} KiB |" for b in BOARDS],
        "", table(rows, ["model", "variant", "format", "flash B", "arena B (min)", "arena B (recorded)", "MACs",
                         "TFLM acc", "Δ pts vs Keras", "agree w/ LiteRT", "host p50 µs", "host RSS MB", "ops",
                         "full-test outputs",
                         *(b.name for b in BOARDS)]), "",
        *(["## Not run on TFLM", "", *problems, *unavailable, ""] if problems or unavailable else []),
        *npu, *environment_lines(document["environment"])])


def devices_page(document: dict, folder: Path) -> str | None:
    """results/devices.md: per model, each machine's fastest sound edge row side by side."""
    machines = document["machines"]
    if len(machines) < 2:
        return None
    labels, best = a.best_by_machine(document["records"], machines)
    models = sorted({model for model, _ in best})
    rows = [[model, *(f"{a.label(r)}: {us(r['latency_us']['p50'])} µs, {pct(r['accuracy'])}, {r['size_bytes']:,} B"
                      if (r := best[(model, m)]) else "not measured" for m in labels)] for model in models]
    plots.best_latency_by_machine({m: {model: best[(model, m)]["latency_us"]["p50"] for model in models
                                       if best[(model, m)]} for m in labels}, folder / "plots" / "devices.png")
    described = [f"- **{m}**: {machines[m]['cpu']}{features(machines[m])}, {machines[m]['architecture']}, "
                 f"{machines[m]['cores']} cores, {machines[m]['os']}, Python {machines[m]['python']}" for m in labels]
    return "\n".join([
        "# Devices: the same artifacts on each machine", "",
        "Written by `fmnist-bench` / `fmnist-bench merge` from real runs: the host's own benchmark and each "
        "device's bundle run (README: Benchmark on your device). A device's figures are as reported by that "
        "machine: merge checks that every row is of an artifact the host packed and that its figures are well "
        "formed and in range, but it cannot authenticate them. Per model and machine, the fastest sound edge row "
        f"(not flagged, within {100 * MAX_ACCURACY_DROP:g} points of its source model): batch-1 p50, accuracy on all "
        "10,000 test images, artifact size. Every row is in benchmark.json with its `machine`.", "",
        *described, "", table(rows, ["model", *labels]), "", "![best latency by machine](plots/devices.png)", ""])
