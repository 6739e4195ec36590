"""``keel train | eval | tune`` through Typer's runner: JSON output, clear errors, exit code 2."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from keel._cli_training import register
from keel.data import LabelledTexts


@pytest.fixture(scope="module")
def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def write_csv(path: Path, data: LabelledTexts) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["utterance", "intent"])
        writer.writerows(zip(data.texts, data.labels, strict=True))
    return path


def test_help_for_every_command(cli: typer.Typer) -> None:
    runner = CliRunner()
    for command in ("train", "eval", "tune"):
        result = runner.invoke(cli, [command, "--help"])
        assert result.exit_code == 0, result.output
        assert "--data" in result.output


def test_train_then_eval_prints_metrics_json(
    cli: typer.Typer, tmp_path: Path, tiny_intents: LabelledTexts
) -> None:
    data = write_csv(tmp_path / "train.csv", tiny_intents)
    runner = CliRunner()
    out = tmp_path / "model"
    trained = runner.invoke(
        cli,
        ["train", "--data", str(data), "--text-col", "utterance", "--label-col", "intent",
         "--out", str(out), "--val", str(data), "--calibrate"],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    assert (out / "keel.json").is_file()
    summary = json.loads(trained.stdout[trained.stdout.index("{") :])
    assert summary["metrics"]["val_accuracy"] >= 0.9 and "val_ece" in summary["metrics"]
    png = tmp_path / "cm.png"
    evaluated = runner.invoke(
        cli,
        ["eval", "--model", str(out), "--data", str(data), "--text-col", "utterance",
         "--label-col", "intent", "--confusion", str(png)],
    )  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.output
    metrics = json.loads(evaluated.stdout)
    assert metrics["accuracy"] >= 0.9 and 0 <= metrics["macro_f1"] <= 1
    assert set(metrics["per_class"]) == {"card_declined", "change_pin", "refund"}
    assert png.is_file()


def test_bad_file_names_file_and_line_and_exits_2(
    cli: typer.Typer, tmp_path: Path, tiny_classifier_dir: Path
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "my card was declined", "label": "card_declined"}\n{"text": oops}\n')
    result = CliRunner().invoke(
        cli, ["eval", "--model", str(tiny_classifier_dir), "--data", str(bad)]
    )
    assert result.exit_code == 2
    assert f"{bad}:2: bad JSON" in result.output
    assert "Traceback" not in result.output


def test_unknown_label_and_missing_model_exit_2(
    cli: typer.Typer, tmp_path: Path, tiny_classifier_dir: Path
) -> None:
    data = tmp_path / "d.csv"
    data.write_text("text,label\nhello,greeting\n")
    result = CliRunner().invoke(
        cli, ["eval", "--model", str(tiny_classifier_dir), "--data", str(data)]
    )
    assert result.exit_code == 2 and "labels unknown to the model" in result.output
    missing = CliRunner().invoke(
        cli, ["eval", "--model", str(tmp_path / "none"), "--data", str(data)]
    )
    assert missing.exit_code == 2 and "model folder not found" in missing.output


def test_bad_option_value_names_the_field(
    cli: typer.Typer, tmp_path: Path, tiny_intents: LabelledTexts
) -> None:
    data = write_csv(tmp_path / "train.csv", tiny_intents)
    result = CliRunner().invoke(
        cli, ["train", "--data", str(data), "--out", str(tmp_path / "m"), "--strategy", "magic"]
    )
    assert result.exit_code == 2 and "strategy='magic'" in result.output
