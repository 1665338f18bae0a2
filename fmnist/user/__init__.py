"""Your own model through the whole toolkit: what `--model` takes besides a registered name.

- a trained Keras model file (`.keras`, `.h5`), saved by Keras 3 or by tf_keras: not trained again;
- `package.module:function`, a factory returning a Keras model, trained by the pipeline by the
  `RECIPE` (a `fmnist.models.Recipe`) its module exposes, or the defaults;
- an ONNX file (from `torch.onnx.export` or any exporter): the ONNX formats and runtimes;
- a name an installed package registers in the entry-point group `fmnist_edge.models`
  (`NAME = package.module:function`, the function returning a Keras model or a `ModelSpec`).

Each is resolved to a `ModelSpec` (source "user", with its origin and input contract) and adopted by
the registry, so training, export, measuring and the report treat it like the zoo.
"""
from __future__ import annotations

import importlib
import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from fmnist.errors import FmnistError, one_line
from fmnist.user.contract import ContractError, InputContract, Scaling, returns_logits, scaling_for

ModelError = ContractError
# The code that reads user models: left out of the training and export cache keys' code digests, since
# what it makes (a user model's architecture, contract, adapted graph) is in those keys as content.
MODULES = ("fmnist.user", "fmnist.user.contract", "fmnist.user.keras_source", "fmnist.user.onnx_source")
KERAS_SUFFIXES, ONNX_SUFFIX = (".keras", ".h5"), ".onnx"
PROBE_IMAGES = 256
DEFAULT_RECIPE_NOTE = "the default recipe (Adam 1e-3, batch 32, 5 epochs): its module exposes no RECIPE"


@dataclass(frozen=True)
class Options:
    """How user models are read: the input scaling (flags; else a sidecar file; else [0, 1]), and
    whether the user trusts a Keras file's code."""
    scale: float | None = None
    mean: float | None = None
    std: float | None = None
    trust_code: bool = False
    data_dir: Path | None = None


def is_reference(text: str) -> bool:
    """A file or a factory rather than a registered name."""
    return text.endswith((*KERAS_SUFFIXES, ONNX_SUFFIX)) or ":" in text or "/" in text


def _name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "_", text).strip("_.") or "user_model"


def _probe(options: Options) -> np.ndarray:
    """A few training images in [0, 1]: enough to see whether a model returns logits."""
    from fmnist import data
    return data.normalise(data.load(options.data_dir).train_images[:PROBE_IMAGES])


def contract_from(described: dict) -> InputContract:
    return InputContract(described["layout"], Scaling(described["scale"], described["mean"], described["std"]),
                         described["output"] == "logits")


def _keras_spec(config: dict, where: str, name: str, layout_scaling, options: Options, weights=None):
    """(adapted architecture, contract) of a Keras configuration already checked for code; the
    softmax is added when the model (with `weights`, or as initialised) returns logits on the probe
    images."""
    from fmnist.user import keras_source as ks
    from fmnist.user.contract import layout_of
    nodes, input_name, output_name = ks.graph(config, where)
    input_config = next(cfg for _, cfg, _ in nodes if cfg["name"] == input_name)
    shape = input_config.get("batch_input_shape") or input_config.get("batch_shape")
    contract = InputContract(layout_of(shape[1:], where), layout_scaling, logits=False)
    origin = {"reference": where, "trusted_code": options.trust_code}
    try:
        probe = ks.from_architecture(ks.adapted(nodes, input_name, output_name, contract, name), origin)
    except (TypeError, ValueError, KeyError) as e:  # a configuration tf_keras cannot rebuild
        raise ModelError(f"{where}: cannot rebuild it in tf_keras ({str(e).splitlines()[0][:200]})") from None
    ks.check_output(probe, where)
    if weights:
        ks.with_weights(probe, weights)
    contract = replace(contract, logits=returns_logits(probe.predict(_probe(options), verbose=0), where))
    return ks.adapted(nodes, input_name, output_name, contract, name), contract


def _spec(name: str, summary: str, origin: dict, contract: InputContract, recipe=None, architecture=None,
          notes: str = ""):
    from fmnist.models import ModelSpec, Recipe
    return ModelSpec(name, "user", summary, None, recipe or Recipe(), notes=notes, architecture=architecture,
                     origin={**origin, "input_contract": contract.describe()})


def from_keras_file(path: Path, options: Options = Options()):
    from fmnist import storage
    from fmnist.user import keras_source as ks
    config, major = ks.read_config(path)
    ks.refuse_code(config, str(path), options.trust_code)  # before the weights load anything
    weights = ks.load_weights_of(path, major, options.trust_code)
    scaling = scaling_for(path, options.scale, options.mean, options.std)
    name = _name(path.stem)
    architecture, contract = _keras_spec(config, str(path), name, scaling, options, weights)
    origin = {"kind": "keras-file", "reference": str(path), "sha256": storage.file_sha256(path),
              "saved_by": f"Keras {major}" if major >= 3 else "tf_keras", "trusted_code": options.trust_code}
    return _spec(name, f"user model {path.name} ({origin['saved_by']}, trained elsewhere)", origin, contract,
                 architecture=architecture,
                 notes="trained elsewhere, not trained again; its variants are fine-tuned by the default recipe "
                       "(Adam, learning rate 1e-3 x 0.1, batch 32)")


def from_onnx_file(path: Path, options: Options = Options()):
    from fmnist import storage
    from fmnist.user import onnx_source
    model = onnx_source.checked(path)
    input_name, output_name, layout = onnx_source.io(model, str(path))
    contract = InputContract(layout, scaling_for(path, options.scale, options.mean, options.std), logits=False)
    outputs = onnx_source.run(onnx_source.adapted(model, contract, input_name, output_name), _probe(options))
    contract = replace(contract, logits=returns_logits(outputs, str(path)))
    origin = {"kind": "onnx-file", "reference": str(path), "sha256": storage.file_sha256(path),
              "producer": f"{model.producer_name} {model.producer_version}".strip()}
    return _spec(_name(path.stem), f"user model {path.name} (ONNX, trained elsewhere)", origin, contract,
                 notes="an ONNX source: the ONNX formats only; no Keras model to fine-tune or convert")


def _fresh_names() -> None:
    """Keras numbers the layers a process creates (dense, dense_1, ...): reset the count, so a
    factory's model, and so its cache key, is the same however often it is built."""
    for module in ("keras", "tf_keras"):
        if module in sys.modules:
            sys.modules[module].backend.clear_session()


def from_factory(reference: str, name: str | None = None, kind: str = "factory", options: Options = Options()):
    """`package.module:function` (or a plugin's entry point) as a model trained by the pipeline."""
    from fmnist.models import ModelSpec, Recipe
    module_name, _, attribute = reference.partition(":")
    if "" not in sys.path and str(Path.cwd()) not in sys.path:  # as `python -m` does: the project beside you
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # ImportError, or the module's own failure: said in one line either way
        raise ModelError(f"{reference}: cannot import {module_name} ({type(e).__name__}: {e})") from None
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise ModelError(f"{reference}: {module_name} has no function {attribute!r}")
    _fresh_names()
    try:
        made = factory()
    except Exception as e:  # noqa: BLE001  (the factory's own failure, said as the user's)
        raise ModelError(f"{reference}: the factory raised {one_line(e, 200)}") from None
    origin = {"kind": kind, "reference": reference, "module_file": str(getattr(module, "__file__", ""))}
    if isinstance(made, ModelSpec):  # a plugin may register a spec of layer descriptions, like the zoo
        return replace(made, name=name or made.name, source="user", origin=origin)
    if not hasattr(made, "get_config") or not hasattr(made, "layers"):
        raise ModelError(f"{reference}: returned {type(made).__name__}, not a Keras model")
    recipe = getattr(module, "RECIPE", None)
    recipe = recipe if isinstance(recipe, Recipe) else None
    name = name or _name(attribute)
    scaling = scaling_for(None, options.scale, options.mean, options.std)
    config = made.get_config()
    from fmnist.user.keras_source import refuse_code
    refuse_code(config, reference, options.trust_code)
    architecture, contract = _keras_spec(config, reference, name, scaling, options)
    return _spec(name, f"user model {reference} (trained here)", {**origin, "trusted_code": options.trust_code},
                 contract, recipe, architecture,
                 notes=f"trained by the RECIPE of {module_name}" if recipe else DEFAULT_RECIPE_NOTE)


def resolve(reference: str, options: Options = Options()):
    """The ModelSpec of a file or factory reference; one line (ModelError) when it is none, whatever
    a loader raised on a malformed file (wrong JSON types at any depth, unknown ops, a factory's own
    exception): the user's file is named, not the library's internals."""
    if ":" in reference and not reference.endswith((*KERAS_SUFFIXES, ONNX_SUFFIX)):
        read = from_factory
    else:
        path = Path(reference)
        if not path.is_file():
            raise ModelError(f"{reference}: no such file")
        if path.suffix not in (*KERAS_SUFFIXES, ONNX_SUFFIX):
            raise ModelError(f"{reference}: not a model file (.keras, .h5 or .onnx) or package.module:function")
        read = from_onnx_file if path.suffix == ONNX_SUFFIX else from_keras_file
        reference = path
    try:
        return read(reference, options=options)
    except FmnistError:
        raise
    except Exception as e:  # noqa: BLE001  (any loader's failure is the file's, in one line)
        raise ModelError(f"{reference}: cannot be read as a model ({one_line(e, 200)})") from None
