"""micro.md's Cortex-M section: the C export counted on emulated cores (estimates: QEMU counts the
instructions, nothing ran on a board), beside TFLM's arena and flatbuffer for the same network."""
from __future__ import annotations

from pathlib import Path

from fmnist import plots
from fmnist.boards import BOARDS
from fmnist.report import analysis as a
from fmnist.report.gfm import Column, field
from fmnist.report.pages import best_per, long_table, us


def core_rows(records: list[dict]) -> list[dict]:
    return sorted((r for r in a.host_rows(records) if r["status"] == "estimated" and "cortex_m" in r),
                  key=lambda r: (r["model"], r["variant"] != "base", r["variant"], r["cortex_m"]["macs"], r["runtime"]))


def core_lines(document: dict, folder: Path) -> list[str]:
    """Per C file and core: instructions (per inference, per MAC), the time at the core's typical
    clock at one instruction per cycle (labelled so), flash (weights, constants, code) and RAM
    (activations + stack high-water) measured from the firmware, TFLM's arena beside it, and which
    boards hold the firmware (its measured flash and RAM: no stated reserve)."""
    host = a.host_rows(document["records"])
    rows = core_rows(document["records"])
    problems = [f"- {r['model']} {r['variant']} on {r['runtime']}: {r['error']}" for r in host
                if r["status"] in ("error", "unavailable") and r["runtime"].startswith("cortex-m")]
    if not rows and not problems:
        return []
    arenas = {(r["model"], r["variant"]): r["tflm"]["arena_bytes_min"] for r in a.ok_rows(host)
              if r.get("tflm") and r["format"] == "tflm"}
    core = lambda key, show=lambda v: f"{v:,}", header=None: field(f"cortex_m.{key}", show, header)  # noqa: E731
    ratio = lambda r: r["cortex_m"]["ram_bytes"] / arenas[(r["model"], r["variant"])] \
        if arenas.get((r["model"], r["variant"])) else None  # noqa: E731
    columns = [field("model"), field("variant"), field("runtime", header="core"), core("fast_path", str, "path"),
               core("instructions", header="instructions"), core("instructions_per_mac", lambda v: f"{v:.2f}", "per MAC"),
               core("inference_us", us, "est. µs at typical clock"), core("flash_weights_bytes", header="weights B"),
               core("flash_code_bytes", header="code B"), core("ram_bytes", header="RAM B (buffer + stack)"),
               Column("RAM / TFLM arena", ratio, lambda v: f"{v:.0%}"),
               *(Column(b.name, lambda r, b=b: b.fits_firmware(r["cortex_m"]["firmware_flash_bytes"],
                                                               r["cortex_m"]["ram_bytes"]), lambda v: "✓" if v else "✗")
                 for b in BOARDS)]
    if rows:
        plots.instructions_by_core(rows, folder / "plots" / "instructions_by_core.png")
    fewest = lambda r: r["cortex_m"]["instructions"]  # noqa: E731
    return [
        "## Cortex-M cores: the C export, counted on emulated cores (estimates)", "",
        "`fmnist-export --format c` turns each batch-1 int8 graph into plain C99 (no interpreter, no malloc, one "
        "static activation buffer planned by tensor lifetimes), whose outputs equal TFLM's on every test image "
        "(checked at export). Each file was cross-compiled at -O2 into a small bare-metal firmware for each core "
        "and run on QEMU's Arm boards under `-icount shift=0`: 20 test images' outputs equal the host C's, then "
        "one inference's instructions are counted (deterministic: the same count on every run). **Time is an "
        "estimate at one instruction per cycle at the core's typical clock**: real cores stall on memory and "
        "take several cycles for some instructions (Helium's two beats on the M55: up to 2x). Flash and RAM are "
        "the firmware's own, from `arm-none-eabi-size` and the link map, and the stack's high-water mark by "
        "painting: a board fits when they do (no stated reserve, unlike TFLM's rows above). Per-layer "
        "instructions: profile.md and `cortex_m.layers` in benchmark.json.", "",
        *(["![Instructions per inference by model and core](plots/instructions_by_core.png)", ""] if rows else []),
        long_table(rows, columns, "cores.csv", folder, {"The fewest instructions of each model on each core": best_per(
            rows, lambda r: (r["model"], r["runtime"]), fewest)}) if rows else "", "",
        *(["### Not counted", "", *problems, ""] if problems else [])]
