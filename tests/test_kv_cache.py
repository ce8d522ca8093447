"""The key/value cache is passed under the name the installed transformers takes, without warnings."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import torch

from gradellm_cli.kv_cache import cache_argument, returned_cache
from gradellm_cli.methods.value_occlusion import zeroed_final_hidden
from gradellm_cli.metrics.distance import hellinger, probabilities
from gradellm_cli.metrics.engine import BatchedEngine, OneByOneEngine


class _OldModel:
    def forward(self, input_ids=None, past_key_values=None, use_cache=None):  # transformers 5.0 to 5.2x
        raise NotImplementedError


class _NewModel:
    def forward(self, input_ids=None, cache=None, use_cache=None):  # transformers 5.40 on
        raise NotImplementedError


class _WrappedModel:
    def forward(self, *args, **kwargs):  # a wrapper that hides the signature
        raise NotImplementedError


def test_the_argument_name_follows_the_forward_signature():
    marker = object()
    assert cache_argument(_OldModel(), marker) == {"past_key_values": marker}
    assert cache_argument(_NewModel(), marker) == {"cache": marker}


def test_a_hidden_signature_gets_the_installed_library_name():
    from transformers.modeling_outputs import BaseModelOutputWithPast

    expected = "cache" if "cache" in BaseModelOutputWithPast.__dataclass_fields__ else "past_key_values"
    assert list(cache_argument(_WrappedModel(), object())) == [expected]


def test_the_returned_cache_is_read_under_either_field_name():
    marker = object()
    assert returned_cache(SimpleNamespace(past_key_values=marker)) is marker
    assert returned_cache(SimpleNamespace(cache=marker)) is marker
    assert returned_cache(SimpleNamespace(cache=None, past_key_values=marker)) is marker


def test_cached_passes_raise_no_deprecation_warning_and_stay_exact(smollm2):
    ids = smollm2.tokenizer("the film was long and the plot was thin, but the acting was superb")["input_ids"]
    mask = [3 <= i < len(ids) - 2 for i in range(len(ids))]
    masks = [torch.rand(sum(mask), generator=torch.Generator().manual_seed(i)) < 0.5 for i in range(2)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        engine = BatchedEngine(smollm2.model, ids, mask)
        fast = engine.logits(masks)
        zeroed_final_hidden(smollm2.model, torch.tensor(ids), torch.tensor([4, 6]))
    assert engine.prefix_cached
    assert not [w for w in caught if "past_key_values" in str(w.message)], [str(w.message) for w in caught]
    slow = OneByOneEngine(smollm2.model, ids, mask).logits(masks)
    assert float(hellinger(probabilities(fast), probabilities(slow)).max()) < 1e-5
