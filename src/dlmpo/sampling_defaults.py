"""The DLM sampler's defaults, one set for `SamplerConfig`, `infill()`, `dlmpo infill` and `optimize`.
Torch-free, so that the CLI can show them in its help without loading torch."""

STEPS = 64
ALG = "entropy"
TEMPERATURE = 0.7
TOP_P = 0.95
SCHEDULE = "even"
NOISE = "per_row"
KV_REUSE = True
