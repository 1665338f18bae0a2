"""A user's ONNX file (from torch.onnx.export or any other exporter) as a source model (TF-free).

It must pass `onnx.checker` before anything else reads it. Its input contract is read from the
graph's input (layout) and the user's scaling, and the contract's nodes are added to the graph
itself (reshape, `(x * scale - mean) / std`, softmax for logits), so every artifact made from it
takes what the zoo's take. The adapted graph is the model folder's model file: the `onnx` format
is that graph, `onnx-int8` its static QDQ quantization, and there is no Keras model to train,
fine-tune or convert to TFLite.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from fmnist.user.contract import ContractError, InputContract, check_classes, layout_of, layout_shape
from fmnist.user.keras_source import ModelFileError

INPUT, OUTPUT = "fmnist_images", "fmnist_probabilities"


def checked(path: Path):
    """The ONNX model in `path`, after onnx.checker (full check); one line when it fails."""
    import onnx
    try:
        model = onnx.load(str(path))
    except Exception as e:  # protobuf's DecodeError and friends, for a file that is not ONNX
        raise ModelFileError(f"{path}: not an ONNX model ({type(e).__name__})") from None
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as e:  # onnx.checker.ValidationError, or shape inference's InferenceError
        raise ModelFileError(f"{path}: fails onnx.checker ({str(e).strip().splitlines()[0][:200]})") from None
    return model


def _dims(value_info) -> list:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
            for d in value_info.type.tensor_type.shape.dim]


def io(model, where: str) -> tuple[str, str, str]:
    """(input name, output name, layout), or one line on what does not fit the contract."""
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise ContractError(f"{where}: the model has {len(inputs)} inputs; a classifier takes one batch of images")
    if len(model.graph.output) != 1:
        raise ContractError(f"{where}: the model has {len(model.graph.output)} outputs; a classifier has one")
    dims = _dims(inputs[0])
    if dims and dims[0] == 1:
        raise ContractError(f"{where}: the batch dimension is fixed to 1; export it with a dynamic batch "
                            f"(torch.onnx.export(..., dynamic_axes={{'images': {{0: 'N'}}, 'logits': {{0: 'N'}}}}))")
    layout = layout_of(dims[1:], where)
    check_classes(_dims(model.graph.output[0])[-1], where)
    return inputs[0].name, model.graph.output[0].name, layout


def adapted(model, contract: InputContract, input_name: str, output_name: str):
    """The graph taking (N, 28, 28) in [0, 1] and returning probabilities: the contract's nodes
    around the user's graph, which is left as it was."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    graph, nodes, constants = model.graph, [], []
    s = contract.scaling
    last = INPUT

    def constant(name, value, dtype=np.float32):
        constants.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name
    steps = []
    if contract.layout != "NHW":
        steps.append(("Reshape", [constant("fmnist_shape", [-1, *layout_shape(contract.layout)], np.int64)]))
    if s.scale != 1.0:
        steps.append(("Mul", [constant("fmnist_scale", s.scale)]))
    if s.mean != 0.0:
        steps.append(("Sub", [constant("fmnist_mean", s.mean)]))
    if s.std != 1.0:
        steps.append(("Div", [constant("fmnist_std", s.std)]))
    for position, (op, args) in enumerate(steps):
        out = input_name if position == len(steps) - 1 else f"fmnist_step{position}"
        nodes.append(helper.make_node(op, [last, *args], [out], name=f"fmnist_contract_{op.lower()}"))
        last = out
    if not steps:  # nothing to add: the user's input is ours, renamed
        nodes.append(helper.make_node("Identity", [INPUT], [input_name], name="fmnist_contract_input"))
    tail = [helper.make_node("Softmax" if contract.logits else "Identity", [output_name], [OUTPUT],
                             name="fmnist_contract_output", **({"axis": -1} if contract.logits else {}))]
    new_graph = helper.make_graph(
        [*nodes, *graph.node, *tail], graph.name or "user_model",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", 28, 28])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["N", 10])],
        [*constants, *graph.initializer], value_info=graph.value_info)
    adapted_model = helper.make_model(new_graph, opset_imports=model.opset_import, ir_version=model.ir_version,
                                      producer_name=model.producer_name or "user")
    onnx.checker.check_model(adapted_model, full_check=True)
    return adapted_model


def run(model, images: np.ndarray, input_name: str | None = None) -> np.ndarray:
    """ONNX Runtime on the CPU, in batches (a plain session: what a user of the file gets)."""
    import onnxruntime as ort
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    name = input_name or session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: images[i:i + 1000]})[0] for i in range(0, len(images), 1000)])


def params_and_macs(model) -> tuple[int, int]:
    """Weights (every initializer element) and multiply-accumulates per image of the convolutions
    and matrix products, from ONNX's shape inference."""
    import onnx
    from onnx import numpy_helper
    params = sum(int(np.prod(i.dims)) for i in model.graph.initializer if not i.name.startswith("fmnist_"))
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {v.name: _dims(v) for v in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]}
    weights = {i.name: numpy_helper.to_array(i).shape for i in model.graph.initializer}
    macs = 0
    for node in model.graph.node:
        out = shapes.get(node.output[0], [])[1:]
        if not out or any(not isinstance(d, int) for d in out):
            continue
        if node.op_type == "Conv" and node.input[1] in weights:
            _, c_per_group, *kernel = weights[node.input[1]]
            macs += int(np.prod(out)) * c_per_group * int(np.prod(kernel))
        elif node.op_type in ("Gemm", "MatMul") and node.input[1] in weights:
            macs += int(np.prod(out)) * weights[node.input[1]][0]
    return params, macs


class OnnxSource:
    """The source model of an ONNX user model, where a Keras model is elsewhere: what the ONNX
    formats convert from and what export validation runs."""
    how = "the user's ONNX file, with the input contract's nodes added (fmnist.user.onnx_source)"

    def __init__(self, model):
        self.model = model

    @classmethod
    def load(cls, path: Path) -> OnnxSource:
        import onnx
        return cls(onnx.load(str(path)))

    def predict(self, images, batch_size=None, verbose=0) -> np.ndarray:
        return run(self.model, np.asarray(images, dtype=np.float32))


MODEL_FILE = "model.onnx"  # the adapted graph: an ONNX user model's model file


def _loss(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(probabilities[np.arange(len(labels)), labels], 1e-12, None))))


def imported(folder: Path, model, record: dict, ds, seed: int) -> Path:
    """The model folder of an ONNX user model: its adapted graph, test probabilities and record."""
    import onnx

    import fmnist
    from fmnist import data, environment, storage
    from fmnist.atomic import atomic_dir
    from fmnist.user import contract_from
    input_name, output_name, _ = io(model, record["origin"]["reference"])
    graph = adapted(model, contract_from(record["origin"]["input_contract"]), input_name, output_name)
    test = run(graph, data.normalise(ds.test_images))
    train = run(graph, data.normalise(ds.train_images))
    params, macs = params_and_macs(graph)
    record = {**record, "model_file": MODEL_FILE, "params": params, "macs": macs,
              "train_accuracy": float(np.mean(train.argmax(1) == ds.train_labels)),
              "train_loss": _loss(train, ds.train_labels),
              "test_accuracy": float(np.mean(test.argmax(1) == ds.test_labels)), "test_loss": _loss(test, ds.test_labels),
              "environment": environment.describe(seed), "data_sha256": ds.sha256, "fmnist_version": fmnist.__version__}
    with atomic_dir(folder) as tmp:
        onnx.save(graph, str(tmp / MODEL_FILE))
        np.save(tmp / storage.PROBABILITIES_FILE, test)
        storage.seal_model_folder(tmp, record)
    return folder
