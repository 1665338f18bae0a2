"""The microcontroller path: the batch-1 export and its C sources, and the TFLM runtime."""
import re
import subprocess

import numpy as np
import pytest

from fmnist import boards
from fmnist.export.tflm import DYNAMIC_SHAPE_OPS, SOURCES, arena_with_margin, resolver_method
from fmnist.runtimes import get_runtime
from fmnist.runtimes.tflm import ArenaError, _ArenaProbe, arena_sizes, op_names
from fmnist.storage import model_dir

from conftest import MODELS

DUMP = """
#include <cstdio>
#include "model_data.h"
#include "model_settings.h"
int main() {
  std::fwrite(g_model_data, 1, g_model_data_len, stdout);
  return FMNIST_NUM_CLASSES == 10 && kFmnistClassNames[9][0] == 'A' ? 0 : 1;
}
"""


@pytest.mark.parametrize("model", ["edge_cnn", "mlp4x2"])
def test_tflm_sources_compile_and_hold_the_artifact_bytes(exported, session_exports, tmp_path, model):
    folder = model_dir(session_exports, model) / "tflm"
    manifest = exported[0][(model, "base", "tflm")]
    assert sorted(manifest["details"]["sources"]) == sorted(SOURCES)
    done = subprocess.run(["cc", "-c", str(folder / "model_data.cc"), "-o", str(tmp_path / "model_data.o")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    (tmp_path / "dump.cc").write_text(DUMP)
    done = subprocess.run(["g++", "-I", str(folder), str(tmp_path / "dump.cc"), str(folder / "model_data.cc"),
                           "-o", str(tmp_path / "dump")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    run = subprocess.run([str(tmp_path / "dump")], capture_output=True)
    assert run.returncode == 0 and run.stdout == (folder / "model.tflite").read_bytes()
    settings = (folder / "model_settings.h").read_text()
    arena = int(re.search(r"FMNIST_TENSOR_ARENA_SIZE (\d+)", settings).group(1))
    assert arena == manifest["details"]["arena_bytes_reserved"] == arena_with_margin(manifest["details"]["arena_bytes_min"])
    resolver = (folder / "op_resolver.h").read_text()
    ops = manifest["details"]["ops"]
    assert f"MicroMutableOpResolver<{len(ops)}>" in resolver
    assert all(f"resolver.{resolver_method(op)}()" in resolver for op in ops)


@pytest.mark.parametrize("model", MODELS)
def test_the_microcontroller_export_is_batch_one_and_has_no_dynamic_shape_ops(exported, session_exports, model):
    path = model_dir(session_exports, model) / "tflm" / "model.tflite"
    assert not DYNAMIC_SHAPE_OPS & set(op_names(path))
    session = get_runtime("tflm").load(path, "tflm")
    assert tuple(session.input["shape"]) == (1, 28, 28) and session.input["dtype"] == np.int8


def test_resolver_method_names_follow_tflm():
    assert [resolver_method(op) for op in ("FULLY_CONNECTED", "CONV_2D", "MAX_POOL_2D", "DEPTHWISE_CONV_2D")] == \
        ["AddFullyConnected", "AddConv2D", "AddMaxPool2D", "AddDepthwiseConv2D"]


@pytest.mark.parametrize("model", ["cnn32_64", "mlp4x2"])
def test_the_smallest_arena_runs_and_one_byte_less_does_not(exported, session_exports, model):
    path = model_dir(session_exports, model) / "tflm" / "model.tflite"
    smallest, recorded = arena_sizes(path)
    assert 0 < smallest <= recorded
    probe = _ArenaProbe(path)
    try:
        assert probe.runs(smallest) and not probe.runs(smallest - 1)
        assert not probe.runs(16)  # a size at which TFLM crashes the worker: answered, and the probe goes on
        assert probe.runs(recorded)
    finally:
        probe.close()


def test_an_arena_probe_tells_a_bad_file_from_a_small_arena(tmp_path):
    bad = tmp_path / "model.tflite"
    bad.write_bytes(b"not a flatbuffer" * 64)
    probe = _ArenaProbe(bad)
    try:
        with pytest.raises(ArenaError, match="arena probe at 4,096 bytes: error"):
            probe.runs(4096)
    finally:
        probe.close()


def test_tflm_agrees_with_litert_on_the_same_int8_file(exported, session_exports, dataset):
    path = model_dir(session_exports, "cnn32_64") / "tflite-int8" / "model.tflite"
    images = dataset.test_images[:200].astype(np.float32) / 255
    micro = get_runtime("tflm").load(path, "tflite-int8").predict(images)
    litert = get_runtime("litert").load(path, "tflite-int8", threads=1).predict(images)
    assert np.mean(micro.argmax(1) == litert.argmax(1)) >= 0.98
    assert np.abs(micro - litert).max() <= 0.1  # a few int8 output steps at most


def test_board_fit_rule():
    zero = next(b for b in boards.BOARDS if b.ram_bytes == 32 * 1024)
    assert zero.fits(flash=20_000, arena=16 * 1024) and not zero.fits(flash=20_000, arena=30 * 1024)
    assert not zero.fits(flash=zero.flash_bytes - boards.FLASH_RESERVE + 1, arena=1)


def test_tflm_runs_one_pass_per_distinct_network(exported, session_exports):
    """A model's tflite-int8 and tflm files are one integer network: in one process, the second
    file's pass stops after the check images and reuses the first's outputs (same figures, its row
    names the file); a different network (16x8) runs its own pass; and measured apart, each file's
    own pass gives the very figures the reuse gave."""
    import dataclasses

    from fmnist import harness
    from fmnist.jobs import collect_jobs
    from fmnist.runtimes.tflm import TWIN_CHECK_IMAGES

    from conftest import QUICK
    settings = dataclasses.replace(QUICK, test_images=TWIN_CHECK_IMAGES + 200)
    jobs = collect_jobs([model_dir(session_exports, "mlp128")], ["tflite-int8", "tflm", "tflite-int16x8"],
                        ["tflm"])["tflm"]
    together = {r["format"]: r for r in harness.run_isolated("tflm", jobs, None, settings, progress=False)}
    apart = {j.format: harness.run_isolated("tflm", [j], None, settings, progress=False)[0] for j in jobs}
    reused = [f for f, r in together.items() if r["tflm"]["outputs_from"]]
    assert len(reused) == 1 and reused[0] in ("tflite-int8", "tflm")
    first = ({"tflite-int8", "tflm"} - set(reused)).pop()
    assert together[reused[0]]["tflm"]["outputs_from"]["file"] == f"{first}/model.tflite"
    assert together["tflite-int16x8"]["tflm"]["outputs_from"] is None
    for fmt, r in apart.items():
        assert r["tflm"]["outputs_from"] is None
        assert (r["accuracy"], r["agreement"], r["max_abs_diff"]) == \
            (together[fmt]["accuracy"], together[fmt]["agreement"], together[fmt]["max_abs_diff"]), fmt
