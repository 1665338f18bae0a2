"""The int8 TFLite graph as plain Python objects: tensors with their quantization and constant
data, ops with their options. Read with the flatbuffer schema LiteRT ships (no TensorFlow)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SUPPORTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "AVERAGE_POOL_2D", "MEAN", "ADD",
             "RESHAPE", "SOFTMAX")
DTYPES = {"INT8": np.int8, "INT32": np.int32, "INT64": np.int64, "FLOAT32": np.float32, "UINT8": np.uint8,
          "INT16": np.int16}


class UnsupportedGraph(ValueError):
    """The graph holds something the C generator has no exact kernel for."""


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple
    dtype: str                     # schema name: INT8, INT32, ...
    scales: np.ndarray             # float32, one per tensor or per channel
    zero_points: np.ndarray
    data: np.ndarray | None = None  # constant contents, or None for an activation

    @property
    def scale(self) -> float:
        return float(self.scales[0]) if len(self.scales) else 0.0

    @property
    def zero_point(self) -> int:
        return int(self.zero_points[0]) if len(self.zero_points) else 0

    @property
    def size(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1


@dataclass
class Op:
    index: int
    kind: str
    inputs: list           # Tensor or None (an absent optional input)
    outputs: list
    options: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The layer's name as the converter kept it (the output tensor's, up to the first ';')."""
        return self.outputs[0].name.split(";")[0]


@dataclass
class Graph:
    tensors: list
    ops: list
    inputs: list
    outputs: list


def _names(enum) -> dict:
    return {value: key for key, value in vars(enum).items() if not key.startswith("_")}


def parse(data: bytes) -> Graph:
    """One subgraph, int8 activations; refuses anything else in one line."""
    from ai_edge_litert import schema_py_generated as schema
    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    if len(model.subgraphs) != 1:
        raise UnsupportedGraph(f"the graph has {len(model.subgraphs)} subgraphs, the C export takes one")
    op_names, type_names = _names(schema.BuiltinOperator), _names(schema.TensorType)
    subgraph = model.subgraphs[0]
    tensors = []
    for index, t in enumerate(subgraph.tensors):
        q = t.quantization
        scales = np.asarray(q.scale if q is not None and q.scale is not None else [], np.float32)
        zero_points = np.asarray(q.zeroPoint if q is not None and q.zeroPoint is not None else [], np.int64)
        dtype = type_names[t.type]
        buffer = model.buffers[t.buffer].data if t.buffer else None
        shape = tuple(int(n) for n in (t.shape if t.shape is not None else []))
        contents = (np.frombuffer(bytes(bytearray(buffer)), DTYPES[dtype]).reshape(shape)
                    if buffer is not None and len(buffer) else None)
        tensors.append(Tensor(index, t.name.decode() if isinstance(t.name, bytes) else t.name, shape, dtype, scales,
                              zero_points, contents))
    ops = []
    for index, op in enumerate(subgraph.operators):
        code = model.operatorCodes[op.opcodeIndex]
        kind = op_names.get(max(code.builtinCode, code.deprecatedBuiltinCode), f"builtin {code.builtinCode}")
        if kind not in SUPPORTED:
            raise UnsupportedGraph(f"op {kind} has no kernel in the C export (it takes {', '.join(SUPPORTED)})")
        options = vars(op.builtinOptions) if op.builtinOptions is not None else {}
        ops.append(Op(index, kind, [tensors[i] if i >= 0 else None for i in op.inputs],
                      [tensors[i] for i in op.outputs], options))
    graph = Graph(tensors, ops, [tensors[i] for i in subgraph.inputs], [tensors[i] for i in subgraph.outputs])
    for t in graph.inputs + graph.outputs + [o for op in ops for o in op.outputs]:
        if t.dtype != "INT8":
            raise UnsupportedGraph(f"tensor {t.name!r} is {t.dtype}: the C export takes int8 activations only")
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise UnsupportedGraph("the C export takes one input and one output")
    return graph
