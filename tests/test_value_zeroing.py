"""value-zeroing (the paper's baseline, one layer at a time) against a slow reference; value-occlusion
(the all-layers variant) against the published run's numbers."""

from __future__ import annotations

import sys
from pathlib import Path

import orjson
import pytest
import torch

if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

from reference_gradellm import eager_model  # noqa: E402
from reference_value_zeroing import reference_layer_rows  # noqa: E402

from gradellm_cli.errors import BadInput  # noqa: E402
from gradellm_cli.explain import ExplainSettings  # noqa: E402
from gradellm_cli.methods import MethodOptions, Targets, get_method  # noqa: E402
from gradellm_cli.methods.value_zeroing import layer_distances, normalise_rows  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TEXT = "a gorgeous, witty, seductive movie."


@pytest.fixture(scope="module")
def short(explainer):
    return explainer.prepare("short", {"text": TEXT}, ExplainSettings())


def test_value_zeroing_equals_the_slow_reference(explainer, short):
    targets = short.targets
    position = int(targets.positions[0])
    scored = torch.nonzero(targets.source_mask).flatten().tolist()
    reference = reference_layer_rows(eager_model(explainer.source), targets.input_ids, position, scored)
    distances = layer_distances(explainer.model, targets.input_ids, position, torch.tensor(scored))
    rows = normalise_rows(distances)
    # The deepest layers change least (distances down to about 1e-7 here), so float32 rounding of their
    # outputs moves a normalised row by up to about 4e-5 (measured on SmolLM2's last layer; the models'
    # RMSNorm computes in float32 whatever the model's dtype, so float64 does not remove it); the mean
    # over layers, the default score, stays within 1e-5.
    torch.testing.assert_close(rows, reference, rtol=0, atol=1e-4)
    for vz_layers, expected, atol in (("all", reference.mean(dim=0), 1e-5), ("last", reference[-1], 1e-4)):
        scores = get_method("value-zeroing").attribute(explainer.model, targets, MethodOptions(vz_layers=vz_layers))[0]
        torch.testing.assert_close(scores[scored].double(), expected, rtol=0, atol=atol)
        others = torch.ones(scores.numel(), dtype=torch.bool)
        others[scored] = False
        assert (scores[others] == 0).all()


def test_each_layer_row_sums_to_one(explainer, short):
    targets = short.targets
    sources = torch.nonzero(targets.source_mask).flatten()
    distances = layer_distances(explainer.model, targets.input_ids, int(targets.positions[0]), sources)
    assert distances.shape == (explainer.model.config.get_text_config().num_hidden_layers, sources.numel())
    assert (distances > 0).all()
    torch.testing.assert_close(normalise_rows(distances).sum(dim=1), torch.ones(distances.shape[0], dtype=torch.float64))


def test_the_explained_row_is_never_zeroed_but_can_be_measured(gemma3):
    """Without a chat template the explained position can be a source token (Gemma-3 base, a plain
    prompt): the method never zeroes it (the metrics never perturb it either), while layer_distances
    can, through the row's own key column, as the reference's v_proj row zeroing does."""
    ids = gemma3.tokenizer("The cat sat on the", return_tensors="pt")["input_ids"][0]
    position = ids.numel() - 1
    source = torch.ones(ids.numel(), dtype=torch.bool)
    source[0] = False  # <bos>
    targets = Targets(ids, torch.tensor([position]), ids[-1:], source)
    scored = list(range(1, position))
    reference = reference_layer_rows(eager_model(gemma3.source), ids, position, scored)
    scores = get_method("value-zeroing").attribute(gemma3.model, targets, MethodOptions())[0]
    assert scores[position] == 0
    torch.testing.assert_close(scores[scored].double(), reference.mean(dim=0), rtol=0, atol=1e-5)
    with_row = list(range(1, position + 1))
    rows = normalise_rows(layer_distances(gemma3.model, ids, position, torch.tensor(with_row)))
    torch.testing.assert_close(rows, reference_layer_rows(eager_model(gemma3.source), ids, position, with_row), rtol=0, atol=1e-4)


def test_value_zeroing_options_are_checked_and_recorded(smollm2):
    prepared = smollm2.prepare("s", {"text": TEXT}, ExplainSettings())
    with pytest.raises(BadInput, match="`vz_layers`"):
        get_method("value-zeroing").attribute(smollm2.model, prepared.targets, MethodOptions(vz_layers="first"))
    (record,) = smollm2.explain("s", {"text": TEXT}, ExplainSettings(methods=["value-zeroing"], options=MethodOptions(vz_layers="last")))
    assert record["config"]["vz_layers"] == "last" and record["config"]["representation"] == "layer_output"


def test_value_occlusion_gives_the_published_runs_numbers(smollm2):
    """The variant keeps its numbers under its new name: the published SST-2 record, recomputed."""
    published = None
    with open(ROOT / "examples" / "paper-run" / "heatmaps.jsonl", "rb") as handle:
        for line in handle:
            record = orjson.loads(line)
            if record["model"] == "smollm2" and record["config"].get("representation") == "final_hidden" and record["task"] == "sentiment":
                published = record
                break
    assert published is not None and published["method"] == "value-occlusion"
    ids = torch.tensor(published["input_ids"])
    targets = Targets(ids, torch.tensor([ids.numel() - 1]), torch.tensor([published["target_id"]]), torch.tensor(published["source_mask"]))
    scores = get_method("value-occlusion").attribute(smollm2.model, targets, MethodOptions())[0]
    expected = torch.tensor(published["scores"])
    torch.testing.assert_close(scores, expected, rtol=1e-4, atol=1e-5 * float(expected.max()))
