"""dlmpo: optimize the system prompt of a frozen LLM with a masked diffusion language model."""

__version__ = "0.1.0"
