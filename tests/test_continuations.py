"""Given continuations, chats and contrastive targets, and Grad-ELLM's rows path, on both embedded models.

* A given continuation equal to the model's own greedy output gives the greedy generation's targets
  and scores.
* Grad-ELLM's rows path (a no-grad cache, then the target rows alone) equals the full forward+backward
  path to 1e-5 relative, and every step of a continuation equals the slow independent reference.
* Chats: source positions are exactly the chosen messages' content; per-message sums are their tokens'.
* A contrastive saliency with the logit target is the norm of the difference of the two gradients.
"""

from __future__ import annotations

import sys
import weakref
from pathlib import Path

import pytest
import torch

if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

from reference_gradellm import eager_model, long_input_ids, reference_scores  # noqa: E402

from gradellm_cli.errors import BadInput  # noqa: E402
from gradellm_cli.explain import ExplainSettings  # noqa: E402
from gradellm_cli.methods import MethodOptions, Targets, get_method  # noqa: E402
from gradellm_cli.methods import grad_ellm as grad_ellm_module  # noqa: E402
from gradellm_cli.methods.base import input_embeddings  # noqa: E402
from gradellm_cli.prefill import fill_cache  # noqa: E402
from gradellm_cli.units import aggregate  # noqa: E402

PROMPT = "Write two sentences about the sea."
ROWS_RTOL = 1e-5  # rows path against the full path, relative to the largest score of the step
REF_RTOL, REF_ATOL_OF_MAX = 1e-4, 1e-4  # against the float64 reference, as in test_grad_ellm.py
CHAT = [
    {"role": "system", "content": "You are terse. Answer in one sentence."},
    {"role": "user", "content": "Which ocean is the largest?"},
    {"role": "assistant", "content": "The Pacific."},
    {"role": "user", "content": "And the smallest one?"},
    {"role": "assistant", "content": "The Arctic Ocean is the smallest."},
]


def assert_rows_equal_full(rows: torch.Tensor, full: torch.Tensor) -> None:
    assert rows.shape == full.shape
    for step in range(full.shape[0]):
        scale = float(full[step].abs().max())
        assert scale > 0, "an all-zero heatmap would prove nothing"
        worst = float((rows[step] - full[step]).abs().max()) / scale
        assert worst <= ROWS_RTOL, f"step {step}: relative difference {worst:.2e}"


def grad_ellm(model, targets: Targets, path: str) -> torch.Tensor:
    """Scores by one path; the rows path is called directly, so a silent fallback to the full path cannot pass."""
    if path == "rows":
        layers = list(range(model.config.get_text_config().num_hidden_layers))
        scores = grad_ellm_module.attribute_rows(model, targets, layers, "loosened")
        assert scores is not None, "the rows path fell back"
        return scores
    return get_method("grad-ellm").attribute(model, targets, MethodOptions(grad_path=path))


# -- given continuations ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def greedy_pair(explainer):
    """The greedy generation of PROMPT, and the same tokens given back as a continuation."""
    methods = ["grad-ellm", "saliency", "attention"]
    generated = explainer.explain("g", {"text": PROMPT}, ExplainSettings(task="generate", max_new_tokens=8, methods=methods))
    steps = [r for r in generated if r["method"] == "grad-ellm"]
    text = explainer.tokenizer.decode([r["target_id"] for r in steps])
    given = explainer.explain("g", {"text": PROMPT}, ExplainSettings(task="generate", methods=methods), continuation=text)
    return generated, given


def test_a_given_greedy_continuation_gives_the_generation_records(greedy_pair):
    generated, given = greedy_pair
    assert len(generated) == len(given) == 3 * 8
    for a, b in zip(generated, given, strict=True):
        assert (a["method"], a["step"], a["target_id"], a["input_ids"]) == (b["method"], b["step"], b["target_id"], b["input_ids"])
        assert (a["target_source"], b["target_source"]) == ("generated", "given")
        assert a["source_mask"] == b["source_mask"] and a["target_logit"] == pytest.approx(b["target_logit"], rel=1e-5)
        scale = max(abs(x) for x in a["scores"])
        assert scale > 0
        assert max(abs(x - y) for x, y in zip(a["scores"], b["scores"], strict=True)) <= 1e-5 * scale
    assert generated[0]["config"]["max_new_tokens"] == 8 and given[0]["config"]["max_new_tokens"] is None


def test_the_continuation_is_tokenised_on_its_own_after_the_prompt(explainer):
    """Tokenising prompt and continuation together could merge tokens across the boundary; we never do."""
    continuation = "Waves roll in.\nThe tide turns."
    prepared = explainer.prepare("c", {"text": PROMPT}, ExplainSettings(task=None), continuation=continuation)
    ids = explainer.tokenizer(continuation, add_special_tokens=False)["input_ids"]
    targets = prepared.targets
    assert prepared.task == "generate" and prepared.target_source == "given"
    assert targets.target_ids.tolist() == ids
    length = targets.input_ids.numel() - len(ids)
    assert targets.input_ids[length:].tolist() == ids
    assert targets.positions.tolist() == list(range(length - 1, length - 1 + len(ids)))
    assert explainer.tokenizer.decode(targets.input_ids[length:]) == continuation
    assert not targets.source_mask[length:].any(), "the continuation is target context, never source"


# -- Grad-ELLM: rows path = full path = reference -----------------------------------------------------


@pytest.fixture(scope="session")
def continuation_targets(explainer):
    text = " The sea is wide and deep, and it covers most of the planet. Its waves never rest, day or night."
    prepared = explainer.prepare("c", {"text": PROMPT}, ExplainSettings(task="generate"), continuation=text)
    assert prepared.targets.steps >= 20
    return prepared.targets


def test_rows_path_equals_full_path_for_one_target(explainer):
    prepared = explainer.prepare("s", {"text": "a gorgeous, witty, seductive movie."}, ExplainSettings())
    targets = prepared.targets
    assert targets.prefix is not None and targets.steps == 1
    assert_rows_equal_full(grad_ellm(explainer.model, targets, "rows"), grad_ellm(explainer.model, targets, "full"))


def test_rows_path_equals_full_path_for_a_long_continuation(explainer, continuation_targets, filled_lengths):
    rows = grad_ellm(explainer.model, continuation_targets, "rows")
    assert_rows_equal_full(rows, grad_ellm(explainer.model, continuation_targets, "full"))
    # without the pipeline's cache the method fills its own, which stops at the first target: the rows
    # pass computes the later rows' keys and values itself, with the same result
    bare = Targets(continuation_targets.input_ids, continuation_targets.positions, continuation_targets.target_ids,
                   continuation_targets.source_mask)
    assert_rows_equal_full(grad_ellm(explainer.model, bare, "rows"), rows)
    assert filled_lengths == [int(continuation_targets.positions[0]) + 1]


def test_every_continuation_step_equals_the_slow_reference(explainer, continuation_targets):
    targets = continuation_targets
    got = grad_ellm(explainer.model, targets, "rows")
    layers = list(range(explainer.model.config.get_text_config().num_hidden_layers))
    ref = reference_scores(eager_model(explainer.source), targets.input_ids, targets.positions, targets.target_ids, layers)
    for step in range(targets.steps):
        scale = float(ref[step].abs().max())
        torch.testing.assert_close(got[step].double(), ref[step], rtol=REF_RTOL, atol=REF_ATOL_OF_MAX * scale)


def test_the_rows_pass_takes_its_own_attention_on_every_layer(explainer, continuation_targets, monkeypatch):
    """The rows pass's attention (no gradient towards cached columns) serves every layer, and gives the
    scores that SDPA's attention gives in the same pass."""
    from gradellm_cli import row_pass

    calls: list[int] = []
    original = row_pass.rows_attention

    def counting(*args):
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(row_pass, "rows_attention", counting)
    own = grad_ellm(explainer.model, continuation_targets, "rows")
    assert len(calls) == explainer.model.config.get_text_config().num_hidden_layers
    monkeypatch.setattr(grad_ellm_module, "ROWS_ATTENTION_BYTES", 0)  # over the budget: SDPA
    sdpa = grad_ellm(explainer.model, continuation_targets, "rows")
    assert len(calls) == explainer.model.config.get_text_config().num_hidden_layers
    assert_rows_equal_full(own, sdpa)


def test_rows_path_beyond_gemma_sliding_window(gemma3):
    """700 tokens: sliding layers see only the last 512 positions of each row, full layers all of them."""
    ids = long_input_ids(gemma3.tokenizer, 700)
    positions = torch.arange(660, 699)  # rows far beyond the window, explaining the text's real next tokens
    targets = Targets(ids, positions, ids[positions + 1], torch.ones(ids.numel(), dtype=torch.bool))
    assert_rows_equal_full(grad_ellm(gemma3.model, targets, "rows"), grad_ellm(gemma3.model, targets, "full"))
    one = Targets(ids, positions[-1:], ids[-1:], targets.source_mask)
    assert_rows_equal_full(grad_ellm(gemma3.model, one, "rows"), grad_ellm(gemma3.model, one, "full"))


def test_rows_path_with_a_contrast_equals_full_path(explainer, continuation_targets):
    targets = Targets(continuation_targets.input_ids, continuation_targets.positions, continuation_targets.target_ids,
                      continuation_targets.source_mask, contrast_ids=torch.full_like(continuation_targets.target_ids, 11))
    assert_rows_equal_full(grad_ellm(explainer.model, targets, "rows"), grad_ellm(explainer.model, targets, "full"))


def test_chunked_cache_fill_gives_the_plain_forward_logits(smollm2):
    ids = long_input_ids(smollm2.tokenizer, 300)
    positions = torch.tensor([5, 150, 299])
    with torch.no_grad():
        plain = smollm2.model(ids[None], use_cache=False).logits[0, positions].float()
    prefix, logits = fill_cache(smollm2.model, ids, positions, chunk=64)
    assert prefix.length == 300
    torch.testing.assert_close(logits, plain, rtol=1e-4, atol=1e-3)
    shuffled = fill_cache(smollm2.model, ids, positions.flip(0), chunk=64)[1]
    torch.testing.assert_close(shuffled, logits.flip(0))
    # without the head: the final hidden states at the same positions, from which the head gives those logits
    hidden = fill_cache(smollm2.model, ids, positions.flip(0), chunk=64, head=False)[1]
    with torch.no_grad():
        torch.testing.assert_close(smollm2.model.lm_head(hidden).float().flip(0), logits, rtol=1e-4, atol=1e-3)


def test_a_model_the_rows_pass_cannot_serve_falls_back_to_the_full_path(smollm2, monkeypatch):
    prepared = smollm2.prepare("s", {"text": "dull and long"}, ExplainSettings())
    expected = grad_ellm(smollm2.model, prepared.targets, "full")
    monkeypatch.setattr(grad_ellm_module, "row_masks", lambda *args: None)
    monkeypatch.setattr(grad_ellm_module, "_FELL_BACK", set())
    with pytest.warns(UserWarning, match="full forward"):
        got = get_method("grad-ellm").attribute(smollm2.model, prepared.targets, MethodOptions())
    assert torch.equal(got, expected)


def test_rows_passes_of_a_few_rows_each_with_their_own_cache(explainer, continuation_targets, monkeypatch):
    """Steps split over several rows passes (7 rows each here), the cache filled by the method itself,
    each pass's last row checked: the scores of one pass over all rows."""
    bare = Targets(continuation_targets.input_ids, continuation_targets.positions, continuation_targets.target_ids,
                   continuation_targets.source_mask)
    whole = grad_ellm(explainer.model, bare, "rows")
    monkeypatch.setattr(grad_ellm_module, "ROWS_PER_PASS", 7)
    assert_rows_equal_full(grad_ellm(explainer.model, bare, "rows"), whole)


def test_rows_logits_that_disagree_with_the_model_fall_back_with_or_without_the_pipeline_cache(smollm2, monkeypatch):
    """The rows' target logits are checked against the model's own forward pass: every target's with the
    pipeline's cache, each rows pass's last row with a cache the method fills itself."""
    prepared = smollm2.prepare("s", {"text": "dull and long"}, ExplainSettings())
    targets = prepared.targets
    bare = Targets(targets.input_ids, targets.positions, targets.target_ids, targets.source_mask)
    layers = list(range(smollm2.model.config.get_text_config().num_hidden_layers))
    original = grad_ellm_module.head_logits
    monkeypatch.setattr(grad_ellm_module, "head_logits", lambda *args: original(*args) + 0.5)  # a head it does not know
    monkeypatch.setattr(grad_ellm_module, "_FELL_BACK", set())
    with pytest.warns(UserWarning, match="differ from the model's own"):
        assert grad_ellm_module.attribute_rows(smollm2.model, targets, layers, "loosened") is None
    monkeypatch.setattr(grad_ellm_module, "_FELL_BACK", set())
    monkeypatch.setattr(grad_ellm_module, "_HEADS_CHECKED", weakref.WeakKeyDictionary())  # the head is checked once per model
    with pytest.warns(UserWarning, match="differ from the model's own"):
        assert grad_ellm_module.attribute_rows(smollm2.model, bare, layers, "loosened") is None


@pytest.mark.parametrize("steps", [1, 12])
def test_a_wrong_mask_with_the_methods_own_cache_falls_back(smollm2, monkeypatch, steps):
    """A cache the method fills itself (the whole input for one target, up to the first target for a
    continuation) still catches a mask that lets the rows see what they should not."""
    ids = long_input_ids(smollm2.tokenizer, 60)
    positions = torch.arange(59 - steps, 59)
    bare = Targets(ids, positions, ids[positions + 1], torch.ones(60, dtype=torch.bool))
    layers = list(range(smollm2.model.config.get_text_config().num_hidden_layers))
    original = grad_ellm_module.row_masks
    monkeypatch.setattr(grad_ellm_module, "row_masks", lambda *args: torch.zeros_like(original(*args)))  # every column open
    monkeypatch.setattr(grad_ellm_module, "_FELL_BACK", set())
    with pytest.warns(UserWarning, match="differ from the model's own"):
        assert grad_ellm_module.attribute_rows(smollm2.model, bare, layers, "loosened") is None


def test_chunked_fill_with_skipped_keys_across_gemma_sliding_window(gemma3, monkeypatch):
    """Chunks of 64 over 700 tokens: sliding layers skip the keys before their window (made to apply
    at any length here), and the logits and the rows path's scores stay those of one plain pass."""
    from gradellm_cli import capture

    ids = long_input_ids(gemma3.tokenizer, 700)
    positions = torch.tensor([30, 599, 698])
    with torch.no_grad():
        plain = gemma3.model(ids[None], use_cache=False).logits[0, positions].float()
    monkeypatch.setattr(capture, "SKIP_KEYS_FROM", 1)
    skipped: list[int] = []
    original = capture.skip_invisible_keys

    def counting(key, value, mask):
        out = original(key, value, mask)
        skipped.append(key.shape[2] - out[0].shape[2])
        return out

    monkeypatch.setattr(capture, "skip_invisible_keys", counting)
    prefix, logits = fill_cache(gemma3.model, ids, positions, chunk=64)
    assert max(skipped) > 0, "some keys should have been skipped"
    torch.testing.assert_close(logits, plain, rtol=1e-4, atol=2e-3)
    rows, target_ids = positions[1:], ids[positions[1:] + 1]
    targets = Targets(ids, rows, target_ids, torch.ones(700, dtype=torch.bool), prefix=prefix,
                      target_logits=logits[1:][torch.arange(2), target_ids])
    bare = Targets(ids, rows, target_ids, targets.source_mask)
    assert_rows_equal_full(grad_ellm(gemma3.model, targets, "rows"), grad_ellm(gemma3.model, bare, "full"))


# -- chats -------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chat_records(explainer):
    settings = ExplainSettings(source_roles=("system", "user"), methods=["grad-ellm"])
    return explainer.explain("chat", None, settings, messages=CHAT)


def test_chat_source_is_exactly_the_chosen_messages(explainer, chat_records):
    record = chat_records[0]
    assert record["task"] == "chat" and record["target_source"] == "given"
    assert record["message_roles"] == [m["role"] for m in CHAT]
    tokens, index = record["tokens"], record["message_index"]
    for k, message in enumerate(CHAT[:-1]):  # every prompt message's tokens spell exactly its content
        assert "".join(t for t, i in zip(tokens, index, strict=True) if i == k) == message["content"]
    source = "".join(t for t, flag in zip(tokens, record["source_mask"], strict=True) if flag)
    assert source == "".join(m["content"] for m in CHAT[:-1] if m["role"] in ("system", "user"))
    reply = explainer.tokenizer(CHAT[-1]["content"], add_special_tokens=False)["input_ids"]
    assert [r["target_id"] for r in chat_records] == reply
    last = chat_records[-1]
    assert [i for i in last["message_index"] if i == len(CHAT) - 1] == [len(CHAT) - 1] * (len(reply) - 1)


def test_chat_user_only_source_and_per_message_sums(chat_records, explainer):
    user_only = explainer.prepare("chat", None, ExplainSettings(), messages=CHAT)
    roles = [CHAT[i]["role"] if i >= 0 else None for i in user_only.prompt.message_index.tolist()]
    flags = user_only.targets.source_mask.tolist()
    assert any(flags) and all(role == "user" for role, flag in zip(roles, flags, strict=True) if flag)
    record = chat_records[3]
    units = aggregate(record, by="message", all_tokens=True)
    index, scores = record["message_index"], record["scores"]
    by_message = {k: sum(s for s, i in zip(scores, index, strict=True) if i == k) for k in set(index) if k >= 0}
    seen = {}
    for unit in units:
        message = index[unit.positions[0]]
        if message >= 0:
            seen[message] = seen.get(message, 0.0) + unit.score
    assert seen.keys() == by_message.keys() and all(seen[k] == pytest.approx(by_message[k], rel=1e-12) for k in seen)
    source_units = aggregate(record, by="message")
    assert [u.label for u in source_units] == ["system", "user", "user"]


def test_chat_without_a_reply_generates_one(smollm2):
    messages = [{"role": "user", "content": "Say hello."}]
    records = smollm2.explain("gen", None, ExplainSettings(max_new_tokens=3), messages=messages)
    assert records and all(r["target_source"] == "generated" and r["task"] == "chat" for r in records)
    assert records[0]["message_roles"] == ["user", "assistant"]


@pytest.mark.parametrize(
    ("messages", "message"),
    [
        ("hello", "non-empty list"),
        ([{"content": "hi"}], "has no role"),
        ([{"role": "user"}], "no text content"),
        ([{"role": "wizard", "content": "hi"}], "unknown role 'wizard'"),
        ([{"role": "system", "content": "Be brief."}, {"role": "assistant", "content": "Ok."}], "no message before the reply has a source"),
        ([{"role": "assistant", "content": "Ok."}], "a message before the assistant"),
    ],
)
def test_bad_chats_are_one_line_errors(smollm2, messages, message):
    with pytest.raises(BadInput, match=message) as caught:
        smollm2.prepare("bad", None, ExplainSettings(), messages=messages)
    assert caught.value.record == "bad"


def test_a_template_that_rejects_the_roles_is_a_one_line_error(smollm2, monkeypatch):
    template = "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}x"
    monkeypatch.setattr(smollm2.tokenizer, "chat_template", template)
    with pytest.raises(BadInput, match="rejects these messages: System role not supported"):
        smollm2.prepare("bad", None, ExplainSettings(), messages=CHAT)


def test_plain_text_fallback_without_a_chat_template(gemma3):
    assert not getattr(gemma3.tokenizer, "chat_template", None)
    prepared = gemma3.prepare("chat", None, ExplainSettings(), messages=CHAT)
    assert prepared.prompt.text.startswith("System:\nYou are terse.") and prepared.prompt.text.endswith("Assistant:\n")
    assert prepared.targets.input_ids[0] == gemma3.tokenizer.bos_token_id


# -- contrastive targets -------------------------------------------------------------------------------


def test_contrastive_saliency_is_the_difference_of_the_two_gradients(explainer):
    prepared = explainer.prepare("s", {"text": "a gorgeous, witty, seductive movie."}, ExplainSettings(contrast="Negative"))
    targets = prepared.targets
    assert targets.contrast_ids is not None and int(targets.contrast_ids[0]) != int(targets.target_ids[0])
    got = get_method("saliency").attribute(explainer.model, targets, MethodOptions(target_fn="logit"))[0]
    embeds = input_embeddings(explainer.model, targets.input_ids).detach().requires_grad_(True)
    with torch.enable_grad():
        logits = explainer.model(inputs_embeds=embeds, use_cache=False, logits_to_keep=1).logits[0, -1]
        target, contrast = torch.autograd.grad(logits[targets.target_ids[0]], embeds, retain_graph=True)[0], torch.autograd.grad(
            logits[targets.contrast_ids[0]], embeds
        )[0]
    expected = (target - contrast)[0].norm(dim=-1)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6 * float(expected.max()))
    alone = (target[0].norm(dim=-1) - expected).abs().max()
    assert alone > 1e-3 * float(expected.max()), "the contrast should change the scores"


def test_contrast_records_and_bad_contrasts(smollm2):
    settings = ExplainSettings(contrast="Negative", methods=["grad-ellm"])
    (record,) = smollm2.explain("s", {"text": "a gorgeous, witty, seductive movie."}, settings)
    assert record["contrast_id"] == smollm2.tokenizer.convert_tokens_to_ids("Negative") and record["contrast_token"] == "Negative"
    assert record["config"]["contrast"] == "Negative"
    given = "Waves roll."
    ids = smollm2.tokenizer(given, add_special_tokens=False)["input_ids"]
    text = ExplainSettings(task="generate", contrast="Tides pour.")
    assert len(smollm2.tokenizer("Tides pour.", add_special_tokens=False)["input_ids"]) == len(ids)
    prepared = smollm2.prepare("c", {"text": PROMPT}, text, continuation=given)
    assert prepared.targets.contrast_ids.tolist() == smollm2.tokenizer("Tides pour.", add_special_tokens=False)["input_ids"]
    with pytest.raises(BadInput, match="is the target itself"):
        smollm2.prepare("s", {"text": "a gorgeous movie"}, ExplainSettings(contrast=record["target_token"]))
    with pytest.raises(BadInput, match="not one"):
        smollm2.prepare("s", {"text": "a gorgeous movie"}, ExplainSettings(contrast="Negative Positive"))
    with pytest.raises(BadInput, match="equals the target at every step"):
        smollm2.prepare("c", {"text": PROMPT}, ExplainSettings(task="generate", contrast=given), continuation=given)
    with pytest.raises(BadInput, match="as many as the continuation"):
        smollm2.prepare("c", {"text": PROMPT}, ExplainSettings(task="generate", contrast="a b c d e f g"), continuation=given)


def test_bad_continuations(smollm2):
    with pytest.raises(BadInput, match="continuation is empty"):
        smollm2.prepare("c", {"text": PROMPT}, ExplainSettings(task=None), continuation="")
    with pytest.raises(BadInput, match="needs a generation task"):
        smollm2.prepare("c", {"text": PROMPT}, ExplainSettings(task="sentiment"), continuation="Yes.")
    smollm2.context_length, saved = 40, smollm2.context_length
    try:
        with pytest.raises(BadInput, match="continuation tokens exceeds the context of 40"):
            smollm2.prepare("c", {"text": "Hi."}, ExplainSettings(task="raw"), continuation="word " * 60)
    finally:
        smollm2.context_length = saved


# -- tokenisation with a dummy prefix, resuming ------------------------------------------------------


class DummyPrefixTokenizer:
    """A stand-in for a SentencePiece tokenizer with a dummy prefix (Llama-2): text at the start of a
    document gets a word marker, so "Paris" alone is "▁Paris", while after a newline it is "Paris"."""

    pieces = ["▁", "\n", "▁Paris", "Paris", "▁a", "a", "▁is", "▁big"]

    def __call__(self, text, add_special_tokens=False):
        rest, out = "▁" + text.replace(" ", "▁"), []
        while rest:  # longest piece first
            piece = max((p for p in self.pieces if rest.startswith(p)), key=len)
            out.append(self.pieces.index(piece))
            rest = rest[len(piece) :]
        return {"input_ids": out}

    def convert_ids_to_tokens(self, index):
        return self.pieces[index]


def test_a_continuation_after_a_dummy_prefix_tokenizer_has_no_word_marker():
    from gradellm_cli.prompts import text_ids

    tokenizer = DummyPrefixTokenizer()
    assert tokenizer("Paris", add_special_tokens=False)["input_ids"] == [2]  # "▁Paris": what a bare call gives
    assert text_ids(tokenizer, "Paris") == [3]  # "Paris", as after a prompt
    assert text_ids(tokenizer, "Paris is big") == [3, 6, 7]


def test_resume_refuses_records_of_another_task(tmp_path):
    from types import SimpleNamespace

    import orjson

    from gradellm_cli.pipelines.explaining import resume_pairs as _resume

    def config(settings, name, task=None, source=None):
        return {"task": task or settings.task_for()}

    explainer = SimpleNamespace(model_name="m", method_config=config)
    out = tmp_path / "out.jsonl"
    record = {"kind": "heatmap", "id": "a", "model": "m", "method": "grad-ellm", "task": "sentiment", "target_source": "label",
              "config": {"task": "sentiment"}, "step": 0, "steps": 1}
    out.write_bytes(orjson.dumps(record) + b"\n")
    assert _resume(str(out), False, explainer, ExplainSettings(task="sentiment")) == {("a", "grad-ellm")}
    with pytest.raises(BadInput, match="task is 'sentiment' there, 'raw' now"):
        _resume(str(out), False, explainer, ExplainSettings(task="raw"))
    given = record | {"task": "generate", "target_source": "given", "config": {"task": "generate"}}
    out.write_bytes(orjson.dumps(given) + b"\n")
    assert _resume(str(out), False, explainer, ExplainSettings(task=None)) == {("a", "grad-ellm")}
    with pytest.raises(BadInput, match="task is 'generate' there, 'raw' now"):
        _resume(str(out), False, explainer, ExplainSettings(task="raw"))
