"""Arm Ethos-U NPUs, estimated by Arm's compiler Vela (`ethos-u-vela`): a Cortex-M55 with an
Ethos-U55, and an Ethos-U65 beside the Cortex-A cores of an i.MX 93-class SoC.

Vela compiles an int8 or 16x8 TFLite file for the NPU and estimates, from its model of the NPU and
of the system's memories, the cycles, the inference time at the system's clock, the SRAM and flash
(or DRAM) the network needs, and which ops stay on the CPU. Nothing runs here: the compiled file's
`ethos-u` op needs the hardware or Arm's FVP. So every figure is an estimate, the rows say so
(runtime kind "estimate", status "estimated"), and no "fastest measured" choice reads them.
The fixed-batch `tflm` export is what a device runs, so that is the int8 file compiled; 16x8 has
no fixed-batch export, and its file is compiled as it is (Vela takes batch 1).
"""
from __future__ import annotations

import csv
import re
import tempfile
from importlib import metadata
from pathlib import Path

from fmnist.runtimes.base import Runtime
from fmnist.runtimes.profile import summary

CONFIG_FILE = "Arm/vela.ini"  # the system configurations Vela ships
KIB = 1024


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _count(pattern: str, text: str) -> int | None:
    found = re.search(pattern, text)
    return int(found.group(1)) if found else None


class EthosU(Runtime):
    kind = "estimate"
    formats = ("tflm", "tflite-int16x8")
    takes_threads = False
    single_threaded = True   # one Vela compile per core
    edge = True
    package = "ethosu"
    library = "ethosu.vela.vela"

    def __init__(self, accelerator: str, system_config: str, memory_mode: str, system: str):
        self.name = self.accelerator = accelerator
        self.system_config, self.memory_mode, self.system = system_config, memory_mode, system
        self.device = f"{accelerator} NPU in {system} (Vela estimate)"

    def command(self, path: Path, output: Path) -> list[str]:
        return [str(path), "--accelerator-config", self.accelerator, "--config", CONFIG_FILE,
                "--system-config", self.system_config, "--memory-mode", self.memory_mode,
                "--output-dir", str(output), "--verbose-performance"]

    def estimate(self, path: Path, fmt: str) -> dict:
        """Vela's figures for one file: raises with Vela's own message when it cannot compile it."""
        from ethosu.vela.vela import main

        from fmnist import captured_output
        with tempfile.TemporaryDirectory() as output:
            status, text = captured_output(lambda: main(self.command(Path(path), Path(output))))
            if status:
                last = text.strip().splitlines()[-1:] or ["no message"]
                raise RuntimeError(f"vela exited with {status}: {last[0]}")
            totals = _read_csv(next(Path(output).glob("*_summary_*.csv")))[0]
            layers = _read_csv(next(Path(output).glob("*_per-layer.csv")))
        clock = float(totals["core_clock"])
        kept = [layer for layer in layers if float(layer["Op Cycles"])]
        per_layer = [{"op": layer["NNG Operator"], "name": layer["Name"].split(";")[0], "target": layer["Target"],
                      "cycles": int(float(layer["Op Cycles"])), "share": float(layer["Network% (cycles)"]) / 100,
                      "macs": int(float(layer["MAC Count"])), "utilisation": float(layer["Util% (MAC)"]) / 100}
                     for layer in kept]
        return {"ethos_u": {
            "accelerator": self.accelerator, "system_config": self.system_config, "memory_mode": self.memory_mode,
            "system": self.system, "clock_hz": clock, "vela_version": metadata.version("ethos-u-vela"),
            "cycles_npu": int(float(totals["cycles_npu"])), "cycles_total": int(float(totals["cycles_total"])),
            "inference_us": float(totals["inference_time"]) * 1e6,
            "inferences_per_second": float(totals["inferences_per_second"]),
            "sram_bytes": round(float(totals["sram_memory_used"]) * KIB),
            "flash_bytes": round((float(totals["off_chip_flash_memory_used"])
                                  + float(totals["on_chip_flash_memory_used"])) * KIB),
            "dram_bytes": round(float(totals["dram_memory_used"]) * KIB),
            "weights_in": totals["weights_storage_area"], "feature_maps_in": totals["feature_map_storage_area"],
            "npu_ops": _count(r"NPU operators = (\d+)", text), "cpu_ops": _count(r"CPU operators = (\d+)", text),
            "warnings": sorted({line.strip() for line in text.splitlines() if line.startswith("Warning")}),
            "layers": per_layer, "estimated": True},
            "op_profile": summary({(layer["name"], layer["op"]): layer["cycles"] for layer in per_layer}, "cycles",
                                  f"Vela's per-layer estimate for {self.accelerator} ({self.system_config})")}

    def describe(self):
        return {"runtime": self.name, "version": metadata.version("ethos-u-vela"),
                "provider": f"Vela {self.system_config}, {self.memory_mode}", "device": self.device}


from fmnist.runtimes import register_runtime  # noqa: E402

register_runtime(EthosU("ethos-u55-128", "Ethos_U55_High_End_Embedded", "Shared_Sram",
                        "a Cortex-M55 microcontroller at 500 MHz, weights in off-chip flash"))
register_runtime(EthosU("ethos-u65-256", "Ethos_U65_High_End", "Dedicated_Sram_384KB",
                        "an i.MX 93-class SoC at 1 GHz, DRAM with 384 KiB of SRAM for the NPU"))
