"""Model resolution and the GGUF cache, on local files only (the hub is unreachable here)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gradellm_cli.errors import BadInput, NotFound
from gradellm_cli.explain import Explainer, ExplainSettings
from gradellm_cli.metrics import MetricSettings, evaluate_record
from gradellm_cli.models import gguf_cache_folder, input_device, pick_device, resolve_model


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


def test_cache_folder_follows_content_not_path_or_time(tmp_path, monkeypatch):
    """One conversion serves the same file installed in two virtual environments; any change in the
    header, the tail or the size gives a new folder."""
    import os

    monkeypatch.setenv("GRADELLM_CACHE", str(tmp_path / "cache"))
    content = bytes(range(256)) * 20000  # 5 MB: head, middle and tail differ
    first, second = tmp_path / "a" / "m.gguf", tmp_path / "b" / "m.gguf"
    for path in (first, second):
        path.parent.mkdir()
        path.write_bytes(content)
    os.utime(second, (1, 1))
    assert gguf_cache_folder(first) == gguf_cache_folder(second)
    for changed in (b"X" + content[1:], content[:-1] + b"X", content + b"X"):
        second.write_bytes(changed)
        assert gguf_cache_folder(second) != gguf_cache_folder(first)
    before = gguf_cache_folder(first)
    monkeypatch.setattr("gradellm_cli.models._converter_versions", lambda: "transformers=0.0,gguf=0.0")
    assert gguf_cache_folder(first) != before  # another converter, another folder


def test_cache_folder_loads_as_a_local_model_and_gives_the_same_scores(smollm2):
    folder = gguf_cache_folder(Path(smollm2.source.location))
    assert (folder / "config.json").exists()  # converted once, by the fixture
    local = Explainer(str(folder), device="cpu")
    settings = ExplainSettings()
    ours = local.explain("x", {"text": "a dull film"}, settings)[0]
    reference = smollm2.explain("x", {"text": "a dull film"}, settings)[0]
    assert ours["input_ids"] == reference["input_ids"]
    torch.testing.assert_close(torch.tensor(ours["scores"]), torch.tensor(reference["scores"]))


def test_device_map_loads_through_accelerate_and_gives_the_same_scores(smollm2, monkeypatch):
    """``--device map:auto`` hands placement to transformers/accelerate (here every layer lands on the
    CPU); heatmaps must equal the plainly loaded model's, and the record says how it was placed."""
    from transformers import AutoModelForCausalLM

    asked = []
    plain = AutoModelForCausalLM.from_pretrained

    def spy(*args, **kwargs):
        asked.append(kwargs.get("device_map"))
        return plain(*args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", spy)
    mapped = Explainer("smollm2", device="map:auto")
    assert asked == ["auto"]  # placed by transformers' device map, not moved with .to()
    assert input_device(mapped.model).type == "cpu"
    settings = ExplainSettings(methods=["grad-ellm", "saliency", "attention", "value-zeroing"])
    ours = mapped.explain("x", {"text": "a dull film"}, settings)
    reference = smollm2.explain("x", {"text": "a dull film"}, settings)
    for mine, theirs in zip(ours, reference, strict=True):
        assert mine["config"]["device"] == "map:auto"
        torch.testing.assert_close(torch.tensor(mine["scores"]), torch.tensor(theirs["scores"]))
    metric_settings = MetricSettings(metrics=("soft", "deletion-insertion"), samples=1)
    mapped_metrics = evaluate_record(mapped.model, ours[0], metric_settings)
    plain_metrics = evaluate_record(smollm2.model, reference[0], metric_settings)
    assert mapped_metrics["kind"] == plain_metrics["kind"] == "metric"
    for key in ("delta0", "soft_ns", "soft_nc", "deletion_curve", "insertion_curve"):
        torch.testing.assert_close(torch.tensor(mapped_metrics[key]), torch.tensor(plain_metrics[key]), atol=1e-5, rtol=0)


def test_unknown_device_or_device_map_is_a_one_line_error():
    with pytest.raises(BadInput, match="unknown device map 'map:everywhere'"):
        pick_device("map:everywhere")
    with pytest.raises(BadInput, match="unknown device 'tpu'"):
        pick_device("tpu")


def test_lm_head_gets_a_contiguous_input_and_the_same_logits(explainer):
    """load_model makes the LM head's input contiguous (one matrix product for a batch, not one pass
    over the vocabulary weight per row); the logits must still be hidden state x weight."""
    model = explainer.model
    seen = []
    handle = model.get_output_embeddings().register_forward_pre_hook(lambda module, args: seen.append(args[0].is_contiguous()))
    try:
        embeds = torch.randn(4, 7, model.config.get_text_config().hidden_size) * 0.1
        with torch.inference_mode():
            logits = model(inputs_embeds=embeds, use_cache=False, logits_to_keep=1).logits[:, -1]
            hidden = model.base_model(inputs_embeds=embeds, use_cache=False).last_hidden_state[:, -1]
    finally:
        handle.remove()
    assert seen == [True]  # registered after gradellm's own hook, so it sees what the head computes on
    reference = hidden.double() @ model.get_output_embeddings().weight.double().T
    softcap = getattr(model.config.get_text_config(), "final_logit_softcapping", None)
    if softcap:
        reference = torch.tanh(reference / softcap) * softcap
    torch.testing.assert_close(logits.double(), reference, atol=1e-4, rtol=1e-5)


def test_the_gguf_conversion_bar_is_off_when_stderr_is_not_a_terminal():
    """transformers' own GGUF tqdm bar is switched off in a pipe (pytest captures stderr) and restored after."""
    import importlib

    from gradellm_cli.models import _gguf_bar_on_terminals_only

    module = importlib.import_module("transformers.modeling_gguf_pytorch_utils")
    original = module.tqdm
    with _gguf_bar_on_terminals_only():
        bar = module.tqdm(range(3))
        assert bar.disable and list(bar) == [0, 1, 2]
    assert module.tqdm is original


def test_processes_sharing_a_cache_convert_a_gguf_file_once(tmp_path, monkeypatch):
    """torchrun or `accelerate launch` starts every process at once: the first converts, the others
    wait for its folder rather than converting again and replacing the folder another one is loading."""
    import os
    import threading
    import time

    from gradellm_cli import models

    monkeypatch.setenv("GRADELLM_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF" * 1000)
    calls = []

    def slow_conversion(path, folder):
        calls.append(folder)
        time.sleep(0.5)  # long enough for every thread to reach the cache check meanwhile
        (folder / "config.json").write_text("{}")

    monkeypatch.setattr(models, "_write_converted", slow_conversion)
    target = gguf_cache_folder(gguf)
    killed, in_flight = Path(f"{target}.tmp-killed"), Path(f"{target}.tmp-older-gradellm")
    for folder in (killed, in_flight):
        folder.mkdir(parents=True)
    os.utime(killed, (time.time() - 2 * models.STALE_AFTER_S,) * 2)  # a conversion SIGKILLed long ago
    results, errors = [], []

    def convert():
        try:
            results.append(models.convert_gguf(gguf))
        except Exception as error:  # noqa: BLE001 - reported by the assert below
            errors.append(error)

    threads = [threading.Thread(target=convert) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(calls) == 1
    assert set(results) == {gguf_cache_folder(gguf)} and (results[0] / "config.json").exists()
    assert [p for p in results[0].parent.iterdir() if ".tmp-" in p.name] == [in_flight]  # ours and the stale one gone


def test_gemma_gguf_is_assembled_once_and_never_left_half_written(tmp_path):
    """The wheel's assemble() writes straight into its output: a second process, or the next run after
    a Ctrl-C, must never find (and keep using) a half-written file."""
    import threading
    import time

    from gradellm_cli.models import _assemble_once

    target = tmp_path / "gguf" / "model.gguf"
    calls = []

    def interrupted(path):
        Path(path).write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _assemble_once(interrupted, target, 5000)
    assert not target.exists() and [p.name for p in target.parent.iterdir()] == ["model.gguf.lock"]

    def slow(path):
        calls.append(path)
        with open(path, "wb") as out:
            for _ in range(5):
                out.write(b"x" * 1000)
                out.flush()
                time.sleep(0.1)

    target.write_bytes(b"x" * 1234)  # cut short by an older gradellm, which assembled in place
    threads = [threading.Thread(target=_assemble_once, args=(slow, target, 5000)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and target.read_bytes() == b"x" * 5000
