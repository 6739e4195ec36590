"""The packaged MiniLM loads with the network switched off and knows a paraphrase."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from keel import ModelNotFoundError, model_path

SCRIPT = textwrap.dedent(
    """
    import socket

    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test process")

    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.create_connection = refuse
    socket.getaddrinfo = refuse

    from keel import load_sentence_encoder

    encoder = load_sentence_encoder("minilm")
    a, b, c = encoder.encode(
        [
            "How do I reset my online banking password?",
            "I forgot my password for internet banking, how can I change it?",
            "The central bank raised interest rates by half a point.",
        ],
        normalize_embeddings=True,
    )
    print(float(a @ b), float(a @ c))
    """
)


def test_minilm_loads_offline_and_ranks_paraphrase_first() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    paraphrase, unrelated = map(float, proc.stdout.split())
    assert paraphrase > unrelated + 0.3
    assert paraphrase > 0.6


def test_unknown_model_names_the_choices() -> None:
    with pytest.raises(ModelNotFoundError, match="minilm"):
        model_path("no-such-model")


def test_missing_package_error_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from keel.models import PACKAGED_MODELS, PackagedModel

    monkeypatch.setitem(
        PACKAGED_MODELS,
        "absent",
        PackagedModel("absent", "keel_absent_model_pkg", "keel-absent-model==9.9", "test", 8),
    )
    with pytest.raises(ModelNotFoundError, match=r"pip install 'keel-absent-model==9\.9'"):
        model_path("absent")
