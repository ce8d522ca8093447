"""Shared fixtures: the two embedded models, loaded once per test session (converted into the cache on
first use, which takes a minute or two on a fresh machine)."""

from __future__ import annotations

import pytest
import torch

from gradellm_cli.explain import Explainer

torch.manual_seed(0)


@pytest.fixture(scope="session")
def smollm2() -> Explainer:
    return Explainer("smollm2", device="cpu")


@pytest.fixture(scope="session")
def gemma3() -> Explainer:
    return Explainer("gemma3", device="cpu")


@pytest.fixture(scope="session", params=["smollm2", "gemma3"])
def explainer(request) -> Explainer:
    """Each embedded model in turn."""
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="session")
def app():
    """The Typer app with every command registered, for in-process ``CliRunner`` tests."""
    from gradellm_cli import cli

    if not cli.app.registered_commands:
        cli._register()
    return cli.app


@pytest.fixture
def filled_lengths(monkeypatch) -> list[int]:
    """How many tokens each cache fill of Grad-ELLM's rows path covered, in order (it may stop at the first target)."""
    from gradellm_cli.methods import grad_ellm as grad_ellm_module

    lengths: list[int] = []
    original = grad_ellm_module.fill_cache

    def recording(model, ids, *args, **kwargs):
        lengths.append(ids.numel())
        return original(model, ids, *args, **kwargs)

    monkeypatch.setattr(grad_ellm_module, "fill_cache", recording)
    return lengths
