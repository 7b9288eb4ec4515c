"""The official `openai` SDK against Bursar: chat, streaming, embeddings, models, and the
SDK's exception classes for 401, 403 and 429."""

import openai
import pytest

from conftest import generate_key

CHAT_MODEL = "gpt-4o-mini"
EMBEDDING_MODEL = "text-embedding-3-small"


def sdk(base_url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0, timeout=30)


def test_chat_completion(base_url, master_key):
    reply = sdk(base_url, master_key).chat.completions.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": "Hello"}]
    )
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content
    assert reply.usage.total_tokens > 0


def test_chat_completion_with_raw_response_headers(base_url, master_key):
    raw = sdk(base_url, master_key).chat.completions.with_raw_response.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": "Hello"}]
    )
    assert raw.headers.get("x-litellm-call-id")
    assert raw.parse().choices[0].message.content


def test_streaming_chat_completion(base_url, master_key):
    stream = sdk(base_url, master_key).chat.completions.create(
        model=CHAT_MODEL,
        messages=[{"role": "user", "content": "Hello"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text = ""
    chunks = 0
    usage = None
    for chunk in stream:
        chunks += 1
        assert chunk.object == "chat.completion.chunk"
        for choice in chunk.choices:
            text += choice.delta.content or ""
        usage = chunk.usage or usage
    assert chunks >= 2
    assert text
    assert usage is not None and usage.total_tokens > 0


def test_legacy_completion(base_url, master_key):
    reply = sdk(base_url, master_key).completions.create(model=CHAT_MODEL, prompt="Say hi")
    assert reply.choices[0].text is not None


def test_embeddings(base_url, master_key):
    reply = sdk(base_url, master_key).embeddings.create(model=EMBEDDING_MODEL, input=["a", "b"])
    assert reply.object == "list"
    assert len(reply.data[0].embedding) > 0
    assert reply.model == EMBEDDING_MODEL


def test_models_list_and_retrieve(base_url, admin):
    key = generate_key(admin, models=[CHAT_MODEL])
    client = sdk(base_url, key)
    ids = [m.id for m in client.models.list()]
    assert ids == [CHAT_MODEL]
    assert client.models.retrieve(CHAT_MODEL).id == CHAT_MODEL
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve(EMBEDDING_MODEL)


def test_an_unknown_key_is_an_authentication_error(base_url):
    with pytest.raises(openai.AuthenticationError) as caught:
        sdk(base_url, "sk-not-a-real-key").chat.completions.create(
            model=CHAT_MODEL, messages=[{"role": "user", "content": "Hello"}]
        )
    assert caught.value.status_code == 401
    assert caught.value.body["message"]


def test_a_model_outside_the_keys_list_is_permission_denied(base_url, admin):
    key = generate_key(admin, models=[EMBEDDING_MODEL])
    with pytest.raises(openai.PermissionDeniedError) as caught:
        sdk(base_url, key).chat.completions.create(
            model=CHAT_MODEL, messages=[{"role": "user", "content": "Hello"}]
        )
    assert caught.value.status_code == 403
    assert caught.value.body["param"] == "model"
    assert CHAT_MODEL in caught.value.body["message"]


def test_a_key_over_its_rpm_limit_is_rate_limited(base_url, admin):
    key = generate_key(admin, rpm_limit=1)
    client = sdk(base_url, key)
    client.chat.completions.create(model=CHAT_MODEL, messages=[{"role": "user", "content": "1"}])
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(
            model=CHAT_MODEL, messages=[{"role": "user", "content": "2"}]
        )
    assert caught.value.status_code == 429
    assert caught.value.response.headers.get("retry-after")
