"""Masked-diffusion infilling: samplers, model adapters, the trace-conditioned canvas."""

from dlmpo.dlm.base import DiffusionLM
from dlmpo.dlm.canvas import ContextItem
from dlmpo.dlm.infill import Candidate, InfillResult, infill
from dlmpo.dlm.sampler import ALGS, Sampler, SamplerConfig
from dlmpo.dlm.specs import DLM_SPEC_HELP, load_dlm

__all__ = ["ALGS", "Candidate", "ContextItem", "DLM_SPEC_HELP", "DiffusionLM", "InfillResult", "Sampler",
           "SamplerConfig", "infill", "load_dlm"]
