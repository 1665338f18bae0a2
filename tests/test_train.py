import json

import numpy as np

import pytest

from fmnist import plots, train


def test_record_holds_recipe_history_and_provenance(trained, dataset):
    folder = trained("mlp300_100_sgd")
    record = train.read_record(folder)
    assert record["recipe"]["optimizer"] == "sgd" and record["validation"] == "holdout"
    assert len(record["history"]["loss"]) == record["epochs_run"] == len(record["epoch_seconds"])
    assert 0 < record["validation_accuracy"] <= 1 and 0 < record["test_accuracy"] <= 1
    assert record["data_sha256"] == dataset.sha256
    assert record["environment"]["versions"]["tf-keras"] == "2.21.0"
    for plot in ("learning_curves.png", "confusion_matrix.png", "predictions.png"):
        assert (folder / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_second_run_reuses_the_cached_model_and_force_retrains(trained, dataset, session_exports):
    folder = trained("mlp128")
    before = (folder / train.MODEL_FILE).stat().st_mtime_ns
    assert trained("mlp128") == folder
    assert (folder / train.MODEL_FILE).stat().st_mtime_ns == before
    train.train("mlp128", session_exports, dataset, epochs=1, subset=4000, force=True, progress=False)
    assert (folder / train.MODEL_FILE).stat().st_mtime_ns != before


def test_a_changed_recipe_override_is_not_served_from_cache(trained, dataset, session_exports):
    trained("mlp4x2")
    folder = train.train("mlp4x2", session_exports, dataset, epochs=2, subset=4000, progress=False)
    assert train.read_record(folder)["epochs_run"] == 2
    trained("mlp4x2")  # back to the session's one-epoch model for the other tests
    assert train.read_record(folder)["epochs_run"] == 1


def test_stop_rule_ends_training_early_and_says_why(dataset, tmp_path):
    folder = train.train("mlp512_stop", tmp_path, dataset, subset=4000, progress=False)
    record = train.read_record(folder)
    assert record["epochs_run"] < record["epochs_planned"] == 5
    assert "accuracy" in record["stop_reason"] or "loss" in record["stop_reason"]


def test_lr_sweep_runs_its_own_schedule_and_feeds_the_model(trained, session_exports):
    record = train.read_record(trained("mlp4x3_tuned"))
    sweep = json.loads((session_exports / train.SWEEP_DIR / "mlp4x3_tuned" / "sweep.json").read_text())
    assert len(sweep["losses"]) == 40 and sweep["learning_rates"][-1] > 50 * sweep["learning_rates"][0]
    expected = max(sweep["lowest_loss_lr"] / 10, sweep["learning_rates"][0])
    assert record["recipe"]["learning_rate"] == sweep["pick"] == pytest.approx(expected)
    assert (session_exports / train.SWEEP_DIR / "mlp4x3_tuned" / "lr_vs_loss.png").is_file()


def test_interrupted_training_leaves_the_previous_model_intact(trained, dataset, session_exports, monkeypatch):
    folder = trained("mlp512")
    before = (folder / train.RECORD_FILE).read_bytes()

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(plots, "confusion_matrix", interrupt)
    with pytest.raises(KeyboardInterrupt):
        train.train("mlp512", session_exports, dataset, epochs=1, subset=4000, force=True, progress=False)
    assert (folder / train.RECORD_FILE).read_bytes() == before
    assert not [p for p in session_exports.iterdir() if p.name.startswith(".")]


def test_missing_or_corrupt_model_is_a_clear_error(tmp_path):
    with pytest.raises(train.TrainedModelError, match="no trained model"):
        train.load_model(tmp_path)
    (tmp_path / train.MODEL_FILE).write_bytes(b"not a model")
    with pytest.raises(train.TrainedModelError, match="cannot load"):
        train.load_model(tmp_path)


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
