"""results/profile.md: where each model's main artifacts spend their time, op by op: measured by
the runtimes that have a profiler (ONNX Runtime, OpenVINO), estimated in NPU cycles (Vela), and
counted in MACs from the graph for the runtimes without one (LiteRT, TFLM)."""
from __future__ import annotations

import textwrap
from pathlib import Path

from fmnist import plots
from fmnist.export import get_format
from fmnist.report import analysis as a
from fmnist.report.gfm import table
from fmnist.report.pages import environment_lines, us

TOP = 3  # ops named per row in the tables


def main_format(fmt: str) -> bool:
    """A model's main artifacts: its float files and its full-integer ones (not the in-between)."""
    found = get_format(fmt)
    return not found.quantized or found.full_integer


PROFILED_CORE = "cortex-m4"  # the C export's per-layer instructions, on the commonest DSP core


def profiled_rows(records: list[dict]) -> list[dict]:
    """Each base model's main artifacts with a per-op profile, measured rows and estimates alike."""
    cores = [r for r in a.host_rows(records) if r["status"] == "estimated" and r["runtime"] == PROFILED_CORE]
    rows = a.ok_rows(a.host_rows(records)) + a.estimate_rows(a.host_rows(records)) + cores
    return [r for r in rows if r.get("op_profile") and r["variant"] == "base" and main_format(r["format"])]


def _figure(value: float, unit: str) -> str:
    return f"{us(value)} µs" if unit == "µs" else f"{value:,.0f} {unit}"


def _against_latency(r: dict) -> tuple[str, str]:
    """(Σ per-op time / one-thread p50, the profiled calls' wall time / one-thread p50), for timed
    profiles: how much of the call the ops explain, and what profiling itself costs."""
    profile, p50 = r["op_profile"], a.one_thread_p50(r)
    if profile["unit"] != "µs" or not p50:
        return "", ""
    wall = profile.get("profiled_wall_us_mean")
    return f"{profile['total'] / p50:.2f}", f"{wall / p50:.2f}" if wall else ""


def _row(r: dict) -> list:
    profile = r["op_profile"]
    top = [op for op in profile["ops"] if op["name"] != "other"][:TOP]
    return [r["format"], r["runtime"], _figure(profile["total"], profile["unit"]), *_against_latency(r),
            "; ".join(f"{op['name'].split('/')[-1][:40]} ({op['type']}) {100 * op['share']:.0f}%" for op in top),
            ", ".join(f"{family} {100 * share:.0f}%" for family, share in
                      sorted(a.family_shares(profile).items(), key=lambda kv: -kv[1]) if share >= 0.005)]


UNITS = {"µs": "time (profiler, 1 thread)", "cycles": "NPU cycles (Vela estimate)", "MACs": "MACs (counted)"}


def _bars(mine: list[dict]) -> dict[str, dict[str, dict[str, float]]]:
    """unit -> bar label -> op family shares, for one model's rows; formats of one runtime whose
    shares agree to half a point share a bar (LiteRT's MACs are the graph's, in every format)."""
    found = {}
    for r in mine:
        shares = a.family_shares(r["op_profile"])
        key = (r["runtime"], tuple(sorted((f, round(200 * v)) for f, v in shares.items() if round(200 * v))))
        found.setdefault(UNITS.get(r["op_profile"]["unit"], r["op_profile"]["unit"]), {}).setdefault(
            key, (shares, []))[1].append(r["format"])
    return {unit: {textwrap.fill(f"{runtime} · {', '.join(formats)}", 34): shares
                   for (runtime, _), (shares, formats) in bars.items()} for unit, bars in found.items()}


def profile_page(document: dict, folder: Path) -> str | None:
    rows = profiled_rows(document["records"])
    if not rows:
        return None
    models = sorted({r["model"] for r in rows})
    plots.op_shares({model: _bars([r for r in rows if r["model"] == model]) for model in models},
                    folder / "plots" / "profile.png")
    sources = sorted({(r["runtime"], r["op_profile"]["source"]) for r in rows})
    sections = []
    for model in models:
        sections += [f"## {model}", "", table([_row(r) for r in rows if r["model"] == model],
                                              ["format", "runtime", "per call (sum of ops)", "Σ ops / p50",
                                               "profiled call / p50", f"top {TOP} ops (share)", "by kind of op"]), ""]
    return "\n".join([
        "# Profile: where each artifact spends its time", "",
        "Written by `fmnist-bench` from a real run: the base model's main artifacts, op by op. What each runtime "
        "can tell:", "", *[f"- **{runtime}**: {source}" for runtime, source in sources], "",
        "Timed profiles (µs) run in a second session with the profiler on, one thread, batch 1, summed over the "
        "calls stated in benchmark.json (`op_profile.calls`) and given per call. *Σ ops / p50* is the sum of the "
        "ops' times over the row's own one-thread batch-1 p50, measured without the profiler: below 1, the rest "
        "is the runtime's own work between ops (dispatch, input and output binding); above 1, the profiler's "
        "cost inside the ops. *Profiled call / p50* is the profiled session's whole call over that p50: what "
        "profiling itself costs. Ethos-U figures are Vela's cycle estimates (nothing ran); LiteRT's are "
        "multiply-accumulates counted from the graph, which say where the arithmetic is, not the time.", "",
        "![share of each kind of op, per model, runtime and format](plots/profile.png)", "",
        *sections, *environment_lines(document["environment"])])
