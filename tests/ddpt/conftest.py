"""A tiny random Llama with SmolLM2's tokenizer, and a dozen HumanEval problems as a JSONL task:
the whole DDPT pipeline in seconds on a CPU."""

import json
import shutil

import pytest


@pytest.fixture(scope="session")
def tiny_target(tmp_path_factory) -> str:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from dlmpo.embedded_weights import embedded_model_dir

    folder = tmp_path_factory.mktemp("tiny-llama")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=49152, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         bos_token_id=1, eos_token_id=2, pad_token_id=2, tie_word_embeddings=True)
    LlamaForCausalLM(config).save_pretrained(folder)
    for f in embedded_model_dir().iterdir():
        if f.name.startswith(("tokenizer", "special_tokens")):
            shutil.copy(f, folder / f.name)
    return f"hf:{folder}"


@pytest.fixture(scope="session")
def problems_file(tmp_path_factory):
    from dlmpo.code.problems import read_humaneval

    path = tmp_path_factory.mktemp("problems") / "problems.jsonl"
    with path.open("w") as f:
        for p in read_humaneval()[:12]:
            f.write(json.dumps({"task_id": p.task_id, "prompt": p.prompt, "canonical_solution": p.canonical_solution,
                                "test": p.test, "entry_point": p.entry_point}) + "\n")
    return path


@pytest.fixture
def tiny_settings(tiny_target, problems_file) -> dict:
    return dict(task=str(problems_file), target=tiny_target, z_dim=16, clusters=2, directions_per_cluster=2,
                direction_steps=2, prompt_tuning_steps=2, denoiser_steps=40, code_steps=2, max_new_tokens=6,
                timeout_s=5.0)
