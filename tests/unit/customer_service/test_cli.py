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
