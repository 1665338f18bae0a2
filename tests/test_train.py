import json
import shutil

import h5py
import numpy as np

import pytest

from importlib import metadata

from fmnist import models, plots, storage, train
from fmnist.config import RunConfig


def test_record_holds_recipe_history_and_provenance(trained, dataset):
    folder = trained("mlp300_100_sgd")
    record = storage.read_record(folder)
    assert record["recipe"]["optimizer"] == "sgd" and record["validation"] == "holdout"
    assert len(record["history"]["loss"]) == record["epochs_run"] == len(record["epoch_seconds"])
    assert 0 < record["validation_accuracy"] <= 1 and 0 < record["test_accuracy"] <= 1
    assert record["data_sha256"] == dataset.sha256
    assert record["environment"]["versions"]["tf-keras"] == metadata.version("tf-keras")
    assert record["model_sha256"] == storage.file_sha256(folder / storage.MODEL_FILE)
    for plot in ("learning_curves.png", "confusion_matrix.png", "predictions.png"):
        assert (folder / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _copy(trained, name, where):
    """A private copy of a session model: a test that retrains it leaves the shared one alone."""
    shutil.copytree(trained(name), where / name)
    return where / name


def test_second_run_reuses_the_cached_model_and_force_retrains(trained, dataset, tmp_path):
    folder = _copy(trained, "mlp128", tmp_path)
    before = (folder / storage.MODEL_FILE).stat().st_mtime_ns
    assert train.train("mlp128", tmp_path, dataset, RunConfig(epochs=1, subset=4000), progress=False) == folder
    assert (folder / storage.MODEL_FILE).stat().st_mtime_ns == before
    train.train("mlp128", tmp_path, dataset, RunConfig(epochs=1, subset=4000, force=True), progress=False)
    assert (folder / storage.MODEL_FILE).stat().st_mtime_ns != before


def test_a_changed_recipe_override_is_not_served_from_cache(trained, dataset, tmp_path):
    folder = _copy(trained, "mlp4x2", tmp_path)
    assert storage.read_record(folder)["epochs_run"] == 1
    train.train("mlp4x2", tmp_path, dataset, RunConfig(epochs=2, subset=4000), progress=False)
    assert storage.read_record(folder)["epochs_run"] == 2


def test_stop_rule_ends_training_early_and_says_why(dataset, tmp_path):
    folder = train.train("mlp512_stop", tmp_path, dataset, RunConfig(subset=4000), progress=False)
    record = storage.read_record(folder)
    assert record["epochs_run"] < record["epochs_planned"] == 5
    assert "accuracy" in record["stop_reason"] or "loss" in record["stop_reason"]


def test_lr_sweep_runs_its_own_schedule_and_feeds_the_model(trained, session_exports):
    record = storage.read_record(trained("mlp4x3_tuned"))
    sweep = json.loads((session_exports / storage.SWEEP_DIR / "mlp4x3_tuned" / "sweep.json").read_text())
    assert len(sweep["losses"]) == 40 and sweep["learning_rates"][-1] > 50 * sweep["learning_rates"][0]
    expected = max(sweep["lowest_loss_lr"] / 10, sweep["learning_rates"][0])
    assert record["recipe"]["learning_rate"] == sweep["pick"] == pytest.approx(expected)
    assert (session_exports / storage.SWEEP_DIR / "mlp4x3_tuned" / "lr_vs_loss.png").is_file()


def test_interrupted_training_leaves_the_previous_model_intact(trained, dataset, tmp_path, monkeypatch):
    folder = _copy(trained, "mlp512", tmp_path)
    before = (folder / storage.RECORD_FILE).read_bytes()

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(plots, "confusion_matrix", interrupt)
    with pytest.raises(KeyboardInterrupt):
        train.train("mlp512", tmp_path, dataset, RunConfig(epochs=1, subset=4000, force=True), progress=False)
    assert (folder / storage.RECORD_FILE).read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_missing_or_corrupt_model_is_a_clear_error(trained, tmp_path):
    with pytest.raises(storage.TrainedModelError, match="no training record here"):
        models.load_trained(tmp_path)
    folder = tmp_path / "mlp128"
    shutil.copytree(trained("mlp128"), folder)
    (folder / storage.MODEL_FILE).write_bytes(b"not a model")
    with pytest.raises(storage.TrainedModelError, match="does not match its record"):
        models.load_trained(folder)


def test_a_damaged_model_stops_export_and_is_retrained_only_by_fmnist_train(trained, dataset, tmp_path):
    folder = _copy(trained, "mlp128", tmp_path)
    with h5py.File(folder / storage.MODEL_FILE, "r+") as f:  # one kernel overwritten, as in the issue
        kernel = next(d for d in _datasets(f) if d.ndim == 2)
        kernel[...] = 0
    damaged = (folder / storage.MODEL_FILE).read_bytes()
    with pytest.raises(storage.TrainedModelError, match="does not match its record"):  # export's and bench's way
        train.train("mlp128", tmp_path, dataset, RunConfig(epochs=1, subset=4000), progress=False)
    assert (folder / storage.MODEL_FILE).read_bytes() == damaged  # nothing replaced
    train.train("mlp128", tmp_path, dataset, RunConfig(epochs=1, subset=4000, retrain_damaged=True), progress=False)
    record = storage.verified_record(folder)  # fmnist-train's way: retrained, its files match its record again
    assert record["test_accuracy"] > 0.5


def test_an_incomplete_record_is_an_error_until_fmnist_train_retrains_it(trained, dataset, tmp_path):
    folder = _copy(trained, "mlp128", tmp_path)
    record = json.loads((folder / storage.RECORD_FILE).read_text())
    del record["test_accuracy"]
    (folder / storage.RECORD_FILE).write_text(json.dumps(record))
    with pytest.raises(storage.TrainedModelError, match="incomplete training record"):
        train.train("mlp128", tmp_path, dataset, RunConfig(epochs=1, subset=4000), progress=False)
    train.train("mlp128", tmp_path, dataset, RunConfig(epochs=1, subset=4000, retrain_damaged=True), progress=False)
    assert "test_accuracy" in storage.read_record(folder)


def test_loading_a_model_file_runs_none_of_its_code(trained, tmp_path):
    """A model.h5 whose Lambda layer writes a marker: tf_keras' load_model would run it; loading
    through the registry reads weights only."""
    import tf_keras as keras
    marker = tmp_path / "marker"
    where = str(marker)  # the Lambda's closure is stored with it: a plain string
    folder = tmp_path / "mlp128"
    shutil.copytree(trained("mlp128"), folder)
    evil = keras.Sequential([keras.layers.InputLayer(input_shape=(28, 28)), keras.layers.Flatten(),
                             keras.layers.Lambda(lambda x: (open(where, "w").close(), x)[1]),
                             keras.layers.Dense(128, activation="relu"), keras.layers.Dense(10, "softmax")])
    evil.save(folder / storage.MODEL_FILE)  # a full model file, code and all, where weights belong
    marker.unlink()  # building the evil model ran its Lambda once
    keras.models.load_model(folder / storage.MODEL_FILE, safe_mode=True)(np.zeros((1, 28, 28), np.float32))
    assert marker.exists(), "tf_keras' own loader runs the stored code: the test would prove nothing"
    marker.unlink()
    record = json.loads((folder / storage.RECORD_FILE).read_text())
    record["model_sha256"] = storage.file_sha256(folder / storage.MODEL_FILE)  # even with a matching hash
    (folder / storage.RECORD_FILE).write_text(json.dumps(record))
    with pytest.raises(storage.TrainedModelError, match="cannot load the weights"):
        models.load_trained(folder)  # weights only: a file that is not a weights file is refused
    assert not marker.exists()


def _datasets(group):
    for item in group.values():
        if isinstance(item, h5py.Dataset):
            yield item
        else:
            yield from _datasets(item)


def test_augmentation_mirrors_some_images_and_keeps_the_rest(dataset):
    x = dataset.train_images[:256].astype(np.float32) / 255
    y = dataset.train_labels[:256]
    images, labels = next(iter(train.augmented(x, y, batch_size=256, seed=1)))
    images, labels = images.numpy(), labels.numpy()
    assert images.shape == x.shape and images.dtype == np.float32
    originals = {x[i].tobytes(): y[i] for i in range(256)}
    mirrored = {x[i, :, ::-1].tobytes(): y[i] for i in range(256)}
    kept = sum(originals.get(img.tobytes()) == lab for img, lab in zip(images, labels))
    flipped = sum(mirrored.get(img.tobytes()) == lab for img, lab in zip(images, labels))
    assert kept + flipped >= 256 and 64 < flipped < 192  # each image whole, about half mirrored
