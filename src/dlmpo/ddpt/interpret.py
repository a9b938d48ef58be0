"""Reading a soft prompt through the vocabulary: for each context position, the words whose
embeddings are nearest (cosine) to the tuned embedding and to the direction A z alone."""

from __future__ import annotations

import torch

from dlmpo.ddpt.soft_prompt import SoftPromptSpace


def nearest_words(space: SoftPromptSpace, vectors: torch.Tensor, k: int) -> list[list[str]]:
    table = torch.nn.functional.normalize(space.lm.embeddings.weight.detach().float(), dim=-1)
    scores = torch.nn.functional.normalize(vectors.detach().float(), dim=-1) @ table.T
    ids = scores.topk(k, dim=-1).indices.tolist()
    return [[space.lm.tokenizer.decode([i]) for i in row] for row in ids]


def interpret(space: SoftPromptSpace, z: torch.Tensor, k: int = 5) -> list[dict]:
    delta = space.delta(z)
    tuned = nearest_words(space, space.context + delta, k)
    direction = nearest_words(space, delta, k)
    base = [space.lm.tokenizer.decode([i]) for i in space.context_ids]
    return [{"position": i, "token": base[i], "nearest": tuned[i], "direction": direction[i],
             "shift": round(delta[i].norm().item() / max(space.context[i].norm().item(), 1e-8), 4)}
            for i in range(len(base))]
