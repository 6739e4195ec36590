"""``keel index build | search`` and ``keel export`` through the real command line parser."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from keel._cli_serving import register


@pytest.fixture(scope="module")
def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def _write_docs(path: Path) -> Path:
    path.write_text(
        "id,text,topic\n"
        "pw,How to reset your password from the login page,account\n"
        "card,Your new card arrives within five working days,cards\n"
        "refund,Refunds are paid back within ten days,payments\n",
        encoding="utf-8",
    )
    return path


def test_build_then_search_then_incremental_rebuild(cli: typer.Typer, tmp_path: Path) -> None:
    runner = CliRunner()
    docs = _write_docs(tmp_path / "docs.csv")
    built = runner.invoke(
        cli,
        ["index", "build", "--data", str(docs), "--out", str(tmp_path / "idx"), "--id-col", "id"],
    )
    assert built.exit_code == 0, built.output
    assert json.loads(built.stdout[built.stdout.index("{") :])["embedded"] == 3
    again = runner.invoke(
        cli,
        ["index", "build", "--data", str(docs), "--out", str(tmp_path / "idx"), "--id-col", "id"],
    )
    assert json.loads(again.stdout[again.stdout.index("{") :]) == {
        "index": str(tmp_path / "idx"),
        "documents": 3,
        "embedded": 0,
    }
    found = runner.invoke(
        cli,
        [
            "index",
            "search",
            "--index",
            str(tmp_path / "idx"),
            "-q",
            "when does my card arrive",
            "-k",
            "1",
        ],
    )
    assert found.exit_code == 0, found.output
    hits = json.loads(found.stdout[found.stdout.index("[") :])
    assert hits[0]["id"] == "card" and hits[0]["metadata"] == {"topic": "cards"}


def test_bad_input_names_the_file_and_line(cli: typer.Typer, tmp_path: Path) -> None:
    runner = CliRunner()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": \n', encoding="utf-8")
    result = runner.invoke(
        cli, ["index", "build", "--data", str(bad), "--out", str(tmp_path / "i")]
    )
    assert result.exit_code == 2
    assert f"{bad}:2: invalid JSON" in result.output
    empty = tmp_path / "empty.csv"
    empty.write_text("text\nok\n  \n", encoding="utf-8")
    result = runner.invoke(
        cli, ["index", "build", "--data", str(empty), "--out", str(tmp_path / "i")]
    )
    assert result.exit_code == 2 and f"{empty}:3:" in result.output
    missing = runner.invoke(cli, ["index", "search", "--index", str(tmp_path / "nope"), "-q", "x"])
    assert missing.exit_code == 2 and "no saved retriever" in missing.output
