"""Architectures the embedded models do not exercise, on tiny randomly initialised hub models.

* Gemma-2 style attention logit soft-capping: SDPA cannot express it, so our attention computes it
  itself, and must mask exactly as the model would, also on a cached decode step (one query row,
  for which transformers passes no mask at all). Greedy generation and the metrics' prefix cache
  run such steps.
* Grad-ELLM's rows path on Gemma-2 style attention (soft-capped logits, final logit soft-capping, a
  sliding window shorter than the explained continuation): the rows pass with the method's own cache,
  which stops at the first target, equals the full path.
* OPT-style decoder layers that apply dropout with the layer's own ``training`` flag: gradient
  checkpointing must not turn that dropout on (it once did: Grad-ELLM's scores became random).
"""

from __future__ import annotations

import pytest
import torch

from gradellm_cli import capture
from gradellm_cli.kv_cache import cache_argument, returned_cache
from gradellm_cli.methods import get_method
from gradellm_cli.methods.base import MethodOptions, Targets


def _saved(tmp_path, model_class, config, name: str):
    """Save a randomly initialised model once; load it with our attention and with eager attention."""
    torch.manual_seed(0)
    model_class(config).save_pretrained(tmp_path / name)
    capture.register()
    ours = model_class.from_pretrained(tmp_path / name, attn_implementation=capture.ATTENTION_NAME).eval()
    eager = model_class.from_pretrained(tmp_path / name, attn_implementation="eager").eval()
    return ours, eager


def test_softcapped_attention_on_a_cached_decode_step(tmp_path):
    from transformers import Gemma2Config, Gemma2ForCausalLM

    config = Gemma2Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                          num_key_value_heads=2, head_dim=8, sliding_window=4, attn_logit_softcapping=5.0,
                          final_logit_softcapping=None, query_pre_attn_scalar=8, max_position_embeddings=64)
    ours, eager = _saved(tmp_path, Gemma2ForCausalLM, config, "gemma2")
    ids = torch.randint(3, 64, (1, 7), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = eager(ids, use_cache=False).logits[0, -1]
        torch.testing.assert_close(ours(ids, use_cache=False).logits[0, -1], full, rtol=0, atol=1e-5)
        cache = returned_cache(ours(ids[:, :6], use_cache=True))
        step = ours(ids[:, 6:], use_cache=True, **cache_argument(ours, cache)).logits[0, -1]
        torch.testing.assert_close(step, full, rtol=0, atol=1e-5)  # a wrong mask moved it by 0.15
        assert ours.generate(ids, max_new_tokens=8, do_sample=False).tolist() == eager.generate(
            ids, max_new_tokens=8, do_sample=False
        ).tolist()


def test_rows_path_with_soft_capping_and_a_window_shorter_than_the_continuation(tmp_path, filled_lengths):
    from transformers import Gemma2Config, Gemma2ForCausalLM

    from gradellm_cli.methods import grad_ellm as grad_ellm_module

    config = Gemma2Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4,
                          num_key_value_heads=2, head_dim=8, sliding_window=4, attn_logit_softcapping=5.0,
                          final_logit_softcapping=3.0, query_pre_attn_scalar=8, max_position_embeddings=64)
    ours, _ = _saved(tmp_path, Gemma2ForCausalLM, config, "gemma2-rows")
    ours.requires_grad_(False)
    ids = torch.randint(3, 64, (14,), generator=torch.Generator().manual_seed(3))
    layers = list(range(config.num_hidden_layers))
    for positions in (torch.arange(3, 13), torch.tensor([13])):  # ten rows beyond a window of 4; one target
        targets = Targets(ids, positions, ids[(positions + 1).clamp(max=13)], torch.ones(14, dtype=torch.bool))
        rows = grad_ellm_module.attribute_rows(ours, targets, layers, "loosened")
        assert rows is not None, "the rows path fell back"
        assert filled_lengths[-1] == int(positions[0]) + 1, "the cache stops at the first target"
        full = get_method("grad-ellm").attribute(ours, targets, MethodOptions(grad_path="full"))
        scale = full.abs().amax(dim=1, keepdim=True)
        assert bool((scale > 0).all())
        assert float(((rows - full).abs() / scale).max()) <= 1e-5


def test_checkpointing_keeps_dropout_off(tmp_path):
    from transformers import OPTConfig, OPTForCausalLM

    config = OPTConfig(vocab_size=64, hidden_size=32, ffn_dim=64, num_hidden_layers=2, num_attention_heads=4,
                       word_embed_proj_dim=32, max_position_embeddings=64, dropout=0.5)
    ours, _ = _saved(tmp_path, OPTForCausalLM, config, "opt")
    ours.requires_grad_(False)
    ids = torch.randint(3, 64, (10,), generator=torch.Generator().manual_seed(2))
    targets = Targets(ids, torch.tensor([9]), torch.tensor([5]), torch.ones(10, dtype=torch.bool))
    method = get_method("grad-ellm")
    plain = method.attribute(ours, targets, MethodOptions(checkpoint="off"))
    assert plain.abs().sum() > 0
    for _ in range(2):  # with dropout live, two runs differed from each other and from the plain one
        torch.testing.assert_close(method.attribute(ours, targets, MethodOptions(checkpoint="on")), plain, rtol=1e-5, atol=1e-7)
    assert not any(module.training for module in ours.modules())
    assert "forward" not in vars(ours.model.decoder.layers[0]), "the wrapper must be taken off again"


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
