import re

import pytest

from fmnist import cli


@pytest.mark.parametrize("argv, message", [
    (["resnet50"], "unknown model 'resnet50'; known models: cnn32_64"),
    (["--epochs", "0"], "argument --epochs: 0 must be at least 1"),
    (["--epochs", "many"], "argument --epochs: 'many' is not a whole number"),
    (["--subset", "-5"], "argument --subset: -5 must be at least 1"),
    (["mlp128", "--all"], "give model names or --all, not both"),
])
def test_bad_arguments_exit_2_with_one_line(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        cli.train_main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.count("\n") == 1 and message in err


def test_missing_data_is_one_line_and_exit_1(capsys, tmp_path):
    assert cli.train_main(["mlp128", "--data-dir", str(tmp_path), "--exports", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "file not found" in err


def test_train_command_writes_the_training_report(tmp_path, capsys):
    results = tmp_path / "results"
    code = cli.train_main(["mlp4x2", "--epochs", "1", "--subset", "2000", "--quiet",
                           "--exports", str(tmp_path / "exports"), "--results", str(results)])
    assert code == 0
    report = (results / "training.md").read_text()
    row = next(line for line in report.splitlines() if line.startswith("| mlp4x2"))
    assert "quick run: subset of 2000 images, 1 epochs" in row and re.search(r"\|\s*001\s*\|", row)
    assert "CPU:" in report and "Seed: 42" in report
    for plot in ("learning_curves", "confusion_matrix", "predictions"):
        assert (results / "training" / "mlp4x2" / f"{plot}.png").is_file()
