import os
import re
import signal
import subprocess
import sys
import time

import pytest

from fmnist import cli
from fmnist.guard import guarded


@pytest.mark.parametrize("argv, message", [
    (["resnet50"], "unknown model 'resnet50'; choose from: cnn32_64"),
    (["--epochs", "0"], "argument --epochs: 0 must be between 1"),
    (["--epochs", "many"], "argument --epochs: 'many' is not a whole number"),
    (["--subset", "-5"], "argument --subset: -5 must be between 1"),
    (["mlp128", "--all"], "give model names or --all, not both"),
])
def test_bad_arguments_exit_2_with_one_line(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        cli.train_main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.count("\n") == 1 and message in err


@pytest.mark.parametrize("argv, message", [
    (["--min-seconds", "nan"], "argument --min-seconds: nan must be between"),
    (["--min-seconds", "inf"], "argument --min-seconds: inf must be between"),
    (["--min-seconds", "0"], "argument --min-seconds: 0 must be between"),
    (["--runtime", "tensorrt"], "choose from: c, cortex-m0plus"),
    (["--model", "mlp128", "resnet"], "unknown model 'resnet'"),
    (["--prune", "0.004"], "argument --prune: 0.004 must be between 0.01 and 0.99"),
])
def test_bench_bad_arguments_exit_2_with_one_line(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        cli.bench_main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and message in err


@pytest.mark.parametrize("option", ["--results", "--exports"])
def test_an_output_folder_that_is_a_file_or_unwritable_is_refused_before_any_work(tmp_path, capsys, option):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    for target, message in ((a_file, "is a file, not a folder"), (locked / "sub", "cannot write to")):
        if message == "cannot write to" and os.geteuid() == 0:
            target = a_file / "sub"  # root writes anywhere: a path under a file cannot be made by anyone
            message = "cannot write to"
        with pytest.raises(SystemExit) as exit_:
            cli.bench_main(["--model", "mlp128", option, str(target)])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and err.count("\n") == 1 and message in err, err


def test_missing_data_is_one_line_and_exit_1(capsys, tmp_path):
    assert cli.train_main(["mlp128", "--data-dir", str(tmp_path), "--exports", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--data-dir=" in err and "apt-get install dataset-fashion-mnist" in err


def test_a_wrong_data_folder_variable_is_named_before_tensorflow_is_imported(tmp_path):
    code = ("import sys; from fmnist.cli import bench_main; code = bench_main(['--model', 'mlp128', '--exports', "
            f"'{tmp_path / 'e'}', '--results', '{tmp_path / 'r'}']); print('tensorflow' in sys.modules); sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "FMNIST_DATA_DIR": str(tmp_path / "nowhere")})
    assert done.returncode == 1 and done.stdout.strip() == "False", (done.stdout, done.stderr)
    assert done.stderr.count("\n") == 1 and f"FMNIST_DATA_DIR={tmp_path / 'nowhere'}" in done.stderr


def test_train_command_takes_names_either_way_and_writes_the_training_report(tmp_path, capsys):
    results = tmp_path / "results"
    code = cli.train_main(["mlp4x2", "--model", "mlp4x3", "--epochs", "1", "--subset", "2000", "--quiet",
                           "--exports", str(tmp_path / "exports"), "--results", str(results)])
    assert code == 0
    report = (results / "training.md").read_text()
    row = next(line for line in report.splitlines() if line.startswith("| mlp4x2"))
    assert "quick run: subset of 2000 images, 1 epochs" in row and re.search(r"\|\s*001\s*\|", row)
    assert any(line.startswith("| mlp4x3") for line in report.splitlines())
    assert "CPU:" in report and "Seed: 42" in report
    for plot in ("learning_curves", "confusion_matrix", "predictions"):
        assert (results / "training" / "mlp4x2" / f"{plot}.png").is_file()


def test_a_swallowed_ctrl_c_still_exits_130(capsys):
    """Python drops a KeyboardInterrupt raised inside a finalizer ("Exception ignored in ..."):
    the command must still stop with 130, not report success."""
    @guarded
    def main(argv):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        except KeyboardInterrupt:
            pass  # what a finalizer does with it
        return 0
    assert main([]) == 130
    assert "interrupted" in capsys.readouterr().err


SWAP_LOOP = """
import sys, time
from pathlib import Path
from fmnist.atomic import atomic_dir
folder, tag = Path(sys.argv[1]), sys.argv[2]
deadline = time.monotonic() + 1.5
while time.monotonic() < deadline:
    with atomic_dir(folder) as tmp:
        (tmp / "who").write_text(tag)
"""


def test_concurrent_folder_swaps_leave_one_whole_folder_and_no_temp(tmp_path):
    folder = tmp_path / "artifact"
    workers = [subprocess.Popen([sys.executable, "-c", SWAP_LOOP, str(folder), tag]) for tag in "ab"]
    while not (folder / "who").exists() and any(w.poll() is None for w in workers):
        time.sleep(0.001)
    seen = set()
    while any(w.poll() is None for w in workers):
        seen.add((folder / "who").read_text())  # once made, a reader never finds it missing
    assert [w.wait(timeout=60) for w in workers] == [0, 0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifact"] and seen <= {"a", "b"} and seen


BLOCK_TF = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {"tensorflow", "tf_keras", "tensorflow_model_optimization", "tf2onnx", "keras"}:
            raise ImportError(f"blocked: {name}")
sys.meta_path.insert(0, Block())
import fmnist.report, fmnist.harness, fmnist.runtimes, fmnist.storage, fmnist.metrics, fmnist.benchmark
import fmnist.variants, fmnist.export
print("imported without TensorFlow")
"""


def test_the_measuring_core_imports_without_tensorflow():
    done = subprocess.run([sys.executable, "-c", BLOCK_TF], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "imported without TensorFlow" in done.stdout



def test_ctrl_c_sent_to_a_parallel_export_stops_its_workers_and_leaves_nothing(tmp_path):
    """A SIGINT sent to the command alone (a `kill -INT`, not a terminal's Ctrl-C, which reaches
    every process of the group) must still stop the worker processes at once, mid-training. The
    signal goes once the progress bar shows a training epoch, however many cores there are."""
    import threading

    import psutil
    command = [sys.executable, "-c", "import sys; from fmnist.cli import export_main; sys.exit(export_main())",
               "--format", "tflite", "--model", "mlp4x2", "mlp128", "--epochs", "200", "--subset", "3000",
               "--exports", str(tmp_path / "exports"), "--results", str(tmp_path / "results")]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env={**os.environ, "FMNIST_PROGRESS": "1"})
    seen, training = [], threading.Event()

    def read():
        for chunk in iter(lambda: process.stderr.read(64), ""):
            seen.append(chunk)
            if re.search(r"epoch [1-9]\d*/200", "".join(seen[-4:])):
                training.set()
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert training.wait(timeout=300), "".join(seen)[-500:]
    workers = psutil.Process(process.pid).children(recursive=True)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=90) == 130
    reader.join(timeout=10)
    err = "".join(seen)
    assert err.strip().splitlines()[-1].split("\r")[-1].startswith("interrupted") and "Traceback" not in err
    psutil.wait_procs(workers, timeout=10)
    assert not [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
    assert not [p for p in (tmp_path / "exports").rglob("*") if "tmp" in p.name]


def test_nothing_to_measure_is_exit_2_and_leaves_results_as_they_were(tmp_path, capsys):
    from fmnist import resultsdir
    results = tmp_path / "results"
    with resultsdir.replace(results) as tmp:
        (tmp / "README.md").write_text("earlier results")
    with pytest.raises(SystemExit) as exit_:
        cli.bench_main(["--runtime", "tflm", "--format", "onnx", "--results", str(results),
                        "--exports", str(tmp_path / "exports")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and "nothing to measure" in err
    assert sorted(p.name for p in results.iterdir()) == [resultsdir.MARKER, "README.md"]


def test_two_sparsities_get_two_folders_and_neither_touches_the_other(trained, tmp_path, capsys):
    import shutil
    shutil.copytree(trained("mlp4x2"), tmp_path / "mlp4x2")
    argv = ["--format", "tflite", "tflite-int8", "--model", "mlp4x2", "--epochs", "1", "--subset", "4000",
            "--finetune-epochs", "1", "--exports", str(tmp_path), "--quiet"]
    assert cli.export_main([*argv, "--prune", "0.5"]) == 0
    half = {p: p.read_bytes() for p in (tmp_path / "mlp4x2-pruned-50").rglob("*") if p.is_file()}
    assert cli.export_main(["--format", "tflite", *argv[3:], "--prune", "0.504"]) == 0
    assert {p: p.read_bytes() for p in (tmp_path / "mlp4x2-pruned-50").rglob("*") if p.is_file()} == half
    assert (tmp_path / "mlp4x2-pruned-50.4" / "tflite" / "manifest.json").is_file()
    with pytest.raises(SystemExit):
        cli.export_main([*argv, "--prune", "0.50001"])  # finer than a name can tell apart: refused
    assert "at most 4 decimals" in capsys.readouterr().err


def test_an_altered_trained_model_stops_export_in_one_line_and_deletes_nothing(trained, tmp_path, capsys):
    import shutil

    from fmnist import storage
    shutil.copytree(trained("mlp128"), tmp_path / "mlp128")
    argv = ["--format", "tflite", "onnx", "--model", "mlp128", "--epochs", "1", "--subset", "4000",
            "--exports", str(tmp_path), "--quiet"]
    assert cli.export_main(argv) == 0
    weights = tmp_path / "mlp128" / storage.MODEL_FILE
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    before = {p: p.read_bytes() for p in (tmp_path / "mlp128").rglob("*") if p.is_file()}
    assert cli.export_main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not match its record" in err
    (tmp_path / "mlp128" / storage.RECORD_FILE).write_text("{}")
    assert cli.export_main(argv) == 1 and "incomplete training record" in capsys.readouterr().err
    assert {p for p in (tmp_path / "mlp128").rglob("*") if p.is_file()} == set(before)


def test_no_progress_debris_when_the_output_is_not_a_terminal(tmp_path):
    environment = {k: v for k, v in os.environ.items() if k != "FMNIST_PROGRESS"}
    done = subprocess.run([sys.executable, "-c", "import sys; from fmnist.cli import train_main; sys.exit(train_main())",
                           "mlp4x2", "--epochs", "1", "--subset", "1000", "--exports", str(tmp_path / "e"),
                           "--results", str(tmp_path / "r")], capture_output=True, text=True, timeout=300, env=environment)
    assert done.returncode == 0, done.stderr[-500:]
    assert "\r" not in done.stdout + done.stderr and "wrote" in done.stdout


def test_version_names_the_package_python_and_runtimes(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.bench_main(["--version"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and "fmnist-edge 0.1.0" in out and "Python 3." in out and "onnxruntime" in out


@pytest.mark.parametrize("argv, hint", [(["--model", "edge-cnn"], "did you mean edge_cnn?"),
                                        (["--runtime", "tflite"], "did you mean litert"),
                                        (["--format", "tflite_int8"], "did you mean tflite-int8?")])
def test_a_near_miss_gets_a_suggestion(capsys, argv, hint):
    with pytest.raises(SystemExit) as exit_:
        cli.bench_main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and hint in err


def test_the_old_out_flag_of_fmnist_export_still_works_with_a_note(tmp_path, capsys):
    code = cli.export_main(["--format", "tflite", "--model", "mlp4x2", "--epochs", "1", "--subset", "1000", "--quiet",
                            "--out", str(tmp_path / "e")])
    assert code == 0 and (tmp_path / "e" / "mlp4x2" / "tflite" / "manifest.json").is_file()
    assert "--out is now --exports" in capsys.readouterr().err
