"""The embedded SmolLM2-135M through the soft-prompt path: a couple of small real checks."""

import torch

from dlmpo.code.completion import STOP_SEQUENCES
from dlmpo.code.problems import load_code_problems
from dlmpo.ddpt.config import MANUAL_CONTEXT, MANUAL_INSTRUCTION
from dlmpo.ddpt.soft_prompt import SoftPromptSpace
from dlmpo.ddpt.whitebox import WhiteBoxLM


def test_embedded_nll_and_generation_with_a_soft_prompt():
    lm = WhiteBoxLM("embedded", "cpu")
    problem = min(load_code_problems("humaneval").test, key=lambda p: len(p.prompt) + len(p.canonical_solution))
    prompt, solution = lm.ids(problem.prompt), lm.ids(problem.canonical_solution)
    space = SoftPromptSpace.create(lm, MANUAL_CONTEXT, MANUAL_INSTRUCTION, 32, seed=0)
    with torch.no_grad():
        none = lm.solution_nll(None, prompt, solution).item() / len(solution)
        manual = lm.solution_nll(space.prefix(None), prompt, solution).item() / len(solution)
    assert 0 < none < 5 and 0 < manual < 5  # a real code model, not noise (log 49152 = 10.8)
    z = torch.zeros(32, requires_grad=True)
    lm.solution_nll(space.prefix(z), prompt, solution).backward()
    assert z.grad is not None and z.grad.abs().sum() > 0  # gradients reach z through the frozen LM
    assert all(p.grad is None for p in lm.model.parameters())
    first = lm.generate([space.prefix(None)], [prompt], max_new_tokens=8, stops=STOP_SEQUENCES)
    assert first == lm.generate([space.prefix(None)], [prompt], max_new_tokens=8, stops=STOP_SEQUENCES)
