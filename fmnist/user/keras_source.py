"""A user's Keras model (a .keras or .h5 file, saved by Keras 3 or by tf_keras, or a factory's
model) as a tf_keras model of built-in layers, adapted to the input contract.

Safe by default: a file's configuration is read as JSON and checked *before* anything is loaded. A
layer that carries code (a Lambda, or a class that is not a built-in Keras layer) is refused in one
line naming it, unless the user passes --trust-model-code. Keras 3 models are rebuilt in tf_keras
(the stack's one model API, which tfmot and the converters need) from their configuration, layer by
layer, and given the same weights.
"""
from __future__ import annotations

import inspect
import json
import zipfile
from pathlib import Path

from fmnist.user.contract import ContractError, InputContract, check_classes, layout_of

CODE_LAYERS = ("Lambda", "TFOpLambda", "SlicingOpLambda")
NESTED = ("Functional", "Sequential", "Model")
NESTED_OBJECTS = ("initializer", "regularizer", "constraint")


class ModelFileError(ContractError):
    """Not a model file, or one fmnist will not load: one line."""


def read_config(path: Path) -> tuple[dict, int]:
    """(the model's configuration as saved, the major Keras version that saved it), reading the
    file as data only: a .keras zip's config.json, an .h5 file's model_config attribute."""
    if path.suffix == ".keras":
        try:
            with zipfile.ZipFile(path) as archive:
                config = json.loads(archive.read("config.json"))
                metadata = json.loads(archive.read("metadata.json")) if "metadata.json" in archive.namelist() else {}
        except (zipfile.BadZipFile, KeyError, ValueError, OSError) as e:
            raise ModelFileError(f"{path}: not a Keras model file (a .keras file is a zip archive holding "
                                 f"config.json; {type(e).__name__})") from None
        version = metadata.get("keras_version", "2")
    else:
        import h5py
        try:
            with h5py.File(path, "r") as f:
                text = f.attrs.get("model_config")
                version = f.attrs.get("keras_version", "2")
        except OSError:
            raise ModelFileError(f"{path}: not a Keras model file (not an HDF5 file)") from None
        if text is None:
            raise ModelFileError(f"{path}: holds weights only, no model configuration; save the whole model "
                                 f"(model.save)")
        config = json.loads(text)
        version = version.decode() if isinstance(version, bytes) else str(version)
    return config, int(str(version).split(".")[0])


def _layers(config: dict) -> list[dict]:
    inner = config.get("config", config)
    return inner.get("layers", []) if isinstance(inner, dict) else []


def refuse_code(config: dict, where: str, trusted: bool) -> None:
    """One line naming the first layer that carries code or is not a built-in layer (or that nests
    a model), unless `trusted` (code layers only: a nested model is never rebuilt)."""
    import tf_keras
    for layer in _layers(config):
        cls, name = layer.get("class_name"), layer.get("config", {}).get("name", "?")
        if cls in NESTED:
            raise ModelFileError(f"{where}: layer {name!r} is a nested model ({cls}); save the model flattened "
                                 f"(one Sequential or functional model of layers)")
        if trusted:
            continue
        if cls in CODE_LAYERS:
            raise ModelFileError(f"{where}: layer {name!r} is a {cls}: it carries Python code, which fmnist does "
                                 f"not run; pass --trust-model-code if you trust this file")
        module = layer.get("module") or "keras.layers"
        if not hasattr(tf_keras.layers, cls or "") or not module.startswith("keras") or layer.get("registered_name") \
                not in (None, cls):
            raise ModelFileError(f"{where}: layer {name!r} ({cls}) is not a built-in Keras layer: its code would run "
                                 f"when loaded; pass --trust-model-code if you trust this file")


def _history(value) -> list[str]:
    """Names of the layers whose outputs a Keras 3 inbound node reads (nested lists of tensors)."""
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        return [value["config"]["keras_history"][0]]
    if isinstance(value, (list, tuple)):
        return [name for item in value for name in _history(item)]
    return []


def graph(config: dict, where: str) -> tuple[list[tuple[str, dict, list[str]]], str, str]:
    """(nodes as (class, layer config, input layer names), input layer name, output layer name),
    from a Sequential or functional configuration in either Keras dialect."""
    inner = config.get("config", config)
    layers, nodes = _layers(config), []
    functional = any(layer.get("inbound_nodes") for layer in layers)
    for position, layer in enumerate(layers):
        cls, cfg = layer["class_name"], dict(layer["config"])
        name = cfg.setdefault("name", layer.get("name") or f"{cls.lower()}_{position}")
        inbound = layer.get("inbound_nodes") or []
        if len(inbound) > 1:
            raise ModelFileError(f"{where}: layer {name!r} is applied {len(inbound)} times (shared layers are not "
                                 f"supported)")
        if functional:
            node = inbound[0] if inbound else []
            inputs = _history(node.get("args", [])) if isinstance(node, dict) else [i[0] for i in node]
        else:
            inputs = [nodes[-1][1]["name"]] if nodes else []
        if not nodes and cls != "InputLayer":  # a Sequential whose input shape is on its first layer
            shape = cfg.pop("batch_input_shape", None) or cfg.pop("batch_shape", None) \
                or inner.get("build_input_shape")
            if shape is None:
                raise ModelFileError(f"{where}: the model has no input shape (build it or give it an Input)")
            nodes.append(("InputLayer", {"name": "input", "batch_input_shape": shape}, []))
            inputs = ["input"]
        nodes.append((cls, cfg, inputs))
    inputs = [n for n in nodes if n[0] == "InputLayer"]
    if len(inputs) != 1:
        raise ContractError(f"{where}: the model has {len(inputs)} inputs; a classifier takes one batch of images")
    outputs = inner.get("output_layers") if functional else None
    if outputs is not None and isinstance(outputs[0], list) and len(outputs) > 1:
        raise ContractError(f"{where}: the model has {len(outputs)} outputs; a classifier has one")
    output = (outputs[0] if isinstance(outputs[0], list) else outputs)[0] if outputs else nodes[-1][1]["name"]
    return nodes, inputs[0][1]["name"], output


def _arguments(keras_class) -> set:
    return set(inspect.signature(keras_class.__init__).parameters)


def _nested(key: str, value):
    """An initializer, regularizer or constraint as tf_keras takes it (Keras 3 adds arguments tf_keras
    does not know); None when tf_keras has no such class (then its default is used)."""
    import tf_keras
    if not isinstance(value, dict):
        return value
    module = getattr(tf_keras, key.rsplit("_", 1)[1] + "s")
    keras_class = getattr(module, value.get("class_name", ""), None)
    if keras_class is None:
        return None
    return {"class_name": value["class_name"],
            "config": {k: v for k, v in value.get("config", {}).items() if k in _arguments(keras_class)}}


def _cleaned(cls: str, config: dict) -> dict:
    """A layer's configuration as tf_keras takes it: its own arguments only, dtype a name, the
    input shape in tf_keras' spelling."""
    import tf_keras
    allowed = _arguments(getattr(tf_keras.layers, cls)) | {"name", "trainable", "dtype"}
    if cls in CODE_LAYERS:  # a trusted Lambda: its serialised function, kept whole
        allowed |= set(config)
    if cls == "InputLayer":
        config = {**config, "batch_input_shape": config.get("batch_input_shape") or config.get("batch_shape")}
    cleaned = {k: _nested(k, v) if k.endswith(NESTED_OBJECTS) else v for k, v in config.items() if k in allowed}
    cleaned = {k: v for k, v in cleaned.items() if v is not None or not k.endswith(NESTED_OBJECTS)}
    if isinstance(cleaned.get("dtype"), dict):  # Keras 3's DTypePolicy
        cleaned["dtype"] = cleaned["dtype"].get("config", {}).get("name", "float32")
    return cleaned


def _node(cls: str, config: dict, inputs: list[str]) -> dict:
    return {"class_name": cls, "config": config, "name": config["name"],
            "inbound_nodes": [[[name, 0, 0, {}] for name in inputs]] if inputs else []}


def adapted(nodes, input_name: str, output_name: str, contract: InputContract, name: str) -> str:
    """The tf_keras functional architecture (JSON) that takes (N, 28, 28) in [0, 1]: the model's
    layers after the contract's reshape and scaling, followed by a softmax if it returns logits."""
    layers = [_node("InputLayer", {"name": "images", "batch_input_shape": [None, 28, 28], "dtype": "float32"}, [])]
    last = "images"
    if contract.layout != "NHW":
        shape = [1, 28, 28] if contract.layout == "NCHW" else [28, 28, 1]
        layers.append(_node("Reshape", {"name": "contract_reshape", "target_shape": shape}, [last]))
        last = "contract_reshape"
    if not contract.scaling.identity:
        s = contract.scaling
        layers.append(_node("Rescaling", {"name": "contract_scaling", "scale": s.scale / s.std,
                                          "offset": -s.mean / s.std}, [last]))
        last = "contract_scaling"
    for cls, cfg, inputs in nodes:
        if cfg["name"] != input_name:
            layers.append(_node(cls, _cleaned(cls, cfg), [last if i == input_name else i for i in inputs]))
    output = output_name
    if contract.logits:
        layers.append(_node("Softmax", {"name": "contract_softmax"}, [output_name]))
        output = "contract_softmax"
    config = {"name": name, "layers": layers, "input_layers": [["images", 0, 0]], "output_layers": [[output, 0, 0]]}
    return json.dumps({"class_name": "Functional", "config": config})


def from_architecture(architecture: str, origin: dict | None = None):
    """The tf_keras model of an adapted architecture; code-carrying layers are deserialised only when
    the user trusted the model's code (checked again here: the file may be edited since)."""
    import tf_keras
    config = json.loads(architecture)
    trusted = bool(origin and origin.get("trusted_code"))
    refuse_code(config, (origin or {}).get("reference", "architecture"), trusted)
    from tf_keras.src.saving.serialization_lib import SafeModeScope
    with SafeModeScope(safe_mode=not trusted):  # no public switch scoped to one call in tf_keras 2.21
        return tf_keras.models.model_from_json(architecture)


def _source_layers(model) -> dict:
    return {layer.name: layer.get_weights() for layer in model.layers}


def load_weights_of(path: Path, major: int, trusted: bool) -> dict:
    """Each layer's weights, by layer name, loaded by the Keras that saved the file (the
    configuration was checked first; `safe_mode` refuses code on its own as well)."""
    try:
        if major >= 3:
            import keras
            model = keras.saving.load_model(path, compile=False, safe_mode=not trusted)
        else:
            import tf_keras
            model = tf_keras.models.load_model(path, compile=False, safe_mode=not trusted)
    except Exception as e:  # Keras raises many types for a file it cannot read
        raise ModelFileError(f"{path}: Keras {major} cannot load it ({type(e).__name__}: "
                             f"{str(e).strip().splitlines()[0][:200] if str(e).strip() else ''})") from None
    return _source_layers(model)


def with_weights(model, weights: dict):
    """`model` given the source's weights, layer by layer (the added contract layers have none)."""
    for layer in model.layers:
        if layer.name in weights:
            layer.set_weights(weights[layer.name])
    return model


def check_output(model, where: str) -> None:
    shape = model.output_shape
    if isinstance(shape, list):
        raise ContractError(f"{where}: the model has {len(shape)} outputs; a classifier has one")
    check_classes(shape[-1], where)
