"""C text for a plan: model.h (the API and the I/O quantization) and model.c (kernels, const
weights and layer constants, the static arena, and the invoke function calling one kernel a step).

A firmware may define FMNIST_LAYER_DONE(index) before compiling model.c to run code after each
step (the Cortex-M estimate counts instructions per layer with it); by default it is empty."""
from __future__ import annotations

import re

import numpy as np

from fmnist.export.cgen import arith
from fmnist.export.cgen.graph import UnsupportedGraph
from fmnist.export.cgen.kernels import KERNELS
from fmnist.export.cgen.plan import Plan, Step, scratch_key

PER_LINE = 24


def identifier(model: str) -> str:
    """A C identifier from a model name: micro_cnn -> micro_cnn, my-net.v2 -> my_net_v2."""
    name = re.sub(r"\W", "_", model.lower())
    return name if re.match(r"[a-z_]", name) else f"m_{name}"


def c_float(value: float) -> str:
    return f"{float(np.float32(value))!r}f"


def c_array(ctype: str, name: str, values) -> str:
    flat = [int(v) for v in np.asarray(values).ravel()]
    lines = [", ".join(map(str, flat[i:i + PER_LINE])) for i in range(0, len(flat), PER_LINE)]
    body = ",\n  ".join(lines)
    return f"static const {ctype} {name}[{len(flat)}] = {{\n  {body}\n}};\n"


class Emitter:
    """Collects each step's constants (weights in flash, requantization constants) and its call."""

    def __init__(self, plan: Plan):
        self.plan = plan
        self.constants: list[str] = []
        self.weight_bytes = 0

    def array(self, ctype: str, name: str, values, weights: bool = False) -> str:
        self.constants.append(c_array(ctype, name, values))
        if weights:
            self.weight_bytes += np.asarray(values).size * {"int8_t": 1, "int32_t": 4}[ctype]
        return name

    def buffer(self, tensor) -> str:
        if tensor.index == self.plan.input.index:
            return "input"
        if tensor.index == self.plan.output.index:
            return "output"
        return f"(arena + {self.plan.offsets[tensor.index]})"

    def conv_struct(self, k: int, op) -> str:
        inp, weights, bias = op.inputs[0], op.inputs[1], op.inputs[2] if len(op.inputs) > 2 else None
        out, o = op.outputs[0], op.options
        depthwise = op.kind == "DEPTHWISE_CONV_2D"
        _, ih, iw, ic = inp.shape
        _, oh, ow, oc = out.shape
        kh, kw = weights.shape[1], weights.shape[2]
        sh, sw, dh, dw = o["strideH"], o["strideW"], o["dilationHFactor"], o["dilationWFactor"]
        same = o["padding"] == 0
        pad_h = arith.same_padding(ih, kh, sh, dh, oh) if same else 0
        pad_w = arith.same_padding(iw, kw, sw, dw, ow) if same else 0
        multipliers, shifts = arith.channel_multipliers(inp.scale, weights.scales, out.scale, oc)
        low, high = arith.activation_range(o["fusedActivationFunction"], out.scale, out.zero_point)
        w = self.array("int8_t", f"l{k}_weights", weights.data, weights=True)
        b = self.array("int32_t", f"l{k}_bias", bias.data, weights=True) if bias is not None else "0"
        m = self.array("int32_t", f"l{k}_multiplier", multipliers)
        s = self.array("int32_t", f"l{k}_shift", shifts)
        sums = "0" if depthwise else self.array("int32_t", f"l{k}_weight_sums",
                                                weights.data.reshape(oc, -1).astype(np.int64).sum(axis=1))
        self.constants.append(
            f"static const fm_conv_t l{k}_conv = {{{ih}, {iw}, {ic}, {oh}, {ow}, {oc}, {kh}, {kw}, {sh}, {sw}, "
            f"{dh}, {dw}, {pad_h}, {pad_w}, {int(depthwise)}, {oc // ic if depthwise else 1}, {-inp.zero_point}, "
            f"{out.zero_point}, {low}, {high}, {w}, {b}, {m}, {s}, {sums}}};\n")
        return f"&l{k}_conv"

    def step(self, k: int, step: Step) -> str:
        op, out = step.ops[0], self.buffer(step.output)
        src = [self.buffer(t) for t in step.inputs]
        patch = f"(arena + {self.plan.offsets[scratch_key(k)]})" if step.scratch else "0"
        if step.kind == "conv":
            return f"fm_conv({self.conv_struct(k, op)}, {src[0]}, {out}, {patch});"
        if step.kind == "conv_pool":
            conv = self.conv_struct(k, op)
            pool = step.ops[1]
            o, pout = pool.options, pool.outputs[0]
            low, high = arith.activation_range(o["fusedActivationFunction"], pout.scale, pout.zero_point)
            self.constants.append(f"static const fm_pool_after_t l{k}_pool = {{{pout.shape[1]}, {pout.shape[2]}, "
                                  f"{o['filterHeight']}, {o['filterWidth']}, {o['strideH']}, {o['strideW']}, "
                                  f"{low}, {high}}};\n")
            return f"fm_conv_max_pool({conv}, &l{k}_pool, {src[0]}, {out}, {patch});"
        if step.kind == "pool":
            return self.pool(k, op, src[0], out)
        if step.kind == "fully_connected":
            return self.fully_connected(k, op, src[0], out)
        if step.kind == "mean":
            return self.mean(k, op, src[0], out)
        if step.kind == "add":
            return self.add(k, op, src, out)
        return self.softmax(op, src[0], out)

    def pool(self, k, op, src, out):
        inp, res, o = op.inputs[0], op.outputs[0], op.options
        _, ih, iw, c = inp.shape
        _, oh, ow, _ = res.shape
        fh, fw, sh, sw = o["filterHeight"], o["filterWidth"], o["strideH"], o["strideW"]
        same = o["padding"] == 0
        pad_h = arith.same_padding(ih, fh, sh, 1, oh) if same else 0
        pad_w = arith.same_padding(iw, fw, sw, 1, ow) if same else 0
        low, high = arith.activation_range(o["fusedActivationFunction"], res.scale, res.zero_point)
        self.constants.append(f"static const fm_pool_t l{k}_pool = {{{ih}, {iw}, {c}, {oh}, {ow}, {fh}, {fw}, "
                              f"{sh}, {sw}, {pad_h}, {pad_w}, {low}, {high}}};\n")
        return f"fm_pool(&l{k}_pool, {int(op.kind == 'AVERAGE_POOL_2D')}, {src}, {out});"

    def fully_connected(self, k, op, src, out):
        inp, weights, res = op.inputs[0], op.inputs[1], op.outputs[0]
        bias = op.inputs[2] if len(op.inputs) > 2 else None
        out_n, in_n = weights.shape
        if inp.size != in_n:
            raise UnsupportedGraph(f"FULLY_CONNECTED {op.name!r} has a batch of {inp.size // in_n}: batch 1 only")
        if np.any(weights.zero_points):
            raise UnsupportedGraph(f"FULLY_CONNECTED {op.name!r} has asymmetric int8 weights")
        w = weights.data.astype(np.int64)
        folded = (bias.data.astype(np.int64) if bias is not None else 0) - inp.zero_point * w.sum(axis=1)
        folded = ((folded + (1 << 31)) % (1 << 32)) - (1 << 31)  # int32 arithmetic wraps alike
        multipliers, shifts = arith.channel_multipliers(inp.scale, weights.scales, res.scale, out_n)
        low, high = arith.activation_range(op.options["fusedActivationFunction"], res.scale, res.zero_point)
        names = (self.array("int8_t", f"l{k}_weights", weights.data, weights=True),
                 self.array("int32_t", f"l{k}_bias", folded, weights=True),
                 self.array("int32_t", f"l{k}_multiplier", multipliers),
                 self.array("int32_t", f"l{k}_shift", shifts))
        self.constants.append(f"static const fm_fc_t l{k}_fc = {{{in_n}, {out_n}, {res.zero_point}, {low}, {high}, "
                              f"{', '.join(names)}}};\n")
        return f"fm_fully_connected(&l{k}_fc, {src}, {out});"

    def mean(self, k, op, src, out):
        inp, axes, res = op.inputs[0], op.inputs[1], op.outputs[0]
        if len(inp.shape) != 4 or sorted(int(a) for a in axes.data.ravel()) != [1, 2]:
            raise UnsupportedGraph(f"MEAN {op.name!r} reduces axes {axes.data.tolist()}: the C export takes 1 and 2")
        _, h, w, c = inp.shape
        multiplier, shift = arith.mean_multiplier(inp.scale, res.scale, h * w)
        self.constants.append(f"static const fm_mean_t l{k}_mean = {{{h}, {w}, {c}, {inp.zero_point}, "
                              f"{res.zero_point}, {multiplier}, {shift}}};\n")
        return f"fm_mean(&l{k}_mean, {src}, {out});"

    def add(self, k, op, src, out):
        a, b, res = op.inputs[0], op.inputs[1], op.outputs[0]
        if a.shape != b.shape or a.data is not None or b.data is not None:
            raise UnsupportedGraph(f"ADD {op.name!r} broadcasts or adds a constant: the C export adds two "
                                   "tensors of one shape")
        left_shift = 20
        twice_max = 2 * float(max(np.float32(a.scale), np.float32(b.scale)))
        m1, s1 = arith.quantize_multiplier(float(np.float32(a.scale)) / twice_max)
        m2, s2 = arith.quantize_multiplier(float(np.float32(b.scale)) / twice_max)
        mo, so = arith.quantize_multiplier(twice_max / ((1 << left_shift) * float(np.float32(res.scale))))
        low, high = arith.activation_range(op.options["fusedActivationFunction"], res.scale, res.zero_point)
        self.constants.append(f"static const fm_add_t l{k}_add = {{{a.size}, {left_shift}, {-a.zero_point}, "
                              f"{-b.zero_point}, {res.zero_point}, {m1}, {m2}, {mo}, {s1}, {s2}, {so}, {low}, "
                              f"{high}}};\n")
        return f"fm_add(&l{k}_add, {src[0]}, {src[1]}, {out});"

    def softmax(self, op, src, out):
        inp, res = op.inputs[0], op.outputs[0]
        if res.zero_point != -128 or not np.isclose(res.scale, 1 / 256):
            raise UnsupportedGraph(f"SOFTMAX {op.name!r} output is not int8 with scale 1/256, zero point -128")
        multiplier, left_shift, diff_min = arith.softmax_params(op.options.get("beta", 1.0), inp.scale)
        return f"fm_softmax({src}, {out}, {inp.size}, {multiplier}, {left_shift}, {diff_min});"


def sources(plan: Plan, model: str, class_names) -> tuple[dict, dict]:
    """({file name: text}, facts: arena bytes, weight bytes, the steps with their names and MACs)."""
    prefix = identifier(model)
    upper = prefix.upper()
    emitter = Emitter(plan)
    calls = [emitter.step(k, step) for k, step in enumerate(plan.steps)]
    inp, out = plan.input, plan.output
    output_root = plan.steps[-1].output
    copy = "" if output_root.index == out.index else \
        f"  memcpy(output, {emitter.buffer(output_root)}, {out.size});\n"
    body = "".join(f"  {call}\n  FMNIST_LAYER_DONE({k});\n" for k, call in enumerate(calls))
    arena = plan.arena_bytes
    arena_text = "" if not plan.offsets else f"""
/* every activation, at offsets planned from the tensors' lifetimes (word-aligned by the union) */
static union {{ int32_t words[{-(-arena // 4)}]; int8_t bytes[{arena}]; }} activations;
#define arena (activations.bytes)
"""
    header = f"""/* {model}: int8 inference in plain C99, generated by fmnist-export --format c from the
   batch-1 int8 TFLite graph (model.tflite of the tflm export). Bit-identical to TFLM. Do not edit. */
#ifndef FMNIST_C_{upper}_H
#define FMNIST_C_{upper}_H

#include <stdint.h>

/* input: a {' x '.join(map(str, inp.shape[1:]))} image, q = round(pixel / 255 / SCALE) + ZERO_POINT */
#define {upper}_INPUT_SIZE {inp.size}
#define {upper}_INPUT_SCALE {c_float(inp.scale)}
#define {upper}_INPUT_ZERO_POINT {inp.zero_point}
/* output: class scores, probability = (q - ZERO_POINT) * SCALE */
#define {upper}_OUTPUT_SIZE {out.size}
#define {upper}_OUTPUT_SCALE {c_float(out.scale)}
#define {upper}_OUTPUT_ZERO_POINT {out.zero_point}
#define {upper}_ARENA_BYTES {arena}
#define {upper}_LAYERS {len(calls)}

extern const char *const {prefix}_class_names[{out.size}];

/* One image in, its class scores out; returns 0. Not reentrant: one static activation buffer. */
int {prefix}_invoke(const int8_t input[{inp.size}], int8_t output[{out.size}]);

/* the same under fixed names, for a driver built around one model */
#define FMNIST_MODEL_INVOKE {prefix}_invoke
#define FMNIST_MODEL_INPUT_SIZE {upper}_INPUT_SIZE
#define FMNIST_MODEL_OUTPUT_SIZE {upper}_OUTPUT_SIZE
#define FMNIST_MODEL_INPUT_SCALE {upper}_INPUT_SCALE
#define FMNIST_MODEL_INPUT_ZERO_POINT {upper}_INPUT_ZERO_POINT
#define FMNIST_MODEL_OUTPUT_SCALE {upper}_OUTPUT_SCALE
#define FMNIST_MODEL_OUTPUT_ZERO_POINT {upper}_OUTPUT_ZERO_POINT
#define FMNIST_MODEL_LAYERS {upper}_LAYERS

#endif
"""
    names = ", ".join(f'"{name}"' for name in class_names)
    source = f"""/* {model}: generated by fmnist-export --format c; do not edit. See model.h. */
#include <stdint.h>
#include <string.h>
#include "model.h"

#ifndef FMNIST_LAYER_DONE
#define FMNIST_LAYER_DONE(index)
#endif
{KERNELS}
{"".join(emitter.constants)}
const char *const {prefix}_class_names[{out.size}] = {{{names}}};
{arena_text}
int {prefix}_invoke(const int8_t input[{inp.size}], int8_t output[{out.size}]) {{
{body}{copy}  return 0;
}}
"""
    layers = [{"index": k, "name": step.name, "type": step.op_types, "macs": step.macs}
              for k, step in enumerate(plan.steps)]
    facts = {"prefix": prefix, "arena_bytes": plan.arena_bytes, "weight_bytes": emitter.weight_bytes,
             "layers": layers}
    return {"model.h": header, "model.c": source}, facts
