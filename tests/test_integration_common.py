"""dlmpo.integrations.common.chat_function: a dlmpo target as a synchronous function that several
threads call at once (MLflow runs predict_fn on worker threads), on the embedded target."""

from concurrent.futures import ThreadPoolExecutor

from dlmpo.integrations.common import chat_function


def test_chat_function_answers_calls_from_several_threads(tmp_path):
    chat = chat_function("embedded", max_tokens=4, cache_path=tmp_path / "calls.sqlite")
    words = ["good", "bad", "fine", "awful", "great", "dull"]
    questions = [[{"role": "user", "content": f"Is '{w}' positive or negative?"}] for w in words]
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(chat, questions, timeout=600))
    assert all(isinstance(a, str) and a.strip() for a in answers)
    assert chat.chat_model.accounting.calls == len(words) and chat.chat_model.accounting.failures == 0
    assert chat(questions[0]) == answers[0] and chat.chat_model.accounting.cache_hits == 1
