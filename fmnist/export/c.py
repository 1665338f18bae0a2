"""The C export: the batch-1 full-int8 graph (the `tflm` file's) as plain C99 with no runtime
library, no malloc and no interpreter (fmnist/export/cgen): `model.h`, `model.c`, and `model.json`
(the layers, their MACs, the memory plan and the equality check, for the Cortex-M estimates).

Its integer arithmetic is TFLite's reference kernels', step for step, so its outputs must be
bit-identical to TFLM's: each export is compiled for this host and compared with TFLM on
every test image (`check_images`). A mismatch does not stop the export: it is kept, and its manifest
says which image differs first, as every missed gate is kept and said."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
from importlib import metadata

import numpy as np

from fmnist.export import register_format
from fmnist.export.base import Format
from fmnist.storage import file_sha256

CHECK_IMAGES = "FMNIST_C_CHECK_IMAGES"  # the test suite checks fewer; a benchmark run checks all 10,000


def check_images() -> int:
    return int(os.environ.get(CHECK_IMAGES, 10_000))
STRICT = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic")


def strict_compile(folder, scratch) -> None:
    """model.c must compile as warning-free C99, as a firmware author's build would demand."""
    done = subprocess.run(["cc", *STRICT, "-c", str(folder / "model.c"), "-o", str(scratch / "model-strict.o")],
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"model.c does not compile cleanly: {(done.stderr.strip().splitlines() or ['?'])[0]}")


def tflm_equality(data: bytes, folder, images: np.ndarray) -> dict:
    """How many of `images` (uint8) give int8 outputs identical to TFLM's, and the first that does not."""
    from fmnist.runtimes.c_host import CModel
    from fmnist.runtimes.tflm import interpreter
    model = CModel(folder)
    quantized = model.quantize(images.astype(np.float32) / 255)
    ours = model.run(quantized)
    micro = interpreter(data)
    shape = micro.get_input_details(0)["shape"]
    theirs = np.empty_like(ours)
    for index, image in enumerate(quantized):
        micro.set_input(image.reshape(shape), 0)
        micro.invoke()
        theirs[index] = micro.get_output(0).reshape(-1)
    same = np.all(ours == theirs, axis=1)
    differing = np.flatnonzero(~same)
    return {"images": len(images), "identical": int(same.sum()), "passed": bool(same.all()),
            "first_differing_image": int(differing[0]) if len(differing) else None,
            "against": f"tflite-micro {metadata.version('tflite-micro')} (reference kernels)"}


class CExport(Format):
    name, filename, runtime = "c", "model.c", "c"
    quantized = calibrated = full_integer = microcontroller = True
    activation_bits = 8
    float_counterpart = "tflite"

    def settings(self) -> dict:
        return {**super().settings(), "tflm_check_images": check_images()}

    def not_for(self, variant):
        if variant.prune:
            return ("the C export does not exploit sparsity (weights are stored densely): a pruned model takes the "
                    "flash and RAM of its unpruned sibling")
        return None

    def convert(self, model, target, ctx):
        from fmnist import data as fdata
        from fmnist.export.cgen import generate
        from fmnist.export.tflm import batch1_int8
        flatbuffer = batch1_int8(model, ctx)
        files, facts = generate(flatbuffer, ctx.model, fdata.CLASS_NAMES)
        folder = target.parent
        for name, text in files.items():
            (folder / name).write_text(text)
        strict_compile(folder, ctx.scratch)
        test_images, _ = fdata.load_test_set()
        equality = tflm_equality(flatbuffer, folder, test_images[:check_images()])
        facts = {**facts, "tflm_equality": equality}
        (folder / "model.json").write_text(json.dumps(facts, indent=1))
        ops = sorted({op for layer in facts["layers"] for op in layer["type"].split("+")})
        return {"quantization": "int8, batch 1 (the tflm export's graph)", "generator": "fmnist.export.cgen",
                "flatbuffer_sha256": hashlib.sha256(flatbuffer).hexdigest(), "ops": ops,
                "arena_bytes": facts["arena_bytes"], "weight_bytes": facts["weight_bytes"],
                "layers": facts["layers"], "tflm_equality": equality,
                "sources": {name: file_sha256(folder / name) for name in (*files, "model.json")}}


register_format(CExport())
