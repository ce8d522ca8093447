"""A deliberately slow, independent re-implementation of Grad-ELLM, used only by the tests.

It shares no code with ``gradellm_cli.capture`` or ``gradellm_cli.methods.grad_ellm``. It runs a model
loaded with transformers' plain ``eager`` attention and gets what it needs through ordinary PyTorch
module hooks (no class patching, no AttentionInterface):

* a forward pre-hook on each layer's ``self_attn`` keeps the layer input and the rotary ``(cos, sin)``
  the model passes in; q, k and v are then recomputed from them with the layer's own projections,
  Gemma-3's ``q_norm``/``k_norm``, and ``apply_rotary_pos_emb`` from the model's modeling module;
* a forward pre-hook on each layer's ``self_attn.o_proj`` keeps its input, the attention output
  before the output projection, which stays in the autograd graph.

The method (method notes, "Grad-ELLM") is then computed with explicit Python loops over layers, heads
and key positions, in float64. As a self-check, the reconstructed q, k, v and the visibility rule
(causal, plus ``t - i < sliding_window`` on sliding layers) must reproduce the model's own attention
output at every explained row: softmax over visible keys of ``scaling * q.k`` times v equals the
captured pre-o_proj output. That ties the reference to what the model really computes.
"""

from __future__ import annotations

import math
import sys

import torch


def load_eager_model(source):
    """A fresh float32 copy of the model with transformers' plain eager attention (never the fixture's)."""
    from transformers import AutoModelForCausalLM

    from gradellm_cli.models import model_folder

    model = AutoModelForCausalLM.from_pretrained(model_folder(source), dtype=torch.float32, attn_implementation="eager")
    model.eval()
    model.requires_grad_(False)
    return model


def _decoder_layers(model):
    return model.model.layers


def is_sliding(config, layer: int) -> bool:
    types = getattr(config, "layer_types", None)
    return bool(types) and types[layer] == "sliding_attention"


def visible_keys(config, layer: int, t: int) -> list[int]:
    """Key positions a query at position ``t`` sees in ``layer``: causal, plus the sliding window if any."""
    if is_sliding(config, layer):
        window = config.sliding_window
        return [i for i in range(t + 1) if t - i < window]
    return list(range(t + 1))


class _Recorder:
    """Hooks that keep, per layer, the attention input, (cos, sin) and the pre-o_proj output."""

    def __init__(self, model):
        self.inputs: dict[int, torch.Tensor] = {}
        self.rotary: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.outputs: dict[int, torch.Tensor] = {}
        self.handles = []
        for index, layer in enumerate(_decoder_layers(model)):
            self.handles.append(layer.self_attn.register_forward_pre_hook(self._attn_hook(index), with_kwargs=True))
            self.handles.append(layer.self_attn.o_proj.register_forward_pre_hook(self._o_proj_hook(index)))

    def _attn_hook(self, index):
        def hook(module, args, kwargs):
            hidden = args[0] if args else kwargs["hidden_states"]
            self.inputs[index] = hidden.detach()
            cos, sin = kwargs["position_embeddings"]
            self.rotary[index] = (cos.detach(), sin.detach())

        return hook

    def _o_proj_hook(self, index):
        def hook(module, args):
            self.outputs[index] = args[0]  # in the graph: d logit / d output is taken with autograd.grad

        return hook

    def remove(self):
        for handle in self.handles:
            handle.remove()


@torch.no_grad()
def _qkv(model, layer: int, hidden: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
    """Post-rotary q (heads, T, d), k and v (kv_heads, T, d), recomputed the way the model's attention does."""
    attn = _decoder_layers(model)[layer].self_attn
    modeling = sys.modules[type(attn).__module__]
    head_dim = attn.head_dim
    shape = (*hidden.shape[:-1], -1, head_dim)
    q = attn.q_proj(hidden).view(shape).transpose(1, 2)
    k = attn.k_proj(hidden).view(shape).transpose(1, 2)
    v = attn.v_proj(hidden).view(shape).transpose(1, 2)
    if hasattr(attn, "q_norm"):
        q = attn.q_norm(q)
        k = attn.k_norm(k)
    q, k = modeling.apply_rotary_pos_emb(q, k, cos, sin)
    return q[0], k[0], v[0]


def reference_layer_heatmaps(
    model,
    input_ids: torch.Tensor,
    positions: list[int] | torch.Tensor,
    target_ids: list[int] | torch.Tensor,
    attention: str | tuple[str, ...] = "loosened",
    check_tol: float = 1e-4,
):
    """Per-layer Grad-ELLM heatmaps H^(k), shape (steps, layers, T), float64.

    ``model`` must use transformers' ``eager`` attention. Step s explains ``target_ids[s]`` as the next
    token after position ``positions[s]``: its target scalar is that logit, with one backward pass per
    step. Sum the layers of a selection to get Grad-ELLM's H. ``attention`` is ``loosened`` (min-max of
    q.k), ``softmax``, or a tuple of both, which returns a dict mode -> heatmaps from the same passes.
    """
    modes = (attention,) if isinstance(attention, str) else tuple(attention)
    if any(mode not in ("loosened", "softmax") for mode in modes):
        raise ValueError(attention)
    config = model.config.get_text_config()
    if config._attn_implementation != "eager":
        raise ValueError(f"the reference needs an eager model, not {config._attn_implementation!r}")
    if getattr(config, "attn_logit_softcapping", None) is not None:
        raise NotImplementedError("attention logit soft-capping is not covered by this reference")
    positions = [int(p) for p in positions]
    target_ids = [int(i) for i in target_ids]
    n_layers = config.num_hidden_layers
    n_heads = config.num_attention_heads
    n_kv = config.num_key_value_heads
    group = n_heads // n_kv
    length = int(input_ids.numel())
    first = min(positions)

    recorder = _Recorder(model)
    try:
        embeds = model.get_input_embeddings()(input_ids[None]).detach().requires_grad_(True)
        # logits from position ``first`` on: row r is position first + r
        logits = model(inputs_embeds=embeds, use_cache=False, logits_to_keep=length - first).logits[0]
    finally:
        recorder.remove()
    assert len(recorder.outputs) == n_layers

    qkv = {}
    for layer in range(n_layers):
        cos, sin = recorder.rotary[layer]
        qkv[layer] = tuple(x.double() for x in _qkv(model, layer, recorder.inputs[layer], cos, sin))

    outputs = [recorder.outputs[layer] for layer in range(n_layers)]
    heatmaps = {mode: torch.zeros(len(positions), n_layers, length, dtype=torch.float64) for mode in modes}
    for step, (t, target) in enumerate(zip(positions, target_ids, strict=True)):
        grads = torch.autograd.grad(logits[t - first, target], outputs, retain_graph=step < len(positions) - 1)
        for layer in range(n_layers):
            q, k, v = qkv[layer]
            attn = _decoder_layers(model)[layer].self_attn
            w = grads[layer][0, t].double().view(n_heads, -1)  # channel weights (heads, head_dim)
            o_t = outputs[layer][0, t].detach().double().view(n_heads, -1)
            seen = visible_keys(config, layer, t)
            sums = {mode: [0.0] * length for mode in modes}
            for h in range(n_heads):
                g = h // group  # the key/value head of query head h
                sims = {i: float(torch.dot(q[h, t], k[g, i])) for i in seen}
                scaled = {i: attn.scaling * s for i, s in sims.items()}
                top = max(scaled.values())
                exp = {i: math.exp(s - top) for i, s in scaled.items()}
                total = sum(exp.values())
                softmax = {i: e / total for i, e in exp.items()}
                # self-check: these q, k, v and this visibility reproduce the model's own attention output
                rebuilt = sum(softmax[i] * v[g, i] for i in seen)
                err = float((rebuilt - o_t[h]).abs().max())
                if err > check_tol * max(1.0, float(o_t[h].abs().max())):
                    raise AssertionError(f"reference q/k/v of layer {layer} head {h} do not reproduce o_t (error {err})")
                low, high = min(sims.values()), max(sims.values())
                loosened = {i: ((s - low) / (high - low) if high > low else 1.0) for i, s in sims.items()}
                projected = {i: float(torch.dot(w[h], v[g, i])) for i in seen}  # sum_d w[h,d] v_i^h[d]
                for mode in modes:
                    weights = softmax if mode == "softmax" else loosened
                    for i in range(length):
                        lam = weights.get(i, 0.0)  # positions head h cannot see get 0
                        sums[mode][i] += lam * projected.get(i, 0.0)
            for mode in modes:
                for i in range(length):
                    heatmaps[mode][step, layer, i] = max(0.0, sums[mode][i])  # ReLU per layer
    return heatmaps[attention] if isinstance(attention, str) else heatmaps


def reference_scores(model, input_ids, positions, target_ids, layers: list[int], attention: str = "loosened") -> torch.Tensor:
    """Grad-ELLM scores H (steps, T) over the given layer indices, float64."""
    per_layer = reference_layer_heatmaps(model, input_ids, positions, target_ids, attention)
    return per_layer[:, layers].sum(dim=1)


# -- shared test inputs and models -------------------------------------------------------------------

DATA = "/work/shared/data"
_EAGER: dict = {}


def eager_model(source):
    """One eager copy per model for the whole test session (loading is cheap, memory is not free)."""
    if source not in _EAGER:
        _EAGER[source] = load_eager_model(source)
    return _EAGER[source]


def first_record(name: str) -> dict:
    import json

    with open(f"{DATA}/{name}.jsonl") as handle:
        return json.loads(handle.readline())


def long_input_ids(tokenizer, length: int = 600) -> torch.Tensor:
    """``length`` token ids of real text (IMDb reviews run together), with the BOS token if the model uses one."""
    import json

    texts = []
    ids: list[int] = []
    with open(f"{DATA}/imdb.jsonl") as handle:
        for line in handle:
            texts.append(json.loads(line)["text"])
            ids = tokenizer(" ".join(texts))["input_ids"]
            if len(ids) >= length:
                break
    assert len(ids) >= length
    return torch.tensor(ids[:length], dtype=torch.long)
