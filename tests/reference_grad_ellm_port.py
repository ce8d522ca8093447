"""A deliberately slow, independent Grad-ELLM as the public port of the authors' code computes it
(``--variant port``), used only by the tests. It shares no code with ``gradellm_cli.methods``.

For the last layer only, on a model with transformers' plain ``eager`` attention, with forward hooks on
its ``self_attn`` (output kept in the autograd graph) and on ``q_proj``, ``k_proj`` and ``v_proj``:

* g = d(target logit) / d(attention module output after o_proj) at the target row t (hidden size);
* lambda_i = cosine(q_t, tile(k_i)) for i <= t, the raw projections before any norm or rotary
  embedding, keys repeated whole to the query width ("tiled"), min-max over i (0 when constant);
* H_i = ReLU(sum_d g[d] * lambda_i * tile(v_i)[d]), with explicit loops over positions, in float64.
"""

from __future__ import annotations

import torch


def reference_port_scores(model, input_ids: torch.Tensor, position: int, target_id: int) -> torch.Tensor:
    attention = model.model.layers[-1].self_attn
    kept: dict[str, torch.Tensor] = {}

    def keep(name: str, graph: bool = False):
        def hook(module, inputs, output):
            value = output[0] if isinstance(output, tuple) else output
            kept[name] = value if graph else value.detach()

        return hook

    handles = [
        attention.register_forward_hook(keep("out", graph=True)),
        attention.q_proj.register_forward_hook(keep("q")),
        attention.k_proj.register_forward_hook(keep("k")),
        attention.v_proj.register_forward_hook(keep("v")),
    ]
    try:
        embeds = model.get_input_embeddings()(input_ids[None]).detach().requires_grad_(True)
        logit = model(inputs_embeds=embeds, use_cache=False).logits[0, position, target_id]
        (gradient,) = torch.autograd.grad(logit, kept["out"])
    finally:
        for handle in handles:
            handle.remove()
    g = gradient[0, position].double()
    q = kept["q"][0, position].double()
    keys, values = kept["k"][0].double(), kept["v"][0].double()
    repeats = q.numel() // keys.shape[-1]

    def tile(vector: torch.Tensor) -> torch.Tensor:
        return torch.cat([vector] * repeats)

    sims = []
    for i in range(position + 1):
        k = tile(keys[i])
        sims.append(float(torch.dot(q, k) / (q.norm() * k.norm())))
    low, high = min(sims), max(sims)
    scores = torch.zeros(input_ids.numel(), dtype=torch.float64)
    for i in range(position + 1):
        lam = (sims[i] - low) / (high - low) if high > low else 0.0
        v = tile(values[i])
        total = 0.0
        for d in range(g.numel()):
            total += float(g[d]) * lam * float(v[d])
        scores[i] = max(0.0, total)
    return scores
