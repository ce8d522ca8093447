"""The public Python API: lazy exports, and the example that goes from a text to an HTML page."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gradellm_cli

ROOT = Path(__file__).resolve().parents[1]


def test_importing_the_package_loads_no_torch_and_every_export_resolves():
    code = "import sys, gradellm_cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    for name in gradellm_cli.__all__:
        assert getattr(gradellm_cli, name) is not None
        assert name == "__version__" or getattr(gradellm_cli, name).__doc__, f"{name} has no docstring"


def test_list_methods_names_every_registered_method():
    methods = gradellm_cli.list_methods()
    assert next(iter(methods)) == "grad-ellm" and {"udig", "dig", "value-zeroing"} <= methods.keys()
    assert all(description and "\n" not in description for description in methods.values())


def test_the_python_example_goes_from_a_text_to_an_html_page(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "python_api.py"), str(tmp_path)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "grad-ellm: AUC pi-Soft-NS" in result.stdout and "saliency: target" in result.stdout
    page = (tmp_path / "heatmaps.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "review-1" in page


def test_a_sweep_from_python_writes_valid_records_and_resumes(tmp_path):
    import orjson

    from gradellm_cli import SweepOptions, sweep_to, validate
    from gradellm_cli.sweep import read_run as run_records

    options = SweepOptions.from_flat(models=("smollm2",), datasets=("sst2",), methods=("random", "attention"), limits={"sst2": 2},
                                     metrics=("soft",), samples=1, pi_grid=(0.25, 0.75), device="cpu")
    first = sweep_to(tmp_path / "run", options)
    assert (first.ran, first.skipped, first.failed) == (4, 0, 0)
    manifest = orjson.loads((tmp_path / "run" / "manifest.json").read_bytes())
    assert manifest["options"]["metrics"]["samples"] == 1 and manifest["options"]["data"]["limits"] == {"sst2": 2}
    heatmaps, metrics = run_records(tmp_path / "run")
    assert len(heatmaps) == len(metrics) == 4
    assert all(validate(record) == "heatmap" for record in heatmaps) and all(validate(record) == "metric" for record in metrics)
    again = sweep_to(tmp_path / "run", options)
    assert (again.ran, again.skipped) == (0, 4)
