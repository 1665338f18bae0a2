"""Cache keys carry a digest of the code that makes each thing: an edit redoes what it can change and
nothing else. Each test edits a copy of the package's source and compares the digests before and after."""
import shutil
from pathlib import Path

import pytest

from fmnist import codehash, harness, train
from fmnist.export import get_format, list_formats
from fmnist.runtimes import get_runtime, list_runtimes


@pytest.fixture
def source(tmp_path, monkeypatch):
    """edit(file, old, new) on a copy of the package; digests() -> the digest of every format's
    export, every runtime's measurement and training, read from the copy."""
    copy = tmp_path / "fmnist"
    shutil.copytree(Path(codehash.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(codehash, "ROOT", copy)

    def digests():
        codehash._parse.cache_clear()
        codehash._digest.cache_clear()
        found = {f"export {f}": codehash.code_digest(get_format(f), get_runtime(get_format(f).runtime))
                 for f in list_formats()}
        found |= {f"measure {r}": codehash.code_digest(harness.measure, get_runtime(r)) for r in list_runtimes()}
        found["train"] = codehash.code_digest(train.train, exclude=train.NOT_TRAINING_CODE)
        return found

    def edit(file, old, new):
        path = copy / file
        text = path.read_text()
        assert text.count(old) == 1, f"{old!r} not found once in {file}"
        path.write_text(text.replace(old, new))
    yield edit, digests
    codehash._parse.cache_clear()
    codehash._digest.cache_clear()


def changed(before, after):
    return sorted(k for k in before if before[k] != after[k])


def test_editing_a_runtime_adapter_redoes_its_measurements_only(source):
    edit, digests = source
    before = digests()
    edit("runtimes/onnxruntime.py", "options.inter_op_num_threads = 1", "options.inter_op_num_threads = 2")
    assert changed(before, digests()) == ["export onnx", "export onnx-int8", "measure onnxruntime",
                                          "measure onnxruntime-cuda"]  # it validates their export too


def test_editing_one_converter_redoes_that_format_only(source):
    edit, digests = source
    before = digests()
    edit("export/tflm.py", "class TFLMExport(Format):", "class TFLMExport(Format):\n    extra = 1")
    assert changed(before, digests()) == ["export tflm"]


def test_editing_the_timing_loop_redoes_every_measurement_and_no_export_or_training(source):
    edit, digests = source
    before = digests()
    edit("metrics.py", "    clock, samples = time.perf_counter_ns, []", "    clock, samples = time.perf_counter_ns, [] \n    _ = 1")
    assert changed(before, digests()) == sorted(f"measure {r}" for r in list_runtimes())


def test_comments_docstrings_and_layout_change_nothing(source):
    edit, digests = source
    before = digests()
    edit("metrics.py", '"""Per-call nanoseconds of', '"""Reworded: per-call nanoseconds of')
    edit("train.py", "def compile_model(model, optimizer: str, learning_rate, schedule: str = \"constant\", steps: int = 0)",
         "def compile_model(model, optimizer: str, learning_rate,  # a comment\n                  schedule: str = \"constant\", steps: int = 0)")
    assert changed(before, digests()) == []


def test_editing_training_retrains_and_re_exports_nothing(source):
    edit, digests = source
    before = digests()
    edit("train.py", "STEPS_PER_EXECUTION = 50", "STEPS_PER_EXECUTION = 25")
    assert changed(before, digests()) == ["train"]
