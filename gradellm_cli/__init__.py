"""gradellm: Grad-ELLM explanations for decoder-only LLMs, and pi-Soft-NC/NS faithfulness metrics."""

__version__ = "0.3.0"
