"""The capturing attention must not change what the model computes.

Variants of each embedded model, all float32 on the CPU:
  gradellm        the fixture model: our capture around transformers' SDPA (the default)
  gradellm_eager  our capture around the model's own eager attention
  sdpa, eager     transformers' plain attention implementations

Compared: the final hidden states at every position (they decide every logit) and the logits of the
last rows, with and without a :class:`Capture` active; on Gemma-3 also on a 600-token input, so that
its 512-token sliding window is a real mask (below 513 tokens a sliding layer is plain causal).

Measured on this machine: gradellm_eager == eager and gradellm == sdpa bit for bit (max |diff| 0),
capture on or off. gradellm vs eager differs by float32 rounding only, the same numbers as plain sdpa
vs eager: max |logit diff| 6.3e-5 (SmolLM2, |logits| <= 37), 4.6e-5 (Gemma-3 short, <= 26) and 6.9e-5
(Gemma-3 600 tokens, <= 36); final hidden states 5.0e-5, 7.9e-5, 2.2e-4 (|h| <= 50, 76, 104). SDPA
accumulates the softmax and the value sum in a different order (blockwise, online softmax) from eager's
matmul-softmax-matmul, and over 18-30 layers that rounding grows to a few 1e-6 of the values'
magnitude. Relative differences are large only for logits near zero (up to 4%), so rtol alone cannot
work: the comparison uses rtol 1e-5 plus atol 3e-4 for logits and 1e-3 for hidden states (about 3-5x the
worst measurement, still ~1e-5 of the value range). A missing or wrong mask (no causal mask, no sliding
window) changes values by O(1), far beyond that.

Why the long input matters: when an attention name has no mask function in ``AttentionMaskInterface``,
transformers 5.23 skips mask creation and passes ``attention_mask=None``. Eager attention then becomes
bidirectional (caught by the causality test and by gradellm_eager vs eager on any input), but SDPA falls
back to ``is_causal=True``, so a "gradellm" without its mask function is still causal and only loses
Gemma-3's sliding window: only inputs over 512 tokens show it (max |diff| 15.6 when we removed it).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

if str(Path(__file__).parent) not in sys.path:  # the reference module lives next to this file
    sys.path.insert(0, str(Path(__file__).parent))

from reference_gradellm import eager_model, first_record, long_input_ids  # noqa: E402

from gradellm_cli.capture import Capture  # noqa: E402
from gradellm_cli.explain import ExplainSettings  # noqa: E402
from gradellm_cli.models import load_model  # noqa: E402

KEEP = 16  # logits compared for the last KEEP rows (on the long input all of them are past the window)
LOGIT_ATOL = 3e-4
HIDDEN_ATOL = 1e-3
RTOL = 1e-5
EXACT_ATOL = 1e-5


class Variants:
    """The variants of one model, and their outputs per (variant, input, capture), computed once."""

    def __init__(self, explainer):
        self.explainer = explainer
        record = first_record("sst2")
        short = explainer.prepare(record["id"], {"text": record["text"]}, ExplainSettings(task="sentiment"))
        self.inputs = {"short": short.prompt.input_ids}
        if explainer.model.config.get_text_config().model_type.startswith("gemma3"):
            self.inputs["long"] = long_input_ids(explainer.tokenizer, 600)
        self.models = {
            "gradellm": explainer.model,
            "gradellm_eager": load_model(explainer.source, attn_implementation="gradellm_eager"),
            "sdpa": load_model(explainer.source, attn_implementation="sdpa"),
            "eager": eager_model(explainer.source),
        }
        self._cache: dict = {}

    def run(self, variant: str, ids: torch.Tensor, capture: bool = False):
        """(logits of the last KEEP rows, final hidden states of all rows, layers the capture recorded)."""
        model = self.models[variant]
        with torch.no_grad():
            if capture:
                with Capture(rows=torch.tensor([ids.numel() - 1])) as active:
                    out = model(ids[None], use_cache=False, logits_to_keep=KEEP, output_hidden_states=True)
                recorded = sorted(active.layers)
            else:
                out = model(ids[None], use_cache=False, logits_to_keep=KEEP, output_hidden_states=True)
                recorded = None
        return out.logits[0], out.hidden_states[-1][0], recorded

    def output(self, variant: str, input_name: str, capture: bool = False):
        key = (variant, input_name, capture)
        if key not in self._cache:
            self._cache[key] = self.run(variant, self.inputs[input_name], capture)
        return self._cache[key]


@pytest.fixture(scope="session")
def variants(explainer) -> Variants:
    return Variants(explainer)


def input_names(variants: Variants) -> list[str]:
    return list(variants.inputs)


def close(actual: torch.Tensor, expected: torch.Tensor, label: str, rtol: float, atol: float) -> None:
    """assert_close that names the input and reports the measured maximum difference."""
    worst = float((actual - expected).abs().max())
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol, msg=lambda m: f"{label}: max |diff| {worst:.3g}\n{m}")


def _check_recorded(variants: Variants, variant: str, recorded) -> None:
    layers = variants.models[variant].config.get_text_config().num_hidden_layers
    if recorded is not None:
        if variant.startswith("gradellm"):
            assert recorded == list(range(layers)), "the capture should record every layer"
        else:
            assert recorded == [], "a plain attention implementation records nothing"


@pytest.mark.parametrize("capture", [False, True], ids=["no-capture", "capture"])
def test_gradellm_eager_equals_plain_eager(variants, capture):
    for name in input_names(variants):
        logits, hidden, recorded = variants.output("gradellm_eager", name, capture)
        ref_logits, ref_hidden, _ = variants.output("eager", name)
        _check_recorded(variants, "gradellm_eager", recorded)
        close(logits, ref_logits, name, rtol=0, atol=EXACT_ATOL)
        close(hidden, ref_hidden, name, rtol=0, atol=EXACT_ATOL)


@pytest.mark.parametrize("capture", [False, True], ids=["no-capture", "capture"])
def test_gradellm_equals_plain_sdpa(variants, capture):
    for name in input_names(variants):
        logits, hidden, recorded = variants.output("gradellm", name, capture)
        ref_logits, ref_hidden, _ = variants.output("sdpa", name)
        _check_recorded(variants, "gradellm", recorded)
        close(logits, ref_logits, name, rtol=0, atol=EXACT_ATOL)
        close(hidden, ref_hidden, name, rtol=0, atol=EXACT_ATOL)


def test_gradellm_close_to_plain_eager(variants):
    """SDPA inside vs eager: equal up to float32 rounding (see the module docstring for the numbers)."""
    for name in input_names(variants):
        logits, hidden, _ = variants.output("gradellm", name)
        ref_logits, ref_hidden, _ = variants.output("eager", name)
        close(logits, ref_logits, name, rtol=RTOL, atol=LOGIT_ATOL)
        close(hidden, ref_hidden, name, rtol=RTOL, atol=HIDDEN_ATOL)


@pytest.mark.parametrize("variant", ["gradellm", "gradellm_eager"])
def test_hooked_model_is_causal(variants, variant):
    """Changing a later token leaves every earlier position unchanged (a custom attention without its mask
    function would be bidirectional); the changed position and later ones do change."""
    for name in input_names(variants):
        ids = variants.inputs[name]
        changed_at = ids.numel() - 6
        other = ids.clone()
        other[changed_at] = ids[changed_at - 1] if ids[changed_at - 1] != ids[changed_at] else ids[changed_at - 2]
        assert other[changed_at] != ids[changed_at]
        _, hidden, _ = variants.output(variant, name)
        _, other_hidden, _ = variants.run(variant, other, capture=False)
        torch.testing.assert_close(other_hidden[:changed_at], hidden[:changed_at], rtol=0, atol=EXACT_ATOL)
        assert (other_hidden[changed_at:] - hidden[changed_at:]).abs().amax(dim=-1).min() > 1e-3


def test_rows_path_on_the_eager_capture_equals_the_full_path(variants):
    """The eager capture ignores a rows pass, so Grad-ELLM filling its own cache must not let rows see
    each other there (eager attention would pass gradients between them): its rows path still equals
    the full path, step by step."""
    from gradellm_cli.methods import MethodOptions, Targets, get_method
    from gradellm_cli.methods import grad_ellm as grad_ellm_module

    model = variants.models["gradellm_eager"]
    ids = long_input_ids(variants.explainer.tokenizer, 60)
    positions = torch.arange(40, 52)
    targets = Targets(ids, positions, ids[positions + 1], torch.ones(60, dtype=torch.bool))
    layers = list(range(model.config.get_text_config().num_hidden_layers))
    rows = grad_ellm_module.attribute_rows(model, targets, layers, "loosened")
    assert rows is not None, "the rows path fell back"
    full = get_method("grad-ellm").attribute(model, targets, MethodOptions(grad_path="full"))
    scale = full.abs().amax(dim=1, keepdim=True)
    assert bool((scale > 0).all())
    assert float(((rows - full).abs() / scale).max()) <= 1e-5


@pytest.mark.parametrize("variant", ["gradellm", "gradellm_eager"])
def test_rows_that_see_each_other_refuse_any_attention_but_the_rows_one(variants, variant):
    """Where the rows attention cannot serve such a pass (here: a plain forward pass, no rows mask),
    attention refuses rather than pass gradients between the rows; the rows pass then falls back."""
    from gradellm_cli.capture import RowsPass

    with torch.no_grad(), RowsPass(0, rows_see_rows=True), pytest.raises(RuntimeError, match="rows attention"):
        variants.models[variant](variants.inputs["short"][None], use_cache=False)
