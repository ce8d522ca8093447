"""Model resolution and the GGUF cache, on local files only (the hub is unreachable here)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gradellm_cli.errors import NotFound
from gradellm_cli.explain import Explainer, ExplainSettings
from gradellm_cli.models import gguf_cache_folder, resolve_model


def test_aliases_resolve_to_the_embedded_gguf_files():
    smol, gemma = resolve_model("smollm2"), resolve_model("gemma3")
    assert smol.kind == gemma.kind == "gguf"
    assert Path(smol.location).name == "SmolLM2-135M-Instruct.Q4_1.gguf" and Path(gemma.location).exists()


def test_gguf_file_folder_hub_id_and_unknown(tmp_path):
    gguf = Path(resolve_model("smollm2").location)
    assert resolve_model(str(gguf)).kind == "gguf"
    assert resolve_model(str(gguf_cache_folder(gguf))).kind == "folder"
    assert resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct").kind == "hub"
    with pytest.raises(NotFound, match="unknown model"):
        resolve_model("no-such-model")
    with pytest.raises(NotFound, match="no config.json"):
        resolve_model(str(tmp_path))
    with pytest.raises(NotFound, match="does not exist"):
        resolve_model(str(tmp_path / "missing.gguf"))


def test_cache_folder_loads_as_a_local_model_and_gives_the_same_scores(smollm2):
    folder = gguf_cache_folder(Path(smollm2.source.location))
    assert (folder / "config.json").exists()  # converted once, by the fixture
    local = Explainer(str(folder), device="cpu")
    settings = ExplainSettings()
    ours = local.explain("x", {"text": "a dull film"}, settings)[0]
    reference = smollm2.explain("x", {"text": "a dull film"}, settings)[0]
    assert ours["input_ids"] == reference["input_ids"]
    torch.testing.assert_close(torch.tensor(ours["scores"]), torch.tensor(reference["scores"]))
