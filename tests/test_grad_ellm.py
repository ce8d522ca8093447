"""Grad-ELLM against the slow independent reference (tests/reference_gradellm.py), on both embedded models.

The implementation runs on the fixture model (gradellm's capturing attention, SDPA underneath); the
reference on a separate plain-eager copy with module hooks and Python loops in float64. Measured on
this machine, the largest |difference| was 3.4e-5 of the largest score (SmolLM2, softmax, layers 0,2)
and at most 1.2e-5 elsewhere, from SDPA-vs-eager float32 rounding. The tolerance is rtol 1e-4 plus an
absolute 1e-4 of the largest reference score, which absorbs that rounding near zero (where ReLU cuts and
sums of heads cancel) while any real error of the method, such as a wrong head grouping, a missing
window, a wrong normalisation or an off-by-one row, is orders of magnitude larger.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

if str(Path(__file__).parent) not in sys.path:  # the reference module lives next to this file
    sys.path.insert(0, str(Path(__file__).parent))

from reference_gradellm import eager_model, first_record, long_input_ids, reference_layer_heatmaps, visible_keys  # noqa: E402

from gradellm_cli.capture import Capture  # noqa: E402
from gradellm_cli.explain import ExplainSettings  # noqa: E402
from gradellm_cli.methods import MethodOptions, Targets, get_method  # noqa: E402
from gradellm_cli.methods.base import input_embeddings  # noqa: E402
from gradellm_cli.methods.grad_ellm import layer_heatmap, token_weights  # noqa: E402

RTOL = 1e-4
ATOL_OF_MAX = 1e-4
MODES = ("loosened", "softmax")
LAYER_SPECS = ("all", "last:3", "0,2")
GENERATION_TEXT = "The capital of France is"


def layer_list(spec: str, n_layers: int) -> list[int]:
    """The layers a --layers spec names, worked out here without the implementation's parser."""
    return {"all": list(range(n_layers)), "last:3": list(range(n_layers - 3, n_layers)), "0,2": [0, 2]}[spec]


def grad_ellm(explainer, targets: Targets, layers: str = "all", attention: str = "loosened") -> torch.Tensor:
    scores = get_method("grad-ellm").attribute(explainer.model, targets, MethodOptions(layers=layers, attention=attention))
    assert scores.dtype == torch.float32 and scores.device.type == "cpu"
    assert scores.shape == (targets.steps, targets.input_ids.numel())
    return scores


def assert_matches_reference(got: torch.Tensor, ref: torch.Tensor) -> None:
    assert got.shape == ref.shape
    scale = float(ref.abs().max())
    assert scale > 0, "the reference heatmap is all zero: the comparison would prove nothing"
    torch.testing.assert_close(got.double(), ref, rtol=RTOL, atol=ATOL_OF_MAX * scale)


def n_layers(explainer) -> int:
    return explainer.model.config.get_text_config().num_hidden_layers


# -- classification: the sentiment prompt --------------------------------------------------------------


@pytest.fixture(scope="session")
def sentiment(explainer):
    """The first SST-2 record on the sentiment prompt: its targets and the reference's per-layer heatmaps."""
    record = first_record("sst2")
    prepared = explainer.prepare(record["id"], {"text": record["text"]}, ExplainSettings(task="sentiment"))
    targets = prepared.targets
    reference = reference_layer_heatmaps(eager_model(explainer.source), targets.input_ids, targets.positions, targets.target_ids, MODES)
    return targets, reference


@pytest.mark.parametrize("attention", MODES)
@pytest.mark.parametrize("layers", LAYER_SPECS)
def test_sentiment_matches_reference(explainer, sentiment, attention, layers):
    targets, reference = sentiment
    assert targets.steps == 1 and int(targets.positions[0]) == targets.input_ids.numel() - 1
    got = grad_ellm(explainer, targets, layers, attention)
    ref = reference[attention][:, layer_list(layers, n_layers(explainer))].sum(dim=1)
    assert_matches_reference(got, ref)
    assert (got >= 0).all()


# -- generation: several targets from one forward pass ------------------------------------------------


@pytest.fixture(scope="session")
def generation(explainer):
    settings = ExplainSettings(task="generate", max_new_tokens=5)
    targets = explainer.prepare("gen", {"text": GENERATION_TEXT}, settings).targets
    reference = reference_layer_heatmaps(eager_model(explainer.source), targets.input_ids, targets.positions, targets.target_ids, MODES)
    return targets, reference


@pytest.mark.parametrize("attention", MODES)
def test_generation_matches_reference_at_every_step(explainer, generation, attention):
    targets, reference = generation
    assert targets.steps >= 2, "the generation case should explain several steps"
    got = grad_ellm(explainer, targets, "all", attention)
    ref = reference[attention].sum(dim=1)
    for step in range(targets.steps):
        assert_matches_reference(got[step], ref[step])
        # the model cannot see past the target's position: exactly 0 there, something before it
        position = int(targets.positions[step])
        assert torch.equal(got[step, position + 1 :], torch.zeros_like(got[step, position + 1 :]))
        assert got[step, : position + 1].max() > 0


def test_generation_with_checkpointing_matches_reference(explainer, generation):
    """Gradient checkpointing (used for long inputs) changes memory and time, never the numbers."""
    if not hasattr(MethodOptions(), "checkpoint"):
        pytest.skip("this version has no checkpoint option")
    targets, reference = generation
    options = MethodOptions(layers="all", attention="loosened", checkpoint="on")
    got = get_method("grad-ellm").attribute(explainer.model, targets, options)
    assert_matches_reference(got, reference["loosened"].sum(dim=1))
    assert not any(m.training for m in explainer.model.modules()), "checkpointing must leave the model in eval mode"


@pytest.fixture(scope="session")
def middle(explainer):
    """A target in the middle of the sentiment prompt (the token that really follows position T-8)."""
    record = first_record("sst2")
    prepared = explainer.prepare(record["id"], {"text": record["text"]}, ExplainSettings(task="sentiment"))
    ids = prepared.targets.input_ids
    position = ids.numel() - 8
    targets = Targets(ids, torch.tensor([position]), ids[position + 1 : position + 2].clone(), prepared.targets.source_mask)
    reference = reference_layer_heatmaps(eager_model(explainer.source), ids, [position], targets.target_ids, MODES)
    return targets, reference


@pytest.mark.parametrize("attention", MODES)
def test_position_after_target_gets_no_score(explainer, middle, attention):
    """Every position after the target scores exactly 0; the positions up to it match the reference."""
    targets, reference = middle
    position = int(targets.positions[0])
    got = grad_ellm(explainer, targets, "all", attention)
    assert torch.equal(got[0, position + 1 :], torch.zeros(targets.input_ids.numel() - position - 1))
    assert_matches_reference(got, reference[attention].sum(dim=1))


# -- Gemma-3: the sliding window --------------------------------------------------------------------


@pytest.fixture(scope="session")
def gemma_long(gemma3):
    """600 tokens of text (longer than Gemma-3's 512-token window), explaining the model's next token."""
    ids = long_input_ids(gemma3.tokenizer, 600)
    with torch.no_grad():
        logits = gemma3.model(ids[None], use_cache=False, logits_to_keep=1).logits[0, -1]
    t = ids.numel() - 1
    return Targets(ids, torch.tensor([t]), logits.argmax()[None], torch.ones(ids.numel(), dtype=torch.bool))


def test_gemma_sliding_layers_give_no_weight_outside_the_window(gemma3, gemma_long):
    config = gemma3.model.config.get_text_config()
    window = config.sliding_window
    targets = gemma_long
    t = int(targets.positions[0])
    assert window == 512 and t >= window + 50
    far = torch.arange(t + 1) <= t - window  # t - i >= window
    assert int(far.sum()) == t - window + 1

    embeds = input_embeddings(gemma3.model, targets.input_ids).detach().requires_grad_(True)
    with Capture(rows=targets.positions) as capture:
        logit = gemma3.model(inputs_embeds=embeds, use_cache=False, logits_to_keep=1).logits[0, -1, targets.target_ids[0]]
    layers = sorted(capture.layers)
    assert layers == list(range(config.num_hidden_layers))
    grads = torch.autograd.grad(logit, [capture.layers[k].output for k in layers])

    kinds = set()
    full_far_heat = 0.0
    for k, grad in zip(layers, grads, strict=True):
        layer = capture.layers[k]
        sliding = config.layer_types[k] == "sliding_attention"
        kinds.add(sliding)
        expected = torch.zeros(targets.input_ids.numel(), dtype=torch.bool)
        expected[visible_keys(config, k, t)] = True
        assert torch.equal(layer.visible[0].cpu(), expected), f"layer {k}: captured visibility is not the model's mask"
        heat = layer_heatmap(layer, 0, grad[0, t], "loosened")
        for attention in MODES:
            lam = token_weights(layer, 0, attention)
            assert lam.shape == (config.num_attention_heads, targets.input_ids.numel())
            if sliding:
                assert torch.equal(lam[:, : t + 1][:, far], torch.zeros_like(lam[:, : t + 1][:, far])), f"layer {k} {attention}"
                assert (lam[:, : t + 1][:, ~far] > 0).any()
            else:
                assert (lam[:, : t + 1][:, far] > 0).any(), f"full layer {k} should weigh far positions"
        if sliding:
            assert torch.equal(heat[: t + 1][far], torch.zeros(int(far.sum()))), f"sliding layer {k} heatmap outside window"
        else:
            full_far_heat += float(heat[: t + 1][far].sum())
    assert kinds == {True, False}
    assert full_far_heat > 0, "the full layers should give some score outside the window"


def test_gemma_long_input_matches_reference(gemma3, gemma_long):
    """Over 600 tokens the whole method (sliding and full layers) still equals the reference."""
    targets = gemma_long
    got = grad_ellm(gemma3, targets, "all", "loosened")
    ref = reference_layer_heatmaps(eager_model(gemma3.source), targets.input_ids, targets.positions, targets.target_ids, "loosened")
    assert_matches_reference(got, ref.sum(dim=1))


# -- token / score alignment ------------------------------------------------------------------------


def test_scores_align_with_input_ids_on_a_chat_prompt_with_im_end(smollm2):
    """SmolLM2's <|im_end|> is both padding and end of sequence: it must keep its token and its score."""
    record = first_record("sst2")
    settings = ExplainSettings(task="sentiment")
    records = smollm2.explain(record["id"], {"text": record["text"]}, settings)
    assert len(records) == 1
    out = records[0]
    tokenizer = smollm2.tokenizer
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert im_end == tokenizer.eos_token_id == tokenizer.pad_token_id

    prepared = smollm2.prepare(record["id"], {"text": record["text"]}, settings)
    ids = prepared.targets.input_ids.tolist()
    assert out["input_ids"] == ids
    assert ids.count(im_end) >= 2, "the chat prompt should contain <|im_end|> (after system and user turns)"
    assert ids.index(im_end) < len(ids) - 5, "scores must follow the first <|im_end|>"
    assert len(out["scores"]) == len(out["input_ids"]) == len(out["tokens"]) == len(out["source_mask"])
    assert out["tokens"] == [tokenizer.decode([i]) for i in ids]
    assert [token for token, i in zip(out["tokens"], ids, strict=True) if i == im_end] == ["<|im_end|>"] * ids.count(im_end)
    assert not any(flag for flag, i in zip(out["source_mask"], ids, strict=True) if i == im_end)
    # every score is at its token's position: the record's scores are the method's row, position by position
    scores = grad_ellm(smollm2, prepared.targets)[0]
    assert out["scores"] == scores.tolist()
    # a special token typed in the user's text is tokenised as one, but never becomes source (method notes)
    typed = smollm2.prepare("typed", {"text": "Good film.<|im_end|> Really."}, settings).targets
    flags = [flag for flag, i in zip(typed.source_mask.tolist(), typed.input_ids.tolist(), strict=True) if i == im_end]
    assert len(flags) == ids.count(im_end) + 1 and not any(flags)
    # and the source flags pick out exactly the user's text
    source = "".join(token for token, flag in zip(out["tokens"], out["source_mask"], strict=True) if flag)
    assert source.strip() == record["text"].strip()
