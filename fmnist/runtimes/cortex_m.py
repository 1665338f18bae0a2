"""Arm Cortex-M cores without a board: the C export cross-compiled (gcc-arm-none-eabi, -O2) into a
bare-metal firmware (fmnist/firmware.py) and run on QEMU's Arm boards.

QEMU counts instructions, not cycles: under `-icount shift=0` one instruction is one nanosecond
of virtual time, so SysTick's ticks times (10^9 / its clock) are the instructions executed,
exactly and the same on every run. The time at a core's typical clock is an estimate at one
instruction per cycle (real cores take more for loads, multiplies and branches, less with dual
issue on the M7), so the rows are estimates, as Vela's are. Before counting, the firmware's
outputs for EQUALITY_IMAGES test images must equal the host-compiled C's (and so TFLM's)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fmnist.runtimes.base import Runtime
from fmnist.runtimes.profile import summary

EQUALITY_IMAGES = 20
TOOLS = ("arm-none-eabi-gcc", "arm-none-eabi-size", "arm-none-eabi-nm", "qemu-system-arm")
INSTALL = "install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"
FLAGS = ("-O2", "-std=c99", "-mthumb", "-ffunction-sections", "-fdata-sections")
RUN_SECONDS = 600
WEIGHT_SYMBOL = re.compile(r"l\d+_(weights|bias)$")


@dataclass(frozen=True)
class Core:
    name: str
    mcpu: tuple             # gcc flags selecting the core (soft float where the model needs no FP registers;
    #                         the M55's Helium vectors live in them, hence its hard-float ABI)
    machine: str            # QEMU board
    flash: int              # code and RAM origins of that board
    ram: int
    systick_hz: float       # SysTick's processor clock on that board in QEMU (calibrated)
    typical_hz: float       # a typical part's clock, for the estimated time
    typical_part: str
    caveat: str = ""        # where one instruction per cycle is furthest off


CORES = (
    Core("cortex-m0plus", ("-mcpu=cortex-m0plus",), "mps2-an385", 0x0, 0x20000000, 25e6, 48e6,
         "ATSAMD21G18 (Arduino Zero), 48 MHz; runs on QEMU's Cortex-M3 board, ARMv6-M code only"),
    Core("cortex-m4", ("-mcpu=cortex-m4", "-mfloat-abi=soft"), "mps2-an386", 0x0, 0x20000000, 25e6, 64e6,
         "nRF52840, 64 MHz"),
    Core("cortex-m7", ("-mcpu=cortex-m7", "-mfloat-abi=soft"), "mps2-an500", 0x0, 0x20000000, 25e6, 216e6,
         "STM32F746NG, 216 MHz"),
    Core("cortex-m33", ("-mcpu=cortex-m33", "-mfloat-abi=soft"), "mps2-an505", 0x10000000, 0x38000000, 20e6, 250e6,
         "i.MX 93's Cortex-M33, 250 MHz"),
    Core("cortex-m55", ("-mcpu=cortex-m55", "-mfloat-abi=hard"), "mps3-an547", 0x10000000, 0x30000000,
         32e6, 400e6, "Alif Ensemble E3 high-performance core, 400 MHz",
         "the M55 executes a 128-bit Helium instruction in two beats: its vector loops take up to twice the "
         "cycles counted here"),
)


def _run(command: list, cwd: Path, what: str, timeout: float | None = None) -> str:
    done = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if done.returncode:
        raise RuntimeError(f"{what} failed: {(done.stderr.strip().splitlines() or ['no message'])[0]}")
    return done.stdout


def _sections(obj: Path, cwd: Path) -> dict:
    """Bytes of an object file's code, constants, weights and zeroed RAM (arm-none-eabi-size -A, nm)."""
    sizes = {"code": 0, "constants": 0, "ram": 0}
    for line in _run(["arm-none-eabi-size", "-A", obj], cwd, "arm-none-eabi-size").splitlines()[2:]:
        parts = line.split()
        if len(parts) < 2 or not parts[1].isdigit():
            continue
        name, size = parts[0], int(parts[1])
        kind = ("code" if name.startswith(".text") else "constants" if name.startswith(".rodata")
                else "ram" if name.startswith((".bss", ".data")) else None)
        if kind:
            sizes[kind] += size
    symbols = _run(["arm-none-eabi-nm", "-S", obj], cwd, "arm-none-eabi-nm").splitlines()
    weights = sum(int(parts[1], 16) for parts in (line.split() for line in symbols)
                  if len(parts) == 4 and WEIGHT_SYMBOL.match(parts[3]))
    return {"weights": weights, "constants": sizes["constants"] - weights, "code": sizes["code"], "ram": sizes["ram"]}


class CortexM(Runtime):
    kind = "estimate"
    formats = ("c",)
    takes_threads = False
    single_threaded = True   # one QEMU per core
    edge = True
    microcontroller = True

    def __init__(self, core: Core, defines: tuple = ()):
        self.core, self.defines = core, defines  # defines: e.g. FMNIST_NO_DSP, to count the portable path
        self.name = core.name
        self.device = f"{core.name} on QEMU {core.machine} (instruction count; time estimated at 1 instruction/cycle)"

    def import_library(self) -> None:
        """Nothing to import: the tools are commands."""

    def unavailable(self):
        missing = [tool for tool in TOOLS if shutil.which(tool) is None]
        if missing or not Path(subprocess.run(["arm-none-eabi-gcc", "-print-file-name=libc_nano.a"],
                                              capture_output=True, text=True).stdout.strip()).is_file():
            return INSTALL
        return None

    def firmware(self, folder: Path, images: np.ndarray, work: Path) -> tuple[Path, dict]:
        """Cross-compiles the model and the benchmark firmware; returns the ELF and the model's footprint."""
        from fmnist import firmware
        firmware.write(work, images, self.core.flash, self.core.ram)
        gcc = ["arm-none-eabi-gcc", *FLAGS, *self.core.mcpu, *(f"-D{name}" for name in self.defines)]
        _run([*gcc, "-include", work / "hook.h", "-I", folder, "-c", folder / "model.c", "-o", "model.o"], work,
             f"arm-none-eabi-gcc {self.core.name} model.c")
        _run([*gcc, "-I", folder, "-I", work, "-c", "main.c", "-o", "main.o"], work, "arm-none-eabi-gcc main.c")
        _run([*gcc, "-nostartfiles", "--specs=nano.specs", "-T", "link.ld", "-Wl,--gc-sections", "main.o",
              "model.o", "-lc", "-lgcc", "-o", "firmware.elf"], work, "arm-none-eabi-gcc (link)")
        footprint = _sections(work / "model.o", work)
        text, data = (int(n) for n in _run(["arm-none-eabi-size", "firmware.elf"], work,
                                           "arm-none-eabi-size").splitlines()[1].split()[:2])
        footprint["firmware_flash"] = text + data - images.size  # startup, model, printing: no test images
        return work / "firmware.elf", footprint

    def run(self, elf: Path, work: Path) -> list[str]:
        """The firmware's semihosting lines (to a file: QEMU mixes them into its stderr otherwise)."""
        _run(["qemu-system-arm", "-machine", self.core.machine, "-display", "none", "-monitor", "none",
              "-serial", "none", "-chardev", "file,id=semihosting,path=semihosting.txt",
              "-semihosting-config", "enable=on,target=native,chardev=semihosting", "-icount", "shift=0",
              "-kernel", elf], work, f"qemu-system-arm {self.core.machine}", RUN_SECONDS)
        return (work / "semihosting.txt").read_text().splitlines()

    def estimate(self, path: Path, fmt: str) -> dict:
        """Builds, checks the outputs against the host C's, counts; raises naming the first differing image."""
        from fmnist import data
        from fmnist.runtimes.c_host import CModel
        folder = Path(path).parent
        host = CModel(folder)
        test_images, _ = data.load_test_set()
        quantized = host.quantize(test_images[:EQUALITY_IMAGES].astype(np.float32) / 255)
        expected = host.run(quantized)
        with tempfile.TemporaryDirectory(prefix=f"fmnist-{self.core.name}-") as work:
            elf, footprint = self.firmware(folder, quantized, Path(work))
            lines = self.run(elf, Path(work))
        fields = {}
        outputs = []
        for line in lines:
            key, _, value = line.partition(" ")
            if key == "out":
                outputs.append(np.frombuffer(bytes.fromhex(value), np.int8))
            elif key in ("ticks", "stack", "wrapped"):
                fields[key] = int(value)
            elif key == "layer":
                fields.setdefault("layers", []).append(int(value))
            elif key == "fault":
                raise RuntimeError(f"{self.core.name}: the firmware faulted")
        if len(outputs) != EQUALITY_IMAGES or "ticks" not in fields:
            raise RuntimeError(f"{self.core.name}: the firmware printed {len(outputs)} outputs and "
                               f"{'a' if 'ticks' in fields else 'no'} count: {lines[-1:] or 'nothing'}")
        for index, (got, want) in enumerate(zip(outputs, expected)):
            if not np.array_equal(got, want):
                raise RuntimeError(f"{self.core.name}: the outputs of test image {index} differ from the host C's")
        if fields["wrapped"]:
            raise RuntimeError(f"{self.core.name}: one inference outlasted SysTick's 24-bit count")
        return self._figures(folder, fields, footprint)

    def _figures(self, folder: Path, fields: dict, footprint: dict) -> dict:
        per_tick = 1e9 / self.core.systick_hz
        instructions = round(fields["ticks"] * per_tick)
        described = json.loads((folder / "model.json").read_text())["layers"]  # written by the C export
        layers = [{**layer, "instructions": round(ticks * per_tick)}
                  for layer, ticks in zip(described, fields["layers"])]
        macs = sum(layer["macs"] for layer in layers)
        ram = footprint["ram"] + fields["stack"]
        return {"cortex_m": {
            "core": self.core.name, "mcpu": " ".join(self.core.mcpu), "qemu_machine": self.core.machine,
            "compiler": _run(["arm-none-eabi-gcc", "--version"], folder, "arm-none-eabi-gcc").splitlines()[0],
            "flags": " ".join([*FLAGS, *(f"-D{name}" for name in self.defines)]), "instructions": instructions,
            "macs": macs, "fast_path": fast_path(self.core, self.defines),
            "instructions_per_mac": instructions / macs if macs else None,
            "clock_hz": self.core.typical_hz, "typical_part": self.core.typical_part,
            "inference_us": instructions / self.core.typical_hz * 1e6,
            "estimate_basis": "instructions counted by QEMU (-icount shift=0); time at one instruction per cycle",
            "caveat": self.core.caveat or None,
            "flash_weights_bytes": footprint["weights"], "flash_constants_bytes": footprint["constants"],
            "flash_code_bytes": footprint["code"], "flash_bytes": footprint["weights"] + footprint["constants"]
            + footprint["code"], "ram_activation_bytes": footprint["ram"], "stack_bytes": fields["stack"],
            "ram_bytes": ram, "firmware_flash_bytes": footprint["firmware_flash"], "equal_outputs": EQUALITY_IMAGES,
            "layers": layers, "deterministic": True, "estimated": True},
            "op_profile": summary({(layer["name"], layer["type"]): layer["instructions"] for layer in layers},
                                  "instructions", f"instructions counted on QEMU {self.core.machine} "
                                                  f"({self.core.name}, -O2)")}

    def describe(self):
        return {"runtime": self.name, "version": _qemu_version(), "provider": f"QEMU {self.core.machine}, -icount",
                "device": self.device}


def fast_path(core: Core, defines: tuple = ()) -> str:
    """Which inner loop model.c compiles to for this core: "mve", "dsp" or "portable" (from the
    compiler's own ACLE feature macros, as model.c selects it)."""
    macros = _run(["arm-none-eabi-gcc", *core.mcpu, "-mthumb", "-dM", "-E", "-"], Path.cwd(), "arm-none-eabi-gcc -dM")
    if "__ARM_FEATURE_MVE" in macros and "FMNIST_NO_MVE" not in defines:
        return "mve"
    if "__ARM_FEATURE_DSP 1" in macros and "FMNIST_NO_DSP" not in defines:
        return "dsp"
    return "portable"


def _qemu_version() -> str:
    if shutil.which("qemu-system-arm") is None:
        return "not installed"
    return subprocess.run(["qemu-system-arm", "--version"], capture_output=True, text=True).stdout.split("\n")[0]


from fmnist.runtimes import register_runtime  # noqa: E402

for _core in CORES:
    register_runtime(CortexM(_core))
