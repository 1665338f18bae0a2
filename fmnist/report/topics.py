"""The pages of results/ a run has only when it measured their subject: quantization (per-layer int8
error and what rescues it), micro (microcontroller fit) and devices (other machines). Each render
function returns None when there is nothing to show, and the page is then not published."""
from __future__ import annotations

from pathlib import Path

from fmnist import plots
from fmnist.boards import BOARDS, FLASH_RESERVE, NPU_BOARDS, RAM_FREE_FOR_ARENA
from fmnist.metrics import MAX_ACCURACY_DROP
from fmnist.report import analysis as a
from fmnist.report.cores import core_lines, core_rows
from fmnist.report.gfm import Column, field, table
from fmnist.report.pages import best_per, environment_lines, features, long_table, pct, us
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


LAYERS = [field("model"), field("variant"), field("format"), Column("layer", lambda r: _layer_name(r["tensor"])),
          field("op"), field("rmse_over_scale", lambda v: f"{v:.3f}", "RMSE/scale"),
          field("sqnr_db", lambda v: f"{v:.1f}", "SQNR (dB)"), field("sqnr_drop_db", lambda v: f"{v:.1f}", "drop (dB)")]


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
    series = {}
    for w in worst:
        if w["sqnr_by_layer"]:
            series.setdefault(w["model"], {})[f"{w['variant']} {w['format']}"] = w["sqnr_by_layer"]
    if series:
        plots.sqnr_by_layer(series, folder / "plots" / "sqnr_by_layer.png")
    columns, costs = a.integer_costs(ok)
    cost_rows = [[c["model"], *(_cost(c["cells"].get(col)) for col in columns),
                  (f"{a.label(c['best'])}: {pct(c['best']['accuracy'])}, {c['best']['size_bytes']:,} B, "
                   f"{us(c['best']['latency_us']['p50'])} µs") if c["best"] else ""] for c in costs]
    layers = [{**r, "model": e["model"], "variant": e["variant"], "format": e["format"]}
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
        long_table(layers, LAYERS, "layers.csv", folder, {}), "",
        *environment_lines(document["environment"])])


def _tick(fits: bool) -> str:
    return "✓" if fits else "✗"


def _weights(r: dict) -> int:
    return r["ethos_u"]["flash_bytes"] + r["ethos_u"]["dram_bytes"]


def _npu_lines(document: dict, folder: Path) -> list[str]:
    """micro.md's Ethos-U section: Vela's estimates beside TFLM's arena for the same file, and which
    NPU boards hold each network."""
    host = a.host_rows(document["records"])
    estimates = a.estimate_rows(host)
    problems = [f"- {r['model']} {r['variant']} {r['format']} on {r['runtime']}: {r['error']}" for r in host
                if r["status"] == "error" and r["runtime"].startswith("ethos-u")]
    if not estimates and not problems:
        return []
    arenas = {r["artifact_sha256"]: r["tflm"]["arena_bytes_min"] for r in a.ok_rows(host) if r.get("tflm")}
    configs = sorted({(r["runtime"], r["ethos_u"]["system_config"], r["ethos_u"]["memory_mode"],
                       r["ethos_u"]["system"], r["ethos_u"]["clock_hz"]) for r in estimates})
    npu = lambda key, show=lambda v: f"{v:,}", header=None: field(f"ethos_u.{key}", show, header)  # noqa: E731
    columns = [field("model"), field("variant"), field("format"), field("runtime", header="NPU"),
               npu("cycles_total", header="cycles"), npu("cycles_npu", header="NPU cycles"),
               npu("inference_us", us, "est. µs"), npu("inferences_per_second", lambda v: f"{v:,.0f}", "est. inf/s"),
               npu("sram_bytes", header="SRAM B"), Column("weights B", _weights, lambda v: f"{v:,}"),
               npu("weights_in", str, "weights in"),
               Column("TFLM arena B (same file)", lambda r: arenas.get(r["artifact_sha256"]), lambda v: f"{v:,}"),
               Column("ops NPU / CPU", lambda r: f"{r['ethos_u']['npu_ops']} / {r['ethos_u']['cpu_ops']}"),
               *(Column(b.name, lambda r, b=b: b.fits(r["ethos_u"]["sram_bytes"], _weights(r))
                        if b.accelerator == r["runtime"] else None, _tick) for b in NPU_BOARDS)]
    fastest = lambda r: r["ethos_u"]["inference_us"]  # noqa: E731
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
        "", table([[b.name, b.soc, b.accelerator, f"{b.sram_bytes // 1024:,} KiB", f"{b.weights_bytes // 1024:,} KiB"]
                   for b in NPU_BOARDS], ["board", "SoC", "NPU configuration", "SRAM", "weights memory"]), "",
        long_table(estimates, columns, "npu.csv", folder, {"The fastest estimate of each model on each NPU": best_per(
            estimates, lambda r: (r["model"], r["runtime"]), fastest)}), "",
        *(["### Not compiled", "", *problems, ""] if problems else [])]


def micro_page(document: dict, folder: Path) -> str | None:
    """results/micro.md: every artifact measured on a microcontroller runtime (flash, arena, MACs,
    accuracy, and which common boards can hold it), and the NPU estimates."""
    micro = a.micro_rows(a.host_rows(document["records"]))
    npu = _npu_lines(document, folder)
    if not micro and not npu and not core_rows(document["records"]):
        return None
    own = lambda key, show=lambda v: f"{v:,}", header=None: Column(  # noqa: E731
        header or key, lambda r: r[r["runtime"]].get(key), show)  # a microcontroller runtime's own section
    agreement = lambda r: next((v for k, v in r[r["runtime"]].items() if k.startswith("agreement_with_")), None)  # noqa
    columns = [field("model"), field("variant"), field("format"), own("flash_bytes", header="flash B"),
               own("arena_bytes_min", header="arena B (min)"),
               own("arena_bytes_recorded", lambda v: f"{v:,}" if v else "", "arena B (recorded)"),
               field("macs", lambda v: f"{v:,}", "MACs"), field("accuracy", pct, "TFLM acc"),
               Column("Δ pts vs Keras", lambda r: 100 * r["accuracy_delta"], lambda v: f"{v:+.2f}"),
               Column("agree w/ LiteRT", lambda r: agreement(r) if agreement(r) is not None else "no LiteRT row",
                      lambda v: v if isinstance(v, str) else pct(v)),
               field("latency_us.p50", us, "host p50 µs"), field("peak_rss_mb", lambda v: f"{v:.1f}", "host RSS MB"),
               own("ops", ", ".join),
               Column("full-test outputs", lambda r: f"= {r[r['runtime']]['outputs_from']['file']}"
                      if r[r["runtime"]].get("outputs_from") else "own pass"),
               *(Column(b.name, lambda r, b=b: b.fits(r[r["runtime"]]["flash_bytes"],
                                                      r[r["runtime"]]["arena_bytes_min"]), _tick) for b in BOARDS)]
    ok = a.ok_rows(micro)
    rank = lambda r: (r["flagged"], -r["accuracy"], r[r["runtime"]]["flash_bytes"])  # noqa: E731
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
        "", table([[b.name, b.mcu, f"{b.flash_bytes // 1024:,} KiB", f"{b.ram_bytes // 1024:,} KiB"] for b in BOARDS],
                  ["board", "MCU", "flash", "RAM"]),
        "", long_table(ok, columns, "micro.csv", folder, {
            "The most accurate unflagged TFLM row of each model": best_per(ok, lambda r: r["model"], rank)}), "",
        *(["## Not run on TFLM", "", *problems, *unavailable, ""] if problems or unavailable else []),
        *core_lines(document, folder), *npu, *environment_lines(document["environment"])])


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
