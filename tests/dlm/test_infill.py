import pytest

from dlmpo.dlm import ContextItem, SamplerConfig, infill
from dlmpo.dlm.canvas import build_canvas
from dlmpo.dlm.masks import Span, parse_masked_text
from dlmpo.errors import UserError


def test_parse_masked_text():
    assert parse_masked_text("A [MASK:3] b [MASK:1]") == ["A ", Span(3), " b ", Span(1)]
    assert parse_masked_text("x <m><m> y", "<m>") == ["x ", Span(2), " y"]
    with pytest.raises(UserError, match="no mask"):
        parse_masked_text("nothing here")
    with pytest.raises(UserError, match="no mask tokens"):
        parse_masked_text("x [MASK:0]")


def test_infill_every_adapter(tiny):
    res = infill(tiny, "Answer briefly. [MASK:16]", n_candidates=3, sampler=SamplerConfig(steps=8, temperature=1.0), seed=1,
                 context=[{"user": "Review: fine film", "output": "positive", "score": 1, "feedback": "Correct."}])
    assert len(res.candidates) == 3 and res.nfe <= 8 and res.masks == 16 and res.traces_used == 1
    for cand in res.candidates:
        assert cand.text.startswith("Answer briefly.") and len(cand.spans) == 1
        assert tiny.tokenizer.convert_ids_to_tokens(tiny.mask_token_id) not in cand.text
    assert len({c.text for c in res.candidates}) > 1


def test_model_mask_token_in_text(tiny_dream):
    mask = tiny_dream.tokenizer.convert_ids_to_tokens(tiny_dream.mask_token_id)
    res = infill(tiny_dream, f"Start {mask}{mask} middle [MASK:2] end.", sampler=SamplerConfig(steps=4))
    assert res.masks == 4 and len(res.candidates[0].spans) == 2
    assert res.candidates[0].text.startswith("Start") and res.candidates[0].text.endswith("end.")


def test_stop_tokens_are_stripped(tiny_dream):
    from dlmpo.dlm.infill import decode_span

    eos = tiny_dream.tokenizer.eos_token_id
    word = tiny_dream.tokenizer(" hello", add_special_tokens=False)["input_ids"]
    assert decode_span(tiny_dream, word + [eos, eos]) == "hello"


def test_budget_keeps_prompt_and_cuts_traces(tiny_dream):
    segments = parse_masked_text("Classify reviews. [MASK:32]")
    traces = [ContextItem("word " * 400, "positive " * 200, 0, "Expected negative.") for _ in range(40)]
    canvas = build_canvas(tiny_dream, segments, traces)
    assert canvas.length <= tiny_dream.max_length
    assert 0 < canvas.traces_used < 40 and canvas.traces_dropped == 40 - canvas.traces_used
    assert canvas.notes and "did not fit" in canvas.notes[0]
    ids = canvas.input_ids.tolist()
    assert ids.count(tiny_dream.mask_token_id) == 32
    assert [ids[p] for p in canvas.span_positions[0]] == [tiny_dream.mask_token_id] * 32
    # each trace field was capped
    assert canvas.length < 40 * 600


def test_too_many_masks_is_a_clear_error(tiny_dream):
    with pytest.raises(UserError, match="reads at most 2048"):
        infill(tiny_dream, "x [MASK:2100]")


def test_shifted_model_keeps_a_token_before_the_span(tiny_dream):
    canvas = build_canvas(tiny_dream, parse_masked_text("[MASK:4] then text"))
    assert canvas.span_positions[0][0] >= 1
