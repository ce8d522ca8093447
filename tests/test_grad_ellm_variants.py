"""Grad-ELLM's choices between the paper's text and the authors' code, and the port preset."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

from reference_grad_ellm_port import reference_port_scores  # noqa: E402
from reference_gradellm import eager_model  # noqa: E402

from gradellm_cli.errors import BadInput  # noqa: E402
from gradellm_cli.explain import ExplainSettings  # noqa: E402
from gradellm_cli.methods import MethodOptions, get_method  # noqa: E402
from gradellm_cli.methods.grad_ellm import VARIANTS, variant_options  # noqa: E402

PORT = MethodOptions(**VARIANTS["port"])


def scores(explainer, targets, options: MethodOptions) -> torch.Tensor:
    return get_method("grad-ellm").attribute(explainer.model, targets, options)


@pytest.fixture(scope="module")
def prompts(smollm2):
    classification = smollm2.prepare("s", {"text": "a gorgeous, witty, seductive movie."}, ExplainSettings()).targets
    generation = smollm2.prepare("g", {"text": "Name a colour."}, ExplainSettings(task="generate", max_new_tokens=3)).targets
    return classification, generation


def test_port_variant_equals_the_slow_reference(smollm2, prompts):
    eager = eager_model(smollm2.source)
    for targets in prompts:
        got = scores(smollm2, targets, PORT)
        for step in range(targets.steps):
            position, target = int(targets.positions[step]), int(targets.target_ids[step])
            expected = reference_port_scores(eager, targets.input_ids, position, target)
            scale = float(expected.abs().max())
            assert scale > 0
            torch.testing.assert_close(got[step].double(), expected, rtol=1e-5, atol=1e-5 * scale)


def test_each_choice_changes_the_scores_and_is_in_the_config(smollm2, prompts):
    targets = prompts[0]
    paper = scores(smollm2, targets, MethodOptions())
    for change in ({"similarity": "raw-cosine"}, {"grad_at": "post-o"}, {"kv_expansion": "tiled"}):
        other = scores(smollm2, targets, MethodOptions(**change))
        assert not torch.allclose(other, paper, rtol=1e-3), f"{change} should change the scores"
        config = get_method("grad-ellm").config(MethodOptions(**change))
        assert all(config[key] == value for key, value in change.items())
    assert set(get_method("grad-ellm").config(MethodOptions())) == {"layers", "attention", "similarity", "grad_at", "kv_expansion"}


def test_tiled_rows_path_equals_its_full_path(smollm2, prompts):
    targets = prompts[1]
    rows = scores(smollm2, targets, MethodOptions(kv_expansion="tiled"))
    full = scores(smollm2, targets, MethodOptions(kv_expansion="tiled", grad_path="full"))
    torch.testing.assert_close(rows, full, rtol=1e-5, atol=1e-5 * float(full.abs().max()))


def test_variant_presets_and_refusals(gemma3, prompts):
    assert variant_options("port") == {"similarity": "raw-cosine", "grad_at": "post-o", "kv_expansion": "tiled", "layers": "last:1"}
    assert variant_options("paper", layers="last:2")["layers"] == "last:2"
    with pytest.raises(BadInput, match="unknown `variant`"):
        variant_options("authors")
    targets = gemma3.prepare("s", {"text": "a fine film"}, ExplainSettings()).targets
    with pytest.raises(BadInput, match="`grad_at` post-o needs the attention's query width") as caught:
        scores(gemma3, targets, MethodOptions(grad_at="post-o"))
    assert "\n" not in str(caught.value)
    with pytest.raises(BadInput, match="goes with `similarity` rope-qk"):
        scores(gemma3, targets, MethodOptions(similarity="raw-cosine", attention="softmax"))
    with pytest.raises(BadInput, match="unknown `kv_expansion`"):
        scores(gemma3, targets, MethodOptions(kv_expansion="interleaved"))
    raw = scores(gemma3, targets, MethodOptions(similarity="raw-cosine", kv_expansion="tiled"))  # Gemma-3 takes the rest
    assert torch.isfinite(raw).all() and raw.max() > 0
