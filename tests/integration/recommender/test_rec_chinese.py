"""Chinese items rerank by topic with the multilingual encoder (real prepare, real server).

The state is prepared with ``KEEL_REC_BASE_MODEL=me5-small`` and a pair cap below one
batch, so the base multilingual-e5-small encoder serves without fine-tuning (the blend
is still fitted): the test checks the encoder choice end to end, fast.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from keel_service.servers import start_app_server
from tests.integration.recommender.rec_support import APP, prepare_state, server_env

HAN = re.compile(r"[\u4e00-\u9fff]")
ME5_ENV = {"KEEL_REC_BASE_MODEL": "me5-small", "KEEL_REC_MAX_PAIRS": "2"}

# Python 编程入门 (入门, 进阶) and 数据库与 SQL (入门): a programming learner.
PROGRAMMING_HISTORY = ["z001", "z002", "z004"]
ON_TOPIC = ["z003", "z005", "z007"]  # Python masterclass, SQL intermediate, web front end
UNRELATED = ["z010", "z013", "z016", "z019", "z022", "z025", "z028"]  # bread, pastry, ...


@pytest.fixture(scope="module")
def me5_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    state = prepare_state(tmp_path_factory.mktemp("rec-me5") / "state", extra_env=ME5_ENV)
    with start_app_server(APP, env={**server_env(state), **ME5_ENV}, timeout_s=300) as url:
        yield url


def test_prepared_state_serves_the_multilingual_encoder(me5_url: str) -> None:
    with httpx.Client(base_url=me5_url, timeout=120) as http:
        resp = http.get("/model")
        assert resp.status_code == 200, resp.text
        assert "me5-small" in resp.text


def test_chinese_history_ranks_on_topic_chinese_candidates_first(me5_url: str) -> None:
    with httpx.Client(base_url=me5_url, timeout=120) as http:
        resp = http.post(
            "/rerank",
            json={
                "history": PROGRAMMING_HISTORY,
                "candidates": [*UNRELATED, *ON_TOPIC],
                "mmr_lambda": 1.0,
            },
        )
        assert resp.status_code == 200, resp.text
        ranked = [item["id"] for item in resp.json()["items"]]
    assert set(ranked[: len(ON_TOPIC)]) == set(ON_TOPIC), ranked


def test_chinese_demo_user_is_labelled_zh(me5_url: str) -> None:
    with httpx.Client(base_url=me5_url, timeout=120) as http:
        users = {u["id"]: u for u in http.get("/users").json()["users"]}
        assert users["u41"]["language"] == "zh"
        assert users["u01"]["language"] == "en"
        resp = http.post("/recommend", json={"user_id": "u41", "top_k": 20, "mmr_lambda": 1.0})
        assert resp.status_code == 200, resp.text
    # u41 liked every Chinese programming course but the web front-end masterclass: it is
    # the first Chinese item recommended (unrelated Chinese topics come later, if at all).
    chinese = [item["title"] for item in resp.json()["items"] if HAN.search(item["title"])]
    assert chinese, resp.json()["items"]
    assert chinese[0].startswith("网页前端开发"), chinese
