"""The rows pass's own attention equals SDPA's, in its outputs and in every gradient the rows pass uses.

:func:`gradellm_cli.row_pass.rows_attention` serves a rows pass (n query rows against T cached key
columns plus one own column each): the cached columns enter the graph detached, so its backward pass
computes the queries' and the own keys' and values' gradients only. Compared here on random tensors
with transformers' SDPA attention on the same keys, values and mask (cached columns detached there
too): grouped-query heads, a sliding window, a boolean mask and logit soft-capping.
"""

from __future__ import annotations

import pytest
import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from gradellm_cli import capture
from gradellm_cli.row_pass import SLIDING, row_masks, rows_attention

HEADS, KV_HEADS, WIDTH, CACHED = 6, 2, 8, 40


class Config:
    """What :func:`row_masks` reads from a model config: the layer kinds and the sliding window."""

    def __init__(self, kinds: list[str], window: int | None = None):
        self.layer_types, self.sliding_window, self.num_hidden_layers = kinds, window, len(kinds)

    def get_text_config(self):
        return self


class Module:  # what SDPA's forward reads from the attention module
    num_key_value_groups = HEADS // KV_HEADS
    is_causal = True
    training = False


def tensors(rows: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    query = torch.randn(1, HEADS, rows, WIDTH, generator=generator, dtype=torch.float64, requires_grad=True)
    cached_keys, cached_values = (torch.randn(1, KV_HEADS, CACHED, WIDTH, generator=generator, dtype=torch.float64) for _ in range(2))
    own_keys, own_values = (torch.randn(1, KV_HEADS, rows, WIDTH, generator=generator, dtype=torch.float64, requires_grad=True)
                            for _ in range(2))
    return query, cached_keys, cached_values, own_keys, own_values


def reference(query, key, value, mask, scaling, softcap):
    """SDPA, or transformers-style eager attention where soft-capping makes SDPA unusable."""
    if softcap is None:
        return sdpa_attention_forward(Module(), query, key, value, mask, scaling=scaling)[0]
    return capture._softcapped_attention(Module(), query, key, value, mask, scaling, softcap)[0]


@pytest.mark.parametrize("kind,window,softcap,boolean", [
    ("full_attention", None, None, False),
    (SLIDING, 9, None, False),
    ("full_attention", None, 3.0, False),
    (SLIDING, 12, None, True),
])
def test_rows_attention_equals_sdpa_with_the_same_gradients(kind, window, softcap, boolean):
    positions = torch.tensor([3, 17, 18, 30, 39])
    mask = row_masks(Config([kind], window), positions, CACHED, torch.float64, "cpu")
    if boolean:
        mask = mask == 0
    query, cached_keys, cached_values, own_keys, own_values = tensors(positions.numel())
    key, value = torch.cat([cached_keys, own_keys], dim=2), torch.cat([cached_values, own_values], dim=2)
    scaling = WIDTH ** -0.5

    got = rows_attention(query, key, value, mask, scaling, softcap, CACHED)
    want = reference(query, key, value, mask, scaling, softcap)
    tolerance = 1e-10 if softcap is None else 1e-6  # the soft-capped reference takes its softmax in float32
    torch.testing.assert_close(got, want, rtol=tolerance, atol=tolerance)
    upstream = torch.randn(got.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    inputs = [query, own_keys, own_values]
    for a, b in zip(torch.autograd.grad((got * upstream).sum(), inputs), torch.autograd.grad((want * upstream).sum(), inputs)):
        torch.testing.assert_close(a, b, rtol=tolerance, atol=tolerance)


def test_a_row_that_sees_only_its_own_column():
    """Position 0 sees no cached key: its output is its own value, whatever the cached columns hold."""
    positions = torch.tensor([0, 20])
    mask = row_masks(Config(["full_attention"]), positions, CACHED, torch.float64, "cpu")
    query, cached_keys, cached_values, own_keys, own_values = tensors(2)
    key, value = torch.cat([cached_keys, own_keys], dim=2), torch.cat([cached_values, own_values], dim=2)
    out = rows_attention(query, key, value, mask, 1.0, None, CACHED)  # (1, rows, heads, width)
    group = HEADS // KV_HEADS
    torch.testing.assert_close(out[0, 0], own_values[0, :, 0].repeat_interleave(group, dim=0))


def test_no_gradient_reaches_the_cached_columns():
    """Even where the cached keys and values carry a graph, the rows attention leaves them out of it."""
    positions = torch.tensor([5, 30])
    mask = row_masks(Config(["full_attention"]), positions, CACHED, torch.float64, "cpu")
    query, cached_keys, cached_values, own_keys, own_values = tensors(2)
    cached_keys.requires_grad_(True)
    cached_values.requires_grad_(True)
    key, value = torch.cat([cached_keys, own_keys], dim=2), torch.cat([cached_values, own_values], dim=2)
    out = rows_attention(query, key, value, mask, 1.0, None, CACHED).sum()
    grads = torch.autograd.grad(out, [cached_keys, cached_values, query], allow_unused=True, materialize_grads=True)
    assert not grads[0].any() and not grads[1].any()
    assert grads[2].abs().sum() > 0


@pytest.mark.parametrize("kind,window", [("full_attention", None), (SLIDING, 6)])
def test_rows_beyond_the_cache_see_the_earlier_rows_without_gradient(kind, window):
    """A cache that stops at the first row: rows 1.. lie beyond it, and each sees the earlier ones (within
    the window). The outputs are SDPA's on that mask; the gradients are those of each row run alone,
    where the other rows' keys and values are constants."""
    positions = torch.arange(CACHED - 1, CACHED + 9)  # the first row is the cache's last position
    rows = positions.numel()
    mask = row_masks(Config([kind], window), positions, CACHED, torch.float64, "cpu")
    beyond = mask[0, 0, :, CACHED:] == 0
    assert beyond[3, 1] and not beyond[1, 3], "later rows see earlier ones, never the reverse"
    if window is not None:
        assert not beyond[9, 1], "nor beyond the window"
    query, cached_keys, cached_values, own_keys, own_values = tensors(rows)
    key, value = torch.cat([cached_keys, own_keys], dim=2), torch.cat([cached_values, own_values], dim=2)
    got = rows_attention(query, key, value, mask, WIDTH ** -0.5, None, CACHED, rows_see_rows=True)
    torch.testing.assert_close(got, reference(query, key, value, mask, WIDTH ** -0.5, None), rtol=1e-10, atol=1e-10)

    alone = []
    for s in range(rows):  # row s with a graph through its own key and value only
        mine = (torch.arange(rows) == s)[None, None, :, None]
        key_s = torch.cat([cached_keys, torch.where(mine, own_keys, own_keys.detach())], dim=2)
        value_s = torch.cat([cached_values, torch.where(mine, own_values, own_values.detach())], dim=2)
        alone.append(reference(query[:, :, s:s + 1], key_s, value_s, mask[:, :, s:s + 1], WIDTH ** -0.5, None))
    want = torch.cat(alone, dim=1)
    upstream = torch.randn(got.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    inputs = [query, own_keys, own_values]
    for a, b in zip(torch.autograd.grad((got * upstream).sum(), inputs), torch.autograd.grad((want * upstream).sum(), inputs)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
