"""Custom tasks from JSONL/CSV files described in a config file (TOML, JSON or YAML).

```toml
[task]
name = "tickets"
data = "tickets.jsonl"            # or { train = "a.jsonl", val = "b.jsonl", test = "c.jsonl" }
input_fields = ["text"]
label_field = "label"
metric = "label"                  # label | exact | regex
labels = ["billing", "bug", "other"]
seed_prompt = "Route the support ticket."
template = "Ticket: {text}\\nCategory?"
```
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from dlmpo.configfile import describe_validation_error, read_config_file
from dlmpo.errors import DataError, UserError
from dlmpo.files import read_text
from dlmpo.jsonl import read_objects
from dlmpo.tasks.base import Example, Graded, SplitSet, TemplatedSplits
from dlmpo.tasks.classification import ClassificationTask
from dlmpo.tasks.metrics import accuracy


class CustomTaskConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    data: str | dict[str, str]
    input_fields: list[str]
    label_field: str = "label"
    metric: Literal["label", "exact", "regex"] = "label"
    labels: list[str] | None = None
    synonyms: dict[str, list[str]] = {}
    pattern: str | None = None
    seed_prompt: str
    template: str | None = None

    @model_validator(mode="after")
    def _check(self) -> CustomTaskConfig:
        if self.metric == "label" and not self.labels:
            raise ValueError("metric 'label' needs a list of labels")
        if self.metric == "regex":
            if not self.pattern:
                raise ValueError("metric 'regex' needs a pattern")
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern is not a valid regular expression ({exc})") from None
        if isinstance(self.data, dict):
            unknown = set(self.data) - {"train", "val", "dev", "test"}
            if unknown:
                raise ValueError(f"data has unknown split names {sorted(unknown)}; use train, val, test")
        return self

    def render_template(self) -> str:
        return self.template or "\n".join(f"{f}: {{{f}}}" for f in self.input_fields)


def _read_rows(path: Path, cfg: CustomTaskConfig, split: str) -> list[Example]:
    if not path.is_file():
        raise DataError(f"Data file {path} for task '{cfg.name}' does not exist.")
    needed = [*cfg.input_fields, cfg.label_field]
    rows: list[tuple[int, dict]] = []
    if path.suffix.lower() == ".csv":
        import io

        with io.StringIO(read_text(path, "Data"), newline="") as f:
            reader = csv.DictReader(f)
            try:
                missing = [k for k in needed if k not in (reader.fieldnames or [])]
                if missing:
                    raise DataError(f"{path}: the header lacks the column(s) {', '.join(missing)}.")
                rows = [(n, row) for n, row in enumerate(reader, 2)]
            except csv.Error as exc:
                raise DataError(f"{path}, line {reader.line_num}: not valid CSV ({exc}).") from None
    elif path.suffix.lower() in (".jsonl", ".json"):
        rows = read_objects(path)
    else:
        raise DataError(f"{path}: custom data must be .jsonl or .csv.")
    examples = []
    for n, row in rows:
        missing = [k for k in needed if row.get(k) in (None, "")]
        if missing:
            raise DataError(f"{path}, line {n}: missing field(s) {', '.join(missing)}.")
        label = str(row[cfg.label_field]).strip()
        if cfg.metric == "label" and label not in (cfg.labels or []):
            raise DataError(f"{path}, line {n}: label '{label}' is not one of {cfg.labels}.")
        inputs = {k: str(row[k]) for k in cfg.input_fields}
        examples.append(Example(f"{split}:{n}", inputs, label))
    return examples


@dataclass
class AnswerTask(TemplatedSplits):
    """Free-form answers scored by exact match, optionally after extracting with a regex."""

    name: str
    seed_prompt: str
    template: str
    splits: SplitSet
    pattern: str | None = None
    labels: list[str] | None = None

    def parse(self, output: str) -> str | None:
        text = output.strip()
        if self.pattern:
            m = re.search(self.pattern, text)
            if not m:
                return None
            text = m.group(1) if m.groups() else m.group(0)
        return " ".join(text.split()) or None

    def grade(self, example: Example, output: str) -> Graded:
        prediction = self.parse(output)
        ok = prediction is not None and prediction.casefold() == example.label.strip().casefold()
        if ok:
            return Graded(prediction, 1.0, f"Correct: the answer is '{example.label}'.")
        got = prediction if prediction is not None else "no extractable answer"
        return Graded(prediction, 0.0, f"Expected '{example.label}' but got '{got}'.")

    def metrics(self, examples: list[Example], predictions: list[str | None]) -> dict[str, float]:
        gold = [ex.label.casefold() for ex in examples]
        return {"accuracy": accuracy(gold, [p.casefold() if p else None for p in predictions])}


def load_custom(config_path: str | Path, split_seed: int = 0) -> ClassificationTask | AnswerTask:
    config_path = Path(config_path)
    raw = read_config_file(config_path)
    section = raw.get("task", raw)
    try:
        cfg = CustomTaskConfig.model_validate(section)
    except ValidationError as exc:
        raise UserError(describe_validation_error(exc, f"Task config {config_path}")) from None
    base = config_path.parent
    files = {"train": cfg.data} if isinstance(cfg.data, str) else dict(cfg.data)
    available = {split: _read_rows(base / p, cfg, split) for split, p in files.items()}
    splits = SplitSet.from_available(available, f"{cfg.name} ({config_path})", seed=split_seed)
    template = cfg.render_template()
    try:
        template.format(**{f: "" for f in cfg.input_fields})
    except (KeyError, IndexError, ValueError) as exc:
        raise UserError(f"Task config {config_path}: template refers to an unknown field {exc}.") from None
    if cfg.metric == "label":
        return ClassificationTask(
            name=cfg.name, seed_prompt=cfg.seed_prompt, labels=list(cfg.labels or []),
            template=template, splits=splits, synonyms=cfg.synonyms,
        )
    return AnswerTask(
        name=cfg.name, seed_prompt=cfg.seed_prompt, template=template, splits=splits,
        pattern=cfg.pattern if cfg.metric == "regex" else None,
    )
