from pathlib import Path

import pytest

from customer_service.cli import main
from customer_service.config import Settings


def test_bad_intents_file_is_reported_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    intents = tmp_path / "intents.csv"
    intents.write_text("text,label\nhello,greeting\n,goodbye\n")
    code = main(["prepare", "--state-dir", str(tmp_path / "state"), "--intents-file", str(intents)])
    assert code == 2
    assert f"{intents}:3: empty text" in capsys.readouterr().err


def test_settings_name_the_bad_field() -> None:
    from keel_service import InsecureConfigError

    with pytest.raises(InsecureConfigError, match="KEEL_CS_API_KEY"):
        Settings(api_key="  ").check_keys("KEEL_CS_")
    with pytest.raises(ValueError, match="max_message_chars"):
        Settings(max_message_chars=0)


def test_export_corrections_writes_csv_or_jsonl_by_suffix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import csv
    import json

    from customer_service.corrections import CorrectionStore
    from customer_service.storage import ConversationStore, NewMessage, Role

    state = tmp_path / "state"
    state.mkdir()
    store = ConversationStore(Settings(state_dir=state).resolved_database_url)
    conversation = store.create_conversation("web")
    user, _ = store.record_turn(
        conversation,
        [NewMessage(Role.USER, "my card 4111 1111 1111 1111 is late"), NewMessage(Role.BOT, "ok")],
    )
    CorrectionStore(store.engine, store.write_gate).correct(user.id, "card_arrival")
    store.close()

    assert (
        main(["export-corrections", "--state-dir", str(state), "--out", str(tmp_path / "c.csv")])
        == 0
    )
    assert "1 corrections (dataset version 1, csv)" in capsys.readouterr().out
    [row] = list(csv.DictReader((tmp_path / "c.csv").open(encoding="utf-8")))
    assert (row["text"], row["label"], row["version"]) == (
        "my card [CARD] is late",
        "card_arrival",
        "1",
    )
    out = tmp_path / "c.jsonl"
    assert main(["export-corrections", "--state-dir", str(state), "--out", str(out)]) == 0
    assert json.loads(out.read_text(encoding="utf-8"))["label"] == "card_arrival"
