"""The bare-metal benchmark firmware the Cortex-M estimates build around a C export: a vector
table and reset handler, a two-region linker script, and a main that talks through semihosting.

It runs the model on the test images compiled in and prints each output (the equality check),
then counts one inference with SysTick, layer by layer (model.c's FMNIST_LAYER_DONE hook), and the
stack that inference used (the stack is painted before it and scanned after). Held as Python
strings so an installed package carries it."""
from __future__ import annotations

from pathlib import Path

import numpy as np

STACK_BYTES = 16 * 1024

# Included before model.c: records SysTick's current value after every layer (a load and a store).
HOOK = """#include <stdint.h>
extern volatile uint32_t fm_layer_ticks[];
#define FMNIST_LAYER_DONE(index) (fm_layer_ticks[index] = *(volatile uint32_t *)0xE000E018u)
"""

MAIN = r"""#include <stdint.h>
#include "model.h"
#include "images.h"

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SYST_COUNTFLAG 0x10000u
#define PAINT 0x5AA5C33Cu

extern uint32_t _sidata[], _sdata[], _edata[], _sbss[], _ebss[], _sstack[], _estack[];
volatile uint32_t fm_layer_ticks[FMNIST_MODEL_LAYERS];
static char line[160];
static int used;

static int semihost(int operation, const void *argument) {
  register int r0 __asm__("r0") = operation;
  register const void *r1 __asm__("r1") = argument;
  __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

static void put(const char *text) { while (*text && used < 140) line[used++] = *text++; }

static void put_uint(uint32_t value) {
  char digits[10];
  int n = 0;
  do { digits[n++] = (char)('0' + value % 10u); value /= 10u; } while (value);
  while (n) line[used++] = digits[--n];
}

static void put_hex(uint8_t value) {
  line[used++] = "0123456789abcdef"[value >> 4];
  line[used++] = "0123456789abcdef"[value & 15u];
}

static void flush(void) { line[used++] = '\n'; line[used] = 0; semihost(0x04, line); used = 0; }

static void leave(void) { semihost(0x18, (const void *)0x20026); for (;;) {} }

static uint32_t *stack_pointer(void) {
  uint32_t *sp;
  __asm__ volatile("mov %0, sp" : "=r"(sp));
  return sp;
}

static void __attribute__((noinline)) paint_stack(void) {
  uint32_t *word = _sstack, *below = stack_pointer() - 16;
  while (word < below) *word++ = PAINT;
}

int main(void) {
  static int8_t output[FMNIST_MODEL_OUTPUT_SIZE];
  uint32_t *sp, *word = _sstack, start, end, previous;
  int i, k;
  for (i = 0; i < FMNIST_IMAGES; ++i) {
    FMNIST_MODEL_INVOKE(fmnist_images[i], output);
    put("out ");
    for (k = 0; k < FMNIST_MODEL_OUTPUT_SIZE; ++k) put_hex((uint8_t)output[k]);
    flush();
  }
  SYST_RVR = 0xFFFFFFu;
  SYST_CVR = 0;
  SYST_CSR = 5u;  /* enabled, processor clock, no interrupt */
  paint_stack();
  sp = stack_pointer();
  (void)SYST_CSR;  /* clears COUNTFLAG */
  start = SYST_CVR;
  FMNIST_MODEL_INVOKE(fmnist_images[0], output);
  end = SYST_CVR;
  put("wrapped "); put_uint((SYST_CSR & SYST_COUNTFLAG) ? 1u : 0u); flush();
  put("ticks "); put_uint(start - end); flush();
  for (previous = start, k = 0; k < FMNIST_MODEL_LAYERS; previous = fm_layer_ticks[k], ++k) {
    put("layer "); put_uint(previous - fm_layer_ticks[k]); flush();
  }
  while (*word == PAINT) ++word;
  put("stack "); put_uint((uint32_t)((char *)sp - (char *)word)); flush();
  return 0;
}

void reset_handler(void) {
  uint32_t *source = _sidata, *target = _sdata;
#if defined(__ARM_FEATURE_MVE) || defined(__ARM_FP)
  *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;  /* CPACR: the FP and Helium registers on */
  __asm__ volatile("dsb\n isb" ::: "memory");
#endif
  while (target < _edata) *target++ = *source++;
  for (target = _sbss; target < _ebss;) *target++ = 0;
  main();
  leave();
}

static void fault_handler(void) { put("fault"); flush(); leave(); }

__attribute__((section(".vectors"), used)) void (*const vectors[16])(void) = {
  (void (*)(void))_estack, reset_handler, fault_handler, fault_handler, fault_handler, fault_handler,
  fault_handler, 0, 0, 0, 0, fault_handler, fault_handler, 0, fault_handler, fault_handler,
};
"""

LINKER = """MEMORY {{
  FLASH (rx) : ORIGIN = {flash:#x}, LENGTH = 512K
  RAM (rwx) : ORIGIN = {ram:#x}, LENGTH = 256K
}}
SECTIONS {{
  .text : {{ KEEP(*(.vectors)) *(.text*) *(.rodata*) . = ALIGN(4); }} > FLASH
  .ARM.exidx : {{ *(.ARM.exidx*) }} > FLASH
  _sidata = LOADADDR(.data);
  .data : {{ _sdata = .; *(.data*) . = ALIGN(4); _edata = .; }} > RAM AT > FLASH
  .bss (NOLOAD) : {{ _sbss = .; *(.bss*) *(COMMON) . = ALIGN(4); _ebss = .; }} > RAM
  .stack (NOLOAD) : {{ . = ALIGN(8); _sstack = .; . += {stack}; _estack = .; }} > RAM
}}
"""


def images_header(images: np.ndarray) -> str:
    """The quantized test images as a const array (flash)."""
    rows = ",\n".join("  {" + ",".join(str(int(v)) for v in image.ravel()) + "}" for image in images)
    return (f"#define FMNIST_IMAGES {len(images)}\n"
            f"static const int8_t fmnist_images[{len(images)}][{images[0].size}] = {{\n{rows}\n}};\n")


def write(folder: Path, images: np.ndarray, flash: int, ram: int) -> None:
    """main.c, hook.h, images.h and link.ld in `folder`, for memories at these origins."""
    folder = Path(folder)
    (folder / "main.c").write_text(MAIN)
    (folder / "hook.h").write_text(HOOK)
    (folder / "images.h").write_text(images_header(images))
    (folder / "link.ld").write_text(LINKER.format(flash=flash, ram=ram, stack=STACK_BYTES))
