"""Every setting of an optimization run, validated in one place (CLI flags, config files and the
Python API all end here)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dlmpo import sampling_defaults as sampler_defaults
from dlmpo.configfile import describe_validation_error, read_config_file
from dlmpo.errors import UserError
from dlmpo.optimizer.readability import READABILITY_NLL

DEFAULT_DLM = "embedded"
STRATEGIES = ("append", "span", "sentence", "regrow")


def _one_of(value: str, names, what: str) -> str:
    if value not in names:
        raise ValueError(f"unknown {what} '{value}': use {', '.join(names)}")
    return value


class OptimizeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    task: str = Field("sst2",
                      description="built-in task (sst2, sst5, mrpc, snli, tau-airline, tau-retail, humaneval) or a task config file")
    target: str = Field("embedded", description="target model specifier")
    dlm: str = Field(DEFAULT_DLM,
                     description="DLM specifier: embedded, dream:, llada:, mlm:<repo-or-path>, smollm2:base, tiny-random:<arch>")
    adapter: str | None = Field(None, description="output directory of `dlmpo train` applied to the DLM")
    proposer: str = Field("dlm", description="dlm; ar (a chat model fills the blanks); textgrad (critique, rewrite)")
    optimizer_model: str = Field("embedded", description="chat model of the ar and textgrad proposers (and of the gepa and mipro peers)")
    data_dir: str | None = Field(None, description="local data directory (else DLMPO_DATA_DIR, else the hub)")
    seed_prompt: str | None = Field(None, description="None: the task's; '' (or blank): no system prompt")
    allow_unisolated_code: bool = Field(False, description="code tasks: run generated code without isolation where "
                                        "no isolating sandbox (bwrap) exists")

    rounds: int = Field(5, ge=1, description="optimization rounds")
    candidates: int = Field(4, ge=1, description="candidate prompts per round")
    train_size: int = Field(32, ge=1, description="train pool for traces")
    val_size: int = Field(150, ge=1, description="val pool on which a challenger must beat the incumbent")
    confirm_size: int = Field(0, ge=0, description="val-split examples outside the val pool kept for a promising "
                              "challenger's second look, each look at half the level (0: one look at the level)")
    test_size: int = Field(2401, ge=1, description="held-out test pool: enough rows for a ±2-point 95% interval on any "
                           "accuracy; seed and best are scored on it part by part until --test-interval is reached "
                           "(the split when smaller)")
    test_part: int = Field(250, ge=1, description="test rows seed and best answer between two looks at the interval "
                           "of the gain (the best prompt is the seed prompt: the seed alone, on one part)")
    test_interval: float = Field(0.02, gt=0, le=1, description="stop scoring test once the 95% interval of the gain "
                                 "best - seed is this narrow (half-width), or the test pool runs out")
    batch_size: int = Field(8, ge=1, description="train examples run per round to make traces")
    screen_batch: int = Field(16, ge=1, description="examples on which candidates are screened: from the val split outside the val pool, "
                                "or train examples (not this round's traces) when it has too few")
    context_traces: int = Field(6, ge=1, description="traces shown to the DLM per candidate")
    max_answer_tokens: int | None = Field(None, ge=1, description="target answer cap [default: the task's, 16 for classification]")
    user_model: str = Field("scripted", description="τ-bench user simulator: a chat-model specifier, or scripted")

    strategy: str = Field("append", description="append, span, sentence, regrow; ',' alternates per candidate, '+' combines")
    mask_tokens: int = Field(16, ge=1, description="masks the DLM fills per appended or regrown edit")
    span_ratio: float = Field(0.25, gt=0, le=1, description="share of the prompt's words the span strategy masks")
    span_length: int = Field(6, ge=1, description="words per masked span (span strategy)")
    feedback: str = Field("metric", description="metric, judge, human or none")
    judge: str | None = Field(None, description="chat-model specifier of the judge (feedback judge)")
    human_notes: str | None = Field(None, description="notes file for feedback human (text or JSONL)")

    steps: int = Field(sampler_defaults.STEPS, ge=1, description="DLM denoising steps")
    alg: str = Field(sampler_defaults.ALG, description="DLM reveal rule: origin, maskgit_plus, topk_margin, entropy, random")
    alg_temp: float = Field(0.0, ge=0, description="> 0 samples the DLM's reveal order")
    temperature: float = Field(sampler_defaults.TEMPERATURE, ge=0, description="DLM (and writer) sampling temperature")
    top_p: float | None = Field(sampler_defaults.TOP_P, gt=0, le=1, description="DLM nucleus sampling (1 = off)")
    top_k: int | None = Field(None, ge=1, description="DLM top-k sampling")
    block_length: int | None = Field(None, ge=1, description="DLM semi-autoregressive blocks of this many masks")
    threshold: float | None = Field(None, gt=0, le=1, description="DLM parallel-decoding threshold")
    kv_refresh: int | None = Field(None, ge=1, description="DLM context K/V reuse, refreshed every k steps")
    schedule: str = Field(sampler_defaults.SCHEDULE, description="tokens revealed per step: even, dream, mdlm, auto (the DLM family's)")
    device: str | None = Field(None, description="DLM device: cpu, cuda, cuda:1 ... (none: cuda when available)")

    min_gain: int = Field(1, ge=1, description="paired wins minus losses a candidate needs on the screening batch to challenge")
    significance: float = Field(0.05, gt=0, le=1,
                                description="level of the one-sided sign test on val, split in halves over two looks when "
                                            "there is a confirmation pool; 1: off")
    patience: int | None = Field(None, ge=1, description="stop after this many rounds without improvement")
    max_calls: int | None = Field(None, ge=1, description="call budget: target and optimizer-model calls (never exceeded)")
    max_cost: float | None = Field(None, gt=0, description="dollar budget (never exceeded)")
    max_tokens: int | None = Field(None, ge=1, description="token budget (never exceeded)")
    max_seconds: float | None = Field(None, gt=0, description="stop starting rounds after this many seconds")
    max_prompt_chars: int | None = Field(None, ge=10, description="[default: max(4000, 1.5 x the seed prompt)]")
    copy_ngram: int = Field(8, ge=3, description="reject prompts sharing this many consecutive words with one train input "
                                                  "(the task's template, labels and seed prompt do not count)")
    readability: bool = Field(True, description="reject added text with repeated words or phrases, a broken article, "
                                                "a word cut off, or answers that contradict each other, before any "
                                                "target call")
    readability_nll: float | None = Field(READABILITY_NLL, gt=0,
                                          description="also reject added text whose perplexity under SmolLM2-135M-Instruct "
                                                      "exceeds this many nats per token; none: no perplexity check")

    seed: int = Field(0, description="random seed")
    concurrency: int | None = Field(None, ge=1, description="concurrent target calls")
    rpm: float | None = Field(None, gt=0, description="requests-per-minute limit")
    tpm: float | None = Field(None, gt=0, description="tokens-per-minute limit")
    prices: str | None = Field(None, description="JSON price table {model: [in, out]} in USD per 1M tokens")

    @field_validator("strategy")
    @classmethod
    def _strategy(cls, value: str) -> str:
        for alternative in value.split(","):
            for part in alternative.split("+"):
                if part.strip() not in STRATEGIES:
                    raise ValueError(f"unknown strategy '{part.strip()}': use {', '.join(STRATEGIES)} "
                                     "(',' alternates per candidate, '+' combines)")
        return value.replace(" ", "")

    @field_validator("proposer")
    @classmethod
    def _proposer(cls, value: str) -> str:
        from dlmpo.optimizer.registry import PROPOSERS

        return _one_of(value, PROPOSERS, "proposer")

    @field_validator("feedback")
    @classmethod
    def _feedback(cls, value: str) -> str:
        from dlmpo.optimizer.registry import FEEDBACK

        return _one_of(value, FEEDBACK, "feedback")

    @field_validator("readability_nll", mode="before")
    @classmethod
    def _readability_nll(cls, value):
        return None if isinstance(value, str) and value.strip().lower() in ("none", "off") else value

    @field_validator("alg")
    @classmethod
    def _alg(cls, value: str) -> str:
        from dlmpo.dlm.sampler import ALGS

        return _one_of(value, ALGS, "remasking rule")

    @field_validator("device")
    @classmethod
    def _device(cls, value: str | None) -> str | None:
        from dlmpo.devices import check_device

        try:
            return check_device(value)
        except UserError as exc:
            raise ValueError(str(exc).rstrip(".")) from None

    def identity(self) -> dict:
        """The settings that define the result: a resumed run must match them. How far a run goes
        (rounds, budgets, time, patience) is left out, so that the same command with a larger
        budget or more rounds continues a run and pays only for the new work. So are the test parts
        and the interval that ends test scoring: asking for a narrower one scores only the new rows."""
        return self.model_dump(exclude={"concurrency", "rpm", "tpm", "device", "rounds", "patience", "max_calls",
                                        "max_cost", "max_tokens", "max_seconds", "allow_unisolated_code", "test_part",
                                        "test_interval"})


def load_settings(config_file: str | Path | None, overrides: dict) -> OptimizeSettings:
    """Config file values, then explicit overrides (CLI flags that were given)."""
    base: dict = {}
    if config_file:
        raw = read_config_file(config_file)
        base = raw.get("optimize", raw)
        if not isinstance(base, dict):
            raise UserError(f"Config file {config_file}: [optimize] must be a table of settings.")
        base = dict(base)
    merged = {**base, **{k: v for k, v in overrides.items() if v is not None}}
    try:
        settings = OptimizeSettings.model_validate(merged)
    except ValidationError as exc:
        raise UserError(describe_validation_error(exc, f"Settings{f' in {config_file}' if config_file else ''}")) from None
    from dlmpo.optimizer.registry import FEEDBACK

    if FEEDBACK[settings.feedback].judge and not settings.judge:
        raise UserError("feedback 'judge' needs a judge model: pass --judge SPEC.")
    from dlmpo.lm.spec import parse_target_spec

    parse_target_spec(settings.target)
    parse_target_spec(settings.optimizer_model)
    if settings.user_model != "scripted":
        parse_target_spec(settings.user_model)
    if settings.judge:
        parse_target_spec(settings.judge)
    return settings
