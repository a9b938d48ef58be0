"""Built-in tasks: SST-2, SST-5, MRPC, SNLI, from local files (the layout of shared/data) or from
Hugging Face datasets when online."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from dlmpo.errors import DataError, UserError
from dlmpo.files import read_lines
from dlmpo.tasks.base import Example, SplitSet
from dlmpo.tasks.classification import ClassificationTask


def _detok(text: str) -> str:
    """Undo the corpus tokenisation that would distract the target (MRPC's <QUOTE>)."""
    return text.replace("<QUOTE>", '"').strip()


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"Data file {path} does not exist: check --data-dir or DLMPO_DATA_DIR.")
    return read_lines(path, "Data")


def _sst2_file(path: Path, split: str) -> list[Example]:
    rows = []
    for n, line in enumerate(_read_lines(path), 1):
        if not line.strip():
            continue
        text, sep, label = line.rpartition("\t")
        if not sep or label.strip() not in ("0", "1"):
            raise DataError(f"{path}, line {n}: expected 'sentence<TAB>0|1'.")
        rows.append(Example(f"{split}:{n}", {"sentence": text.strip()}, SST2_LABELS[int(label)]))
    return rows


def _sst5_file(path: Path, split: str) -> list[Example]:
    rows = []
    for n, line in enumerate(_read_lines(path), 1):
        if not line.strip():
            continue
        label, _, text = line.partition(" ")
        if label not in ("0", "1", "2", "3", "4") or not text.strip():
            raise DataError(f"{path}, line {n}: expected 'LABEL sentence' with LABEL in 0..4.")
        rows.append(Example(f"{split}:{n}", {"sentence": text.strip()}, SST5_LABELS[int(label)]))
    return rows


def _mrpc_file(path: Path, split: str) -> list[Example]:
    lines = _read_lines(path)
    rows = []
    reader = csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)
    for n, fields in enumerate(reader, 1):
        if n == 1 and fields and fields[0].lower().lstrip("\ufeff") == "quality":
            continue
        if not fields:
            continue
        if len(fields) != 5 or fields[0] not in ("0", "1"):
            raise DataError(f"{path}, line {n}: expected 5 tab-separated fields with Quality 0|1.")
        rows.append(
            Example(
                f"{split}:{fields[1]}-{fields[2]}",
                {"sentence1": _detok(fields[3]), "sentence2": _detok(fields[4])},
                MRPC_LABELS[int(fields[0])],
            )
        )
    return rows


def _snli_file(path: Path, split: str) -> list[Example]:
    rows = []
    for n, line in enumerate(_read_lines(path), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            gold = obj["gold_label"]
            pair = {"premise": obj["sentence1"].strip(), "hypothesis": obj["sentence2"].strip()}
        except (json.JSONDecodeError, KeyError, AttributeError, TypeError):
            raise DataError(
                f"{path}, line {n}: expected a JSON object with sentence1, sentence2, gold_label."
            ) from None
        if gold == "-":
            continue
        if gold not in SNLI_LABELS:
            raise DataError(f"{path}, line {n}: gold_label '{gold}' is not one of {SNLI_LABELS}.")
        rows.append(Example(f"{split}:{obj.get('pairID', n)}", pair, gold))
    return rows


SST2_LABELS = ["negative", "positive"]
SST5_LABELS = ["very negative", "negative", "neutral", "positive", "very positive"]
MRPC_LABELS = ["not equivalent", "equivalent"]
SNLI_LABELS = ["entailment", "neutral", "contradiction"]


@dataclass(frozen=True)
class BuiltinSpec:
    name: str
    labels: list[str]
    synonyms: dict[str, list[str]]
    template: str
    seed_prompt: str
    local_files: dict[str, tuple[str, Callable[[Path, str], list[Example]]]]
    hf_id: tuple[str, str | None]
    hf_fields: dict[str, str]
    hf_label_names: list[str]


BUILTINS: dict[str, BuiltinSpec] = {
    "sst2": BuiltinSpec(
        name="sst2",
        labels=SST2_LABELS,
        synonyms={"positive": ["pos"], "negative": ["neg"]},
        template="Review: {sentence}\nIs this review positive or negative?",
        seed_prompt="You are a sentiment classifier. Reply with exactly one word: positive or negative.",
        local_files={"train": ("train.tsv", _sst2_file), "dev": ("dev.tsv", _sst2_file), "test": ("test.tsv", _sst2_file)},
        hf_id=("stanfordnlp/sst2", None),
        hf_fields={"sentence": "sentence"},
        hf_label_names=SST2_LABELS,
    ),
    "sst5": BuiltinSpec(
        name="sst5",
        labels=SST5_LABELS,
        synonyms={
            "very negative": ["strongly negative", "extremely negative"],
            "very positive": ["strongly positive", "extremely positive"],
            "neutral": ["mixed"],
        },
        template=(
            "Review: {sentence}\n"
            "Is this review very negative, negative, neutral, positive or very positive?"
        ),
        seed_prompt=(
            "Classify the sentiment of the movie review as very negative, negative, neutral, "
            "positive or very positive."
        ),
        local_files={"train": ("train.txt", _sst5_file), "dev": ("dev.txt", _sst5_file), "test": ("test.txt", _sst5_file)},
        hf_id=("SetFit/sst5", None),
        hf_fields={"sentence": "text"},
        hf_label_names=SST5_LABELS,
    ),
    "mrpc": BuiltinSpec(
        name="mrpc",
        labels=MRPC_LABELS,
        synonyms={
            "equivalent": ["yes", "paraphrase", "paraphrases", "same meaning"],
            "not equivalent": ["no", "not paraphrase", "not a paraphrase", "not paraphrases",
                               "different meaning", "not_equivalent"],
        },
        template=(
            "Sentence 1: {sentence1}\nSentence 2: {sentence2}\n"
            "Are the two sentences equivalent or not equivalent?"
        ),
        seed_prompt=(
            "Decide whether the two sentences are paraphrases of each other. "
            "Answer equivalent or not equivalent."
        ),
        local_files={"train": ("train.tsv", _mrpc_file), "test": ("test.tsv", _mrpc_file)},
        hf_id=("nyu-mll/glue", "mrpc"),
        hf_fields={"sentence1": "sentence1", "sentence2": "sentence2"},
        hf_label_names=MRPC_LABELS,
    ),
    "snli": BuiltinSpec(
        name="snli",
        labels=SNLI_LABELS,
        synonyms={
            "entailment": ["entails", "entailed", "implies"],
            "contradiction": ["contradicts", "contradictory", "contradict"],
            "neutral": ["neither", "unrelated"],
        },
        template=(
            "Premise: {premise}\nHypothesis: {hypothesis}\n"
            "Is the relation entailment, neutral or contradiction?"
        ),
        seed_prompt=(
            "Decide whether the premise entails the hypothesis, contradicts it, or neither. "
            "Answer entailment, neutral or contradiction."
        ),
        local_files={"train": ("dev_sample.jsonl", _snli_file), "test": ("test.jsonl", _snli_file)},
        hf_id=("stanfordnlp/snli", None),
        hf_fields={"premise": "premise", "hypothesis": "hypothesis"},
        hf_label_names=SNLI_LABELS,
    ),
}


def _load_local(spec: BuiltinSpec, data_dir: Path) -> dict[str, list[Example]]:
    folder = data_dir / spec.name
    if not folder.is_dir():
        raise DataError(
            f"No folder {folder} for task '{spec.name}': point --data-dir (or DLMPO_DATA_DIR) at a "
            f"directory holding {spec.name}/."
        )
    # the first file (train) must be there; the others are read when they are (a labelled test
    # file, when present, is the held-out split instead of one carved from dev)
    present = {split: (file, reader) for i, (split, (file, reader)) in enumerate(spec.local_files.items())
               if i == 0 or (folder / file).is_file()}
    return {split: reader(folder / file, split) for split, (file, reader) in present.items()}


def _load_hub(spec: BuiltinSpec) -> dict[str, list[Example]]:
    try:
        import datasets
    except ImportError:
        raise UserError(
            f"Task '{spec.name}' needs data: pass --data-dir (or set DLMPO_DATA_DIR) to local files, "
            "or `pip install datasets` to load it from the Hugging Face hub."
        ) from None
    repo, config = spec.hf_id
    try:
        ds = datasets.load_dataset(repo, config)
    except Exception as exc:  # network, auth or missing dataset: one sentence for the user
        raise DataError(
            f"Could not load {repo} from the Hugging Face hub ({type(exc).__name__}); "
            "pass --data-dir to use local files."
        ) from None
    out: dict[str, list[Example]] = {}
    for hf_split, ours in (("train", "train"), ("validation", "dev"), ("test", "test")):
        if hf_split not in ds:
            continue
        rows = []
        for i, row in enumerate(ds[hf_split]):
            label = row["label"]
            if label is None or label < 0:
                continue
            inputs = {ours_field: _detok(str(row[hf_field])) for ours_field, hf_field in spec.hf_fields.items()}
            rows.append(Example(f"{ours}:{i}", inputs, spec.hf_label_names[label]))
        if rows:
            out[ours] = rows
    return out


def load_builtin(name: str, data_dir: Path | None, split_seed: int = 0) -> ClassificationTask:
    spec = BUILTINS[name]
    if data_dir is not None:
        available = _load_local(spec, data_dir)
        source = f"{spec.name} (local files in {data_dir / spec.name})"
    else:
        available = _load_hub(spec)
        source = f"{spec.name} (Hugging Face {spec.hf_id[0]})"
    splits = SplitSet.from_available(available, source, seed=split_seed)
    return ClassificationTask(
        name=spec.name,
        seed_prompt=spec.seed_prompt,
        labels=spec.labels,
        template=spec.template,
        splits=splits,
        synonyms=spec.synonyms,
    )
