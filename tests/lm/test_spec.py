import pytest

from dlmpo.errors import ModelSpecError
from dlmpo.lm import open_target
from dlmpo.lm.pricing import FREE


@pytest.mark.parametrize("spec, message", [
    ("gpt4", "Unknown model specifier"),
    ("hf:", "names no model"),
    ("http://127.0.0.1:8000/v1", "lacks the model name"),
    ("openai:", "names no model"),
])
def test_bad_specifiers(spec, message, tmp_path):
    with pytest.raises(ModelSpecError, match=message):
        open_target(spec, cache_path=tmp_path / "c.sqlite")


def test_openai_needs_key(monkeypatch, tmp_path):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ModelSpecError, match="OPENAI_API_KEY"):
        open_target("openai:gpt-4o-mini", cache_path=tmp_path / "c.sqlite")


def test_unknown_remote_price_is_flagged(tmp_path):
    model = open_target("http://10.1.2.3:8000/v1#mystery-model", cache_path=tmp_path / "c.sqlite")
    assert not model.price_known
    local = open_target("http://127.0.0.1:8000/v1#mystery-model", cache_path=tmp_path / "c.sqlite")
    assert local.price_known and local.price == FREE
