"""keel.training._runtime.adamw: the fused AdamW kernel where torch has one, same updates."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")

from keel.training._runtime import adamw  # noqa: E402


def _steps(optimizer_factory: Any, steps: int = 5) -> tuple[list[Any], Any]:
    torch.manual_seed(0)
    layer = torch.nn.Linear(16, 4)
    optimizer = optimizer_factory(
        [
            {"params": [layer.weight], "lr": 1e-2, "weight_decay": 0.01},
            {"params": [layer.bias], "lr": 5e-3, "weight_decay": 0.0},
        ]
    )
    data = torch.randn(32, 16)
    target = torch.randint(0, 4, (32,))
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(layer(data), target)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return [layer.weight.detach().clone(), layer.bias.detach().clone()], optimizer


def test_cpu_parameters_get_the_fused_kernel_with_the_same_updates() -> None:
    fused_params, fused = _steps(adamw)
    plain_params, plain = _steps(lambda groups: torch.optim.AdamW(groups, foreach=False))
    assert fused.defaults.get("fused") is True
    assert not plain.defaults.get("fused")
    for a, b in zip(fused_params, plain_params, strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    # The parameter groups (per-group learning rates) are kept.
    assert [g["lr"] for g in fused.param_groups] == [1e-2, 5e-3]


def test_falls_back_to_the_default_kernel_where_fused_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = torch.optim.AdamW
    calls: list[dict[str, Any]] = []

    def refusing(params: Any, **options: Any) -> Any:
        calls.append(options)
        if options.get("fused"):
            raise RuntimeError("fused=True requires all the params to be on a supported device")
        return real(params, **options)

    monkeypatch.setattr(torch.optim, "AdamW", refusing)
    params = [torch.nn.Parameter(torch.zeros(3))]
    optimizer = adamw(params, lr=1e-3)
    assert [c.get("fused") for c in calls] == [True, None]
    assert not optimizer.defaults.get("fused")
    assert optimizer.param_groups[0]["params"][0] is params[0]
