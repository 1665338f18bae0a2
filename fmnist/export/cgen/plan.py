"""From graph ops to C steps, and where each step's output lives.

Two things make the C model's RAM smaller than an interpreter's arena: a conv whose only reader
is a non-overlapping VALID max pool is fused with it (the conv's full output is never stored), and
one static buffer holds every activation at an offset planned from the tensors' lifetimes
(first-fit by decreasing size, as TFLM's greedy planner; buffers whose lives do not overlap
share bytes). RESHAPE is no step at all: its output is its input's bytes."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from fmnist.export.cgen.graph import Graph, Op, Tensor, UnsupportedGraph

ALIGN = 4  # word-aligned buffers, so a kernel may read 32 bits at a time


@dataclass
class Step:
    kind: str                  # conv, conv_pool, pool, fully_connected, mean, add, softmax
    ops: list                  # the graph ops it carries out (two for a fused conv + pool)
    inputs: list               # activation tensors read (after reshape aliasing)
    output: Tensor
    macs: int = 0
    scratch: int = 0           # bytes of working memory during the step (a conv's input patch)

    @property
    def name(self) -> str:
        return self.ops[-1].name

    @property
    def op_types(self) -> str:
        return "+".join(op.kind for op in self.ops)


@dataclass
class Plan:
    steps: list
    offsets: dict = field(default_factory=dict)   # tensor index (or scratch_key) -> offset in the arena
    arena_bytes: int = 0
    input: Tensor | None = None
    output: Tensor | None = None


def _macs(op: Op) -> int:
    out = op.outputs[0].shape
    if op.kind == "CONV_2D":
        return math.prod(out[1:]) * math.prod(op.inputs[1].shape[1:])
    if op.kind == "DEPTHWISE_CONV_2D":
        return math.prod(out[1:]) * op.inputs[1].shape[1] * op.inputs[1].shape[2]
    if op.kind == "FULLY_CONNECTED":
        return math.prod(op.inputs[1].shape)
    return 0


def scratch_key(position: int) -> str:
    return f"scratch {position}"


def _patch_bytes(op: Op) -> int:
    """A conv's patch, one output position's window of the input; depthwise reads in place."""
    return 0 if op.kind == "DEPTHWISE_CONV_2D" else math.prod(op.inputs[1].shape[1:])


def _fusable_pool(conv: Op, readers: list, graph_outputs: set) -> Op | None:
    """The max pool that alone reads this conv's output, VALID and non-overlapping, else None."""
    if len(readers) != 1 or conv.outputs[0].index in graph_outputs:
        return None
    pool = readers[0]
    o = pool.options
    if pool.kind != "MAX_POOL_2D" or o["padding"] != 1:
        return None
    if o["strideH"] < o["filterHeight"] or o["strideW"] < o["filterWidth"]:
        return None
    return pool


def build(graph: Graph) -> Plan:
    alias = {}   # reshape output -> the tensor holding its bytes
    readers = {}
    for op in graph.ops:
        for t in op.inputs[:1] if op.kind == "RESHAPE" else [t for t in op.inputs if t is not None and t.data is None]:
            readers.setdefault(t.index, []).append(op)
    graph_outputs = {t.index for t in graph.outputs}

    def root(t: Tensor) -> Tensor:
        while t.index in alias:
            t = alias[t.index]
        return t

    steps, fused = [], set()
    for op in graph.ops:
        if op.index in fused:
            continue
        if op.kind == "RESHAPE":
            alias[op.outputs[0].index] = op.inputs[0]
            continue
        inputs = [root(t) for t in op.inputs if t is not None and t.data is None]
        if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            pool = _fusable_pool(op, readers.get(op.outputs[0].index, []), graph_outputs)
            if pool is not None:
                fused.add(pool.index)
                steps.append(Step("conv_pool", [op, pool], inputs, pool.outputs[0], _macs(op), _patch_bytes(op)))
                continue
            steps.append(Step("conv", [op], inputs, op.outputs[0], _macs(op), _patch_bytes(op)))
        else:
            kind = {"MAX_POOL_2D": "pool", "AVERAGE_POOL_2D": "pool", "FULLY_CONNECTED": "fully_connected",
                    "MEAN": "mean", "ADD": "add", "SOFTMAX": "softmax"}[op.kind]
            steps.append(Step(kind, [op], inputs, op.outputs[0], _macs(op)))
    plan = Plan(steps, input=graph.inputs[0], output=graph.outputs[0])
    if root(graph.outputs[0]).index == graph.inputs[0].index:
        raise UnsupportedGraph("the graph's output is its input: nothing to compute")
    _place(plan, root(graph.outputs[0]))
    return plan


def _place(plan: Plan, output_root: Tensor) -> None:
    """Offsets for every step output but the graph's output (written to the caller's array), and
    for every step's scratch memory (alive during that step only)."""
    last_read = {}
    for position, step in enumerate(plan.steps):
        for t in step.inputs:
            last_read[t.index] = position
    lives = []  # (key, bytes, first step, last step)
    for position, step in enumerate(plan.steps):
        t = step.output
        if step.scratch:
            lives.append((scratch_key(position), step.scratch, position, position))
        if t.index == plan.output.index:
            continue
        end = len(plan.steps) if t.index == output_root.index else last_read.get(t.index, position)
        lives.append((t.index, t.size, position, end))
    placed = []
    for key, size, start, end in sorted(lives, key=lambda life: (-life[1], life[2])):
        offset = 0
        while True:
            clashes = [other_offset + other_size for other_size, other_start, other_end, other_offset in placed
                       if start <= other_end and other_start <= end
                       and offset < other_offset + other_size and other_offset < offset + size]
            if not clashes:
                break
            offset = -(-min(clashes) // ALIGN) * ALIGN
        placed.append((size, start, end, offset))
        plan.offsets[key] = offset
        plan.arena_bytes = max(plan.arena_bytes, offset + size)
