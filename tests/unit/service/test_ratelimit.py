import pytest

from keel_service import RateLimiter


def test_burst_then_refill_per_client() -> None:
    now = [0.0]
    limiter = RateLimiter(per_minute=60, burst=3, clock=lambda: now[0])
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("a") == pytest.approx(1.0)
    assert limiter.acquire("b") == 0.0  # other clients are not affected
    now[0] = 1.0
    assert limiter.acquire("a") == 0.0


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="per_minute"):
        RateLimiter(per_minute=0, burst=1)
