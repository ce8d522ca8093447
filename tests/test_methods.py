"""The baselines (attention, the Captum gradient methods, value zeroing, random) on both embedded models.

Each is checked against an independent hand computation where one exists, and every method against
the shared contract: shape (steps, T), finite, zero after the target position, at every step.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from gradellm_cli.errors import BadInput
from gradellm_cli.explain import ExplainSettings
from gradellm_cli.methods import MethodOptions, get_method, method_names
from gradellm_cli.methods.base import input_embeddings
from gradellm_cli.methods.integrated_gradients import integrated_gradients_raw
from gradellm_cli.methods.random_baseline import random_seed
from gradellm_cli.models import load_model

DATA = Path("/work/shared/data")
BASELINES = [
    "attention",
    "saliency",
    "input-x-gradient",
    "integrated-gradients",
    "deeplift",
    "layer-gradient-x-activation",
    "value-zeroing",
    "value-occlusion",
    "random",
]
SOURCE_ONLY = ("value-zeroing", "value-occlusion")  # methods that score the source tokens only
# Steps at which integrated gradients' raw attributions sum to within 5% of f(input) - f(zeros) on
# the first SST-2 record with the probability target (measured: 0.8% on SmolLM2, 0.06% on Gemma-3).
COMPLETENESS_STEPS = 32


def first_record(name: str) -> dict:
    with open(DATA / name, encoding="utf-8") as handle:
        return json.loads(handle.readline())


@pytest.fixture(scope="module")
def classification(explainer):
    record = first_record("sst2.jsonl")
    return explainer.prepare(record["id"], {"text": record["text"]}, ExplainSettings(task="sentiment"))


@pytest.fixture(scope="module")
def generation(explainer):
    settings = ExplainSettings(task="generate", max_new_tokens=3)
    return explainer.prepare("generation-test", {"text": "The capital of France is"}, settings)


def target_score(model, embeddings: torch.Tensor, target_id: int, target_fn: str = "probability") -> torch.Tensor:
    """The target's probability (or logit) after the last position, by a plain model call."""
    logits = model(inputs_embeds=embeddings, use_cache=False).logits[0, -1].float()
    return torch.softmax(logits, dim=-1)[target_id] if target_fn == "probability" else logits[target_id]


def hand_gradient(model, targets, target_fn: str = "probability") -> tuple[torch.Tensor, torch.Tensor]:
    """(embeddings, d f / d embeddings), both (T, d), for the single step of ``targets``."""
    embeddings = input_embeddings(model, targets.input_ids).detach().requires_grad_(True)
    score = target_score(model, embeddings, int(targets.target_ids[0]), target_fn)
    (gradient,) = torch.autograd.grad(score, embeddings)
    return embeddings[0].detach(), gradient[0]


def close(actual: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-3) -> None:
    """Equal up to float32 rounding: relative, with an absolute floor at 1e-4 of the largest score."""
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=1e-4 * float(expected.abs().max()))


def run(explainer, prepared, name: str, record_id: str | None = None, **options) -> torch.Tensor:
    targets = prepared.targets if record_id is None else replace(prepared.targets, record_id=record_id)
    return get_method(name).attribute(explainer.model, targets, MethodOptions(**options))


def test_all_baselines_are_registered():
    assert set(BASELINES) <= set(method_names())
    for name in BASELINES:
        method = get_method(name)
        assert method.description and "\n" not in method.description
        assert isinstance(method.config(MethodOptions()), dict)


def test_saliency_and_input_x_gradient_match_autograd(explainer, classification):
    embeddings, gradient = hand_gradient(explainer.model, classification.targets)
    # float32 rounding differs a little (the hand version computes every position's logits).
    close(run(explainer, classification, "saliency")[0], gradient.norm(dim=-1))
    close(run(explainer, classification, "input-x-gradient")[0], (embeddings * gradient).norm(dim=-1))


def test_logit_target(explainer, classification):
    _, gradient = hand_gradient(explainer.model, classification.targets, "logit")
    close(run(explainer, classification, "saliency", target_fn="logit")[0], gradient.norm(dim=-1))


def test_deeplift_and_layer_gradient_x_activation_reduce_to_input_x_gradient(explainer, classification):
    """What Captum does on SiLU/GELU decoders (no supported nonlinearity modules): see deeplift.py."""
    input_x_gradient = run(explainer, classification, "input-x-gradient")
    for name in ("deeplift", "layer-gradient-x-activation"):
        close(run(explainer, classification, name), input_x_gradient)


def test_integrated_gradients_completeness(explainer, classification):
    targets = classification.targets
    model, target_id = explainer.model, int(targets.target_ids[0])
    raw = integrated_gradients_raw(model, targets.input_ids, target_id, "probability", COMPLETENESS_STEPS, batch_size=16)
    assert raw.shape == (targets.input_ids.numel(), model.config.get_text_config().hidden_size)
    with torch.no_grad():
        embeddings = input_embeddings(model, targets.input_ids)
        change = target_score(model, embeddings, target_id) - target_score(model, torch.zeros_like(embeddings), target_id)
    assert abs(float(raw.sum()) - float(change)) <= 0.05 * abs(float(change))


def test_integrated_gradients_path_batches_shrink_for_long_inputs(smollm2, monkeypatch):
    """Long prefixes run fewer path points per batch (memory), with the same attributions."""
    from gradellm_cli.methods import integrated_gradients as ig

    assert [ig.path_batch_size(16, n) for n in (66, 352, 467, 1314, 10_000)] == [16, 16, 13, 4, 1]
    ids = smollm2.tokenizer("a gorgeous, witty, seductive movie.", return_tensors="pt")["input_ids"][0]
    target = int(ids[-1])
    whole = integrated_gradients_raw(smollm2.model, ids[:-1], target, steps=6, batch_size=6)
    monkeypatch.setattr(ig, "PATH_BATCH_TOKENS", 2 * len(ids))  # two path points per batch here
    assert ig.path_batch_size(6, len(ids) - 1) == 2
    close(integrated_gradients_raw(smollm2.model, ids[:-1], target, steps=6, batch_size=6), whole)


def test_integrated_gradients_scores_are_the_norm_of_the_raw_attributions(explainer, classification):
    targets = classification.targets
    scores = run(explainer, classification, "integrated-gradients", ig_steps=3, batch_size=2)
    raw = integrated_gradients_raw(explainer.model, targets.input_ids, int(targets.target_ids[0]), steps=3, batch_size=3)
    close(scores[0], raw.norm(dim=-1))
    assert get_method("integrated-gradients").config(MethodOptions(ig_steps=3)) == {"target_fn": "probability", "ig_steps": 3}


def test_attention_matches_the_eager_models_attention_weights(explainer, classification, generation):
    eager = load_model(explainer.source, attn_implementation="eager")
    for prepared in (classification, generation):
        targets = prepared.targets
        with torch.no_grad():
            out = eager(input_ids=targets.input_ids[None], use_cache=False, output_attentions=True)
        rows = out.attentions[-1][0, :, targets.positions, :].mean(dim=0).float()  # (steps, T)
        torch.testing.assert_close(run(explainer, prepared, "attention"), rows, rtol=1e-4, atol=1e-6)
        every = torch.stack([layer[0, :, targets.positions, :].mean(dim=0) for layer in out.attentions]).mean(dim=0).float()
        torch.testing.assert_close(run(explainer, prepared, "attention", attention_layers="all"), every, rtol=1e-4, atol=1e-6)
    with pytest.raises(BadInput, match="`attention_layers`"):
        run(explainer, classification, "attention", attention_layers="first")
    assert get_method("attention").config(MethodOptions(attention_layers="all")) == {"attention_layers": "all"}


def test_value_occlusion_matches_a_hand_run_zeroing(explainer, classification):
    model, targets = explainer.model, classification.targets
    sources = torch.nonzero(targets.source_mask).flatten()
    chosen = [int(sources[0]), int(sources[len(sources) // 2])]
    position = int(targets.positions[0])
    with torch.no_grad():
        reference = model.base_model(input_ids=targets.input_ids[None], use_cache=False).last_hidden_state[0, position]
    expected = []
    for token in chosen:
        def zero_token(module, inputs, output, token=token):
            output = output.clone()
            output[:, token] = 0.0
            return output

        projections = [module for name, module in model.named_modules() if name.endswith("self_attn.v_proj")]
        assert len(projections) == model.config.get_text_config().num_hidden_layers
        handles = [module.register_forward_hook(zero_token) for module in projections]
        try:
            with torch.no_grad():
                hidden = model.base_model(input_ids=targets.input_ids[None], use_cache=False).last_hidden_state[0, position]
        finally:
            for handle in handles:
                handle.remove()
        expected.append(1.0 - torch.nn.functional.cosine_similarity(hidden.double(), reference.double(), dim=0))
    expected = torch.stack(expected).float()
    assert (expected > 0).all()

    # Only the two chosen tokens are source, perturbed together in one batch of two copies.
    mask = torch.zeros_like(targets.source_mask)
    mask[chosen] = True
    restricted = type(targets)(targets.input_ids, targets.positions, targets.target_ids, mask)
    scores = get_method("value-occlusion").attribute(model, restricted, MethodOptions(batch_size=2))
    torch.testing.assert_close(scores[0, chosen], expected, rtol=1e-3, atol=1e-6)
    others = torch.ones(scores.shape[1], dtype=torch.bool)
    others[chosen] = False
    assert (scores[0, others] == 0).all()


def test_random_is_seeded(explainer, classification, generation):
    first = run(explainer, generation, "random", seed=3)
    assert torch.equal(first, run(explainer, generation, "random", seed=3))
    assert not torch.equal(first, run(explainer, generation, "random", seed=4))
    assert not torch.equal(first, run(explainer, generation, "random", seed=3, record_id="another"))
    assert not torch.equal(first[0, :5], first[1, :5])  # each step draws anew
    scores = run(explainer, classification, "random")
    visible = scores[0, : int(classification.targets.positions[0]) + 1]
    assert ((visible >= 0) & (visible < 1)).all()
    assert random_seed(0, "a", 0) == random_seed(0, "a", 0) != random_seed(0, "a", 1)


def test_unknown_target_function_is_rejected(explainer, classification):
    with pytest.raises(BadInput):
        run(explainer, classification, "saliency", target_fn="log-probability")


@pytest.mark.parametrize("name", BASELINES)
def test_contract_at_every_generation_step(explainer, generation, name):
    targets = generation.targets
    assert targets.steps >= 2
    scores = run(explainer, generation, name, ig_steps=4, batch_size=4)
    assert scores.shape == (targets.steps, targets.input_ids.numel())
    assert scores.dtype == torch.float32 and scores.device.type == "cpu"
    assert torch.isfinite(scores).all()
    if name in SOURCE_ONLY:  # only source tokens are perturbed (the generated prefix never is)
        assert (scores[:, ~targets.source_mask] == 0).all()
    for step, position in enumerate(targets.positions.tolist()):
        assert (scores[step, position + 1 :] == 0).all()
        assert scores[step, : position + 1].abs().sum() > 0
    if explainer.model_name == "smollm2" and name not in SOURCE_ONLY:
        # SmolLM2's chat prompt holds <|im_end|> (its pad and end token): its rows must be there and
        # scored, one score per input id, never dropped.
        ends = torch.nonzero(targets.input_ids == explainer.tokenizer.convert_tokens_to_ids("<|im_end|>")).flatten()
        assert ends.numel() >= 1
        assert (scores[:, ends] != 0).all()


def test_value_zeroing_distance_is_never_negative():
    """Rounding makes 1 - cos(a, a) about -1e-16 for many vectors; a negative score would void the record's metrics."""
    from gradellm_cli.methods.value_occlusion import cosine_distance

    vectors = torch.randn(1000, 576, generator=torch.Generator().manual_seed(0))
    distances = cosine_distance(vectors, vectors.clone())
    assert (distances >= 0).all() and distances.max() < 1e-12
