"""The official `openai` SDK against Bursar in front of native providers (the testkit's
Anthropic and Azure mocks): answers, streams with tool calls, errors and the charged price
come back as OpenAI's."""

import json

import openai
import pytest

# claude-haiku-4-5 list prices; the mock reports 11 input and 7 output tokens, no cache.
CLAUDE_COST = 11 * 1e-6 + 7 * 5e-6
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
]


def sdk(base_url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0, timeout=30)


def test_anthropic_deployment_answers_as_openai(base_url, master_key):
    raw = sdk(base_url, master_key).chat.completions.with_raw_response.create(
        model="claude", messages=[{"role": "system", "content": "Brief."}, {"role": "user", "content": "Hi"}]
    )
    reply = raw.parse()
    assert reply.object == "chat.completion" and reply.model == "claude"
    assert reply.choices[0].message.content == "part0 part1 part2 "
    assert reply.choices[0].finish_reason == "stop"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (11, 7)
    assert float(raw.headers["x-litellm-response-cost"]) == pytest.approx(CLAUDE_COST)


def test_anthropic_tool_calls_parse_in_the_openai_sdk(base_url, master_key):
    reply = sdk(base_url, master_key).chat.completions.create(
        model="claude", messages=[{"role": "user", "content": "Weather?"}], tools=TOOLS, tool_choice="required"
    )
    calls = reply.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert json.loads(calls[0].function.arguments) == {"city": "Paris"}
    assert reply.choices[0].finish_reason == "tool_calls"


def test_anthropic_stream_with_tool_calls_in_the_openai_sdk(base_url, master_key):
    stream = sdk(base_url, master_key).chat.completions.create(
        model="claude",
        messages=[{"role": "user", "content": "Weather?"}],
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        stream=True,
        stream_options={"include_usage": True},
    )
    arguments, names, finish, usage = {}, {}, None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for call in choice.delta.tool_calls or []:
                if call.function.name:
                    names[call.index] = call.function.name
                arguments[call.index] = arguments.get(call.index, "") + (call.function.arguments or "")
    assert names == {0: "get_weather"}
    assert json.loads(arguments[0]) == {"city": "Paris"}
    assert finish == "tool_calls"
    assert (usage.prompt_tokens, usage.completion_tokens) == (11, 7)


def test_anthropic_errors_are_the_openai_sdk_classes(base_url, master_key):
    client = sdk(base_url, master_key)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="claude", messages=[{"role": "user", "content": "Hi"}], logprobs=True)
    assert "UnsupportedParamsError" in str(caught.value)


def test_azure_deployment_answers_and_streams(base_url, master_key):
    client = sdk(base_url, master_key)
    reply = client.chat.completions.create(model="azure-gpt", messages=[{"role": "user", "content": "Hi"}])
    assert reply.model == "azure-gpt" and reply.choices[0].message.content == "mock answer"
    text = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(
            model="azure-gpt", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
        if c.choices
    )
    assert text == "part0 part1 part2 "


def test_ollama_deployments_answer_as_openai(base_url, master_key):
    client = sdk(base_url, master_key)
    reply = client.chat.completions.create(model="llama", messages=[{"role": "user", "content": "Hi"}])
    assert reply.model == "llama" and reply.choices[0].message.content == "part0 part1 part2 "
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (11, 7)
    text = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(
            model="llama", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
        if c.choices
    )
    assert text == "part0 part1 part2 "
    completion = client.completions.create(model="llama-generate", prompt="Once")
    assert completion.object == "text_completion" and completion.choices[0].text == "part0 part1 part2 "
    embedded = client.embeddings.create(model="llama-embed", input=["a", "b"])
    # The SDK asks for base64 (f32) and decodes it.
    assert [d.embedding for d in embedded.data] == [pytest.approx([0.1, 0.2, 0.3])] * 2


def test_cohere_deployment_answers_and_streams_tool_calls(base_url, master_key):
    client = sdk(base_url, master_key)
    reply = client.chat.completions.create(model="command", messages=[{"role": "user", "content": "Hi"}])
    assert reply.model == "command" and reply.choices[0].message.content == "part0 part1 part2 "
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (11, 7)
    stream = client.chat.completions.create(
        model="command", messages=[{"role": "user", "content": "Weather?"}], tools=TOOLS, stream=True
    )
    args, finish = "", None
    for chunk in stream:
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for call in choice.delta.tool_calls or []:
                args += call.function.arguments or ""
    assert json.loads(args) == {"city": "Paris"} and finish == "tool_calls"
    embedded = client.embeddings.create(model="cohere-embed", input=["a"])
    assert embedded.data[0].embedding == pytest.approx([0.1, 0.2, 0.3])


def test_gemini_deployment_answers_and_streams(base_url, master_key):
    client = sdk(base_url, master_key)
    raw = client.chat.completions.with_raw_response.create(model="gemini", messages=[{"role": "user", "content": "Hi"}])
    reply = raw.parse()
    assert reply.model == "gemini" and reply.choices[0].message.content == "part0 part1 part2 "
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (11, 7)
    text = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(model="gemini", messages=[{"role": "user", "content": "Hi"}], stream=True)
        if c.choices
    )
    assert text == "part0 part1 part2 "
    reply = client.chat.completions.create(model="gemini", messages=[{"role": "user", "content": "Weather?"}], tools=TOOLS)
    assert reply.choices[0].message.tool_calls[0].function.name == "get_weather"


def test_bedrock_deployment_answers_and_streams_tool_calls(base_url, master_key):
    client = sdk(base_url, master_key)
    reply = client.chat.completions.create(model="bedrock-claude", messages=[{"role": "user", "content": "Hi"}])
    assert reply.model == "bedrock-claude" and reply.choices[0].message.content == "part0 part1 part2 "
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (11, 7)
    args, finish = "", None
    for chunk in client.chat.completions.create(
        model="bedrock-claude", messages=[{"role": "user", "content": "Weather?"}], tools=TOOLS, stream=True
    ):
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for call in choice.delta.tool_calls or []:
                args += call.function.arguments or ""
    assert json.loads(args) == {"city": "Paris"} and finish == "tool_calls"
    embedded = client.embeddings.create(model="titan-embed", input="a")
    assert embedded.data[0].embedding == pytest.approx([0.1, 0.2, 0.3])


def test_vertex_claude_deployment_answers_and_streams(base_url, master_key):
    client = sdk(base_url, master_key)
    raw = client.chat.completions.with_raw_response.create(model="vertex-claude", messages=[{"role": "user", "content": "Hi"}])
    reply = raw.parse()
    assert reply.model == "vertex-claude" and reply.choices[0].message.content == "part0 part1 part2 "
    # vertex_ai/claude-sonnet-4-5@20250929: 3e-6 input, 1.5e-5 output per token.
    assert float(raw.headers["x-litellm-response-cost"]) == pytest.approx(11 * 3e-6 + 7 * 1.5e-5)
    text = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(model="vertex-claude", messages=[{"role": "user", "content": "Hi"}], stream=True)
        if c.choices
    )
    assert text == "part0 part1 part2 "


def test_azure_openai_clients_use_bursar_as_their_endpoint(base_url, admin):
    from conftest import generate_key

    key = generate_key(admin, models=["gpt-4o-mini", "text-embedding-3-small"])
    client = openai.AzureOpenAI(azure_endpoint=base_url, api_key=key, api_version="2024-10-21", max_retries=0)
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
    assert reply.choices[0].message.content
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], stream=True))
    assert any(c.choices and c.choices[0].delta.content for c in chunks)
    embedded = client.embeddings.create(model="text-embedding-3-small", input=["a"])
    assert len(embedded.data) == 1
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="claude", messages=[{"role": "user", "content": "Hi"}])
