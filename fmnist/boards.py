"""Microcontroller boards a model is checked against: flash and RAM from their vendors' datasheets
(README.md cites them), and the rule for "fits"."""
from __future__ import annotations

from dataclasses import dataclass

# What a firmware needs besides the model. Our reserve, stated, not measured: TFLM's interpreter
# and the kernels of a small model plus a simple application take tens of KiB of flash; stack,
# heap, drivers and I/O buffers take part of the RAM.
FLASH_RESERVE = 96 * 1024
RAM_FREE_FOR_ARENA = 0.75


@dataclass(frozen=True)
class Board:
    name: str
    mcu: str
    flash_bytes: int
    ram_bytes: int
    source: str        # the datasheet the figures come from

    def fits(self, flash: int, arena: int) -> bool:
        return flash + FLASH_RESERVE <= self.flash_bytes and arena <= RAM_FREE_FOR_ARENA * self.ram_bytes

    def fits_firmware(self, flash: int, ram: int) -> bool:
        """A measured firmware (the C export's, built and counted on an emulated core: its code,
        weights and constants, no reserve added) in the flash; its RAM (activations and stack
        high-water mark) in the share of RAM an arena may take."""
        return flash <= self.flash_bytes and ram <= RAM_FREE_FOR_ARENA * self.ram_bytes


KIB = 1024
BOARDS = (
    Board("Arduino Zero", "ATSAMD21G18 (Cortex-M0+)", 256 * KIB, 32 * KIB, "Microchip SAM D21 family datasheet"),
    Board("Raspberry Pi Pico", "RP2040 (2x Cortex-M0+)", 2048 * KIB, 264 * KIB,
          "Raspberry Pi Pico datasheet (2 MB QSPI flash, 264 KB SRAM)"),
    Board("nRF52840 DK", "nRF52840 (Cortex-M4F)", 1024 * KIB, 256 * KIB, "Nordic nRF52840 product specification"),
    Board("STM32F746G-DISCO", "STM32F746NG (Cortex-M7)", 1024 * KIB, 320 * KIB, "ST STM32F745xx/STM32F746xx datasheet"),
    Board("ESP32-DevKitC", "ESP32-WROOM-32 (Xtensa LX6)", 4096 * KIB, 520 * KIB,
          "Espressif ESP32 and ESP32-WROOM-32 datasheets (4 MB flash on the module, 520 KB SRAM)"),
)


@dataclass(frozen=True)
class NPUBoard:
    """An SoC or board with an Arm Ethos-U NPU: the network's SRAM must fit the SRAM the NPU can
    use (RAM_FREE_FOR_ARENA of it), its weights the memory they are read from (flash or DRAM)."""
    name: str
    soc: str
    accelerator: str   # the ethos-u runtime (Vela configuration) whose estimates it is judged by
    sram_bytes: int
    weights_bytes: int  # flash (MRAM) or DRAM the weights and the firmware live in
    source: str

    def fits(self, sram: int, weights: int) -> bool:
        return weights + FLASH_RESERVE <= self.weights_bytes and sram <= RAM_FREE_FOR_ARENA * self.sram_bytes


MIB = 1024 * KIB
NPU_BOARDS = (
    NPUBoard("Alif Ensemble E3", "AE302F80F55D5 (Cortex-M55 + Ethos-U55-128 and -256)", "ethos-u55-128",
             13824 * KIB, 5632 * KIB, "Alif Ensemble E3 datasheet (up to 13.5 MB SRAM, 5.5 MB MRAM)"),
    NPUBoard("NXP i.MX 93 EVK", "i.MX 93 (2x Cortex-A55 + Cortex-M33 + Ethos-U65-256)", "ethos-u65-256",
             640 * KIB, 2048 * MIB, "NXP i.MX 93 reference manual (640 KB on-chip RAM) and EVK board (2 GB LPDDR4X)"),
)
