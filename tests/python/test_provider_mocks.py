"""The testkit's provider mocks, parsed by each provider's official SDK: proof that the mock
upstreams Bursar's adapter tests run against speak the providers' real wire formats
(responses, event streams, errors), not Bursar's idea of them. MOCK_URL is the mock's root
(crates/bursar/tests/python_clients.rs starts it)."""

import json
import os

import anthropic
import openai
import pytest

TOOLS = [
    {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
    {"name": "get_time", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
]


@pytest.fixture(scope="module")
def mock_url() -> str:
    return os.environ["MOCK_URL"].rstrip("/")


@pytest.fixture(scope="module")
def claude(mock_url) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=mock_url, api_key="sk-ant-mock", max_retries=0)


def test_anthropic_message_parses(claude):
    message = claude.messages.create(
        model="claude-haiku-4-5", max_tokens=64, messages=[{"role": "user", "content": "Hi"}]
    )
    assert isinstance(message, anthropic.types.Message)
    assert message.id == "msg_01MockAnthropicAnswer"
    assert message.stop_reason == "end_turn"
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "part0 part1 part2 "
    assert message.usage.input_tokens == 11 and message.usage.output_tokens == 7
    assert message.usage.cache_read_input_tokens == 0


def test_anthropic_tool_use_and_thinking_parse(claude):
    message = claude.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=4096,
        thinking={"type": "enabled", "budget_tokens": 1024},
        tools=TOOLS,
        tool_choice={"type": "any"},
        messages=[{"role": "user", "content": "Weather and time?"}],
    )
    assert [b.type for b in message.content] == ["thinking", "tool_use", "tool_use"]
    assert message.content[0].thinking == "Let me think."
    assert [b.name for b in message.content[1:]] == ["get_weather", "get_time"]
    assert message.content[1].input == {"city": "Paris"}
    assert message.stop_reason == "tool_use"


def test_anthropic_stream_accumulates(claude):
    with claude.messages.stream(
        model="claude-haiku-4-5", max_tokens=64, messages=[{"role": "user", "content": "Hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "part0 part1 part2 "
    assert final.content[0].text == text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 7


def test_anthropic_stream_tool_input_is_valid_json_when_joined(claude):
    # The SDK rebuilds each tool's input from the input_json_delta pieces and parses it.
    with claude.messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=4096,
        thinking={"type": "enabled", "budget_tokens": 1024},
        tools=TOOLS,
        tool_choice={"type": "tool", "name": "get_time"},
        messages=[{"role": "user", "content": "Time?"}],
    ) as stream:
        events = [e.type for e in stream]
        final = stream.get_final_message()
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert [b.type for b in final.content] == ["thinking", "tool_use"]
    assert final.content[0].signature == "c2lnbmF0dXJl"
    assert final.content[1].name == "get_time" and final.content[1].input == {"city": "Paris"}


@pytest.mark.parametrize(
    "status,error",
    [
        (400, anthropic.BadRequestError),
        (401, anthropic.AuthenticationError),
        (403, anthropic.PermissionDeniedError),
        (404, anthropic.NotFoundError),
        (429, anthropic.RateLimitError),
        (500, anthropic.InternalServerError),
        (529, anthropic.InternalServerError),
    ],
)
def test_anthropic_errors_parse(claude, status, error):
    with pytest.raises(error) as caught:
        claude.messages.create(
            model="claude-haiku-4-5",
            max_tokens=8,
            messages=[{"role": "user", "content": "Hi"}],
            extra_headers={"x-mock-error": str(status)},
        )
    assert caught.value.status_code == status
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["message"] == "mock upstream error"


def test_anthropic_mock_requires_the_sdk_headers(mock_url):
    import httpx

    r = httpx.post(f"{mock_url}/v1/messages", json={"model": "m", "max_tokens": 1, "messages": []})
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"


@pytest.fixture(scope="module")
def azure(mock_url) -> openai.AzureOpenAI:
    return openai.AzureOpenAI(
        azure_endpoint=mock_url, api_key="az-mock", api_version="2024-10-21", max_retries=0
    )


def test_azure_openai_sdk_reaches_the_deployment_paths(azure):
    reply = azure.chat.completions.create(model="gpt4o-prod", messages=[{"role": "user", "content": "Hi"}])
    assert reply.choices[0].message.content == "mock answer"
    chunks = list(
        azure.chat.completions.create(
            model="gpt4o-prod", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "part0 part1 part2 "
    embedding = azure.embeddings.create(model="embed-prod", input=["a"])
    assert embedding.data[0].embedding == [0.1, 0.2, 0.3]


@pytest.fixture(scope="module")
def llama(mock_url):
    import ollama

    return ollama.Client(host=mock_url)


def test_ollama_chat_generate_and_embed_parse(llama):
    import ollama

    reply = llama.chat(model="llama3.2", messages=[{"role": "user", "content": "Hi"}], stream=False)
    assert isinstance(reply, ollama.ChatResponse)
    assert reply.message.content == "part0 part1 part2 " and reply.done
    assert (reply.prompt_eval_count, reply.eval_count) == (11, 7)
    pieces = list(llama.chat(model="llama3.2", messages=[{"role": "user", "content": "Hi"}], stream=True))
    assert "".join(p.message.content for p in pieces) == "part0 part1 part2 "
    assert pieces[-1].done and pieces[-1].done_reason == "stop"
    generated = llama.generate(model="llama3.2", prompt="Once", stream=False)
    assert generated.response == "part0 part1 part2 " and generated.context == [1, 2, 3]
    assert "".join(g.response for g in llama.generate(model="llama3.2", prompt="Once", stream=True)) == "part0 part1 part2 "
    embedded = llama.embed(model="nomic-embed-text", input=["a", "b"])
    assert len(embedded.embeddings) == 2 and list(embedded.embeddings[0]) == [0.1, 0.2, 0.3]


def test_ollama_tool_calls_parse(llama):
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
    reply = llama.chat(model="llama3.2", messages=[{"role": "user", "content": "Weather?"}], tools=[tool], stream=False)
    call = reply.message.tool_calls[0]
    assert call.function.name == "get_weather" and call.function.arguments == {"city": "Paris"}


def test_ollama_errors_parse(llama):
    import ollama

    with pytest.raises(ollama.ResponseError) as caught:
        llama._client.headers["x-mock-error"] = "404"
        try:
            llama.chat(model="nope", messages=[{"role": "user", "content": "Hi"}], stream=False)
        finally:
            del llama._client.headers["x-mock-error"]
    assert caught.value.status_code == 404 and caught.value.error == "mock upstream error"


@pytest.fixture(scope="module")
def co(mock_url):
    import cohere

    return cohere.ClientV2(api_key="co-mock", base_url=mock_url)


def test_cohere_chat_stream_and_embed_parse(co):
    reply = co.chat(model="command-a-03-2025", messages=[{"role": "user", "content": "Hi"}])
    assert reply.finish_reason == "COMPLETE"
    assert reply.message.content[0].text == "part0 part1 part2 "
    assert reply.usage.tokens.input_tokens == 11 and reply.usage.tokens.output_tokens == 7
    events = list(co.chat_stream(model="command-a-03-2025", messages=[{"role": "user", "content": "Hi"}]))
    assert [e.type for e in events][0] == "message-start" and events[-1].type == "message-end"
    text = "".join(e.delta.message.content.text for e in events if e.type == "content-delta")
    assert text == "part0 part1 part2 "
    assert events[-1].delta.finish_reason == "COMPLETE"
    embedded = co.embed(model="embed-v4.0", texts=["a", "b"], input_type="search_document", embedding_types=["float"])
    assert embedded.embeddings.float_ == [[0.1, 0.2, 0.3]] * 2


def test_cohere_tool_calls_parse(co):
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
    reply = co.chat(model="command-a-03-2025", messages=[{"role": "user", "content": "Weather?"}], tools=[tool])
    assert reply.finish_reason == "TOOL_CALL"
    assert reply.message.tool_calls[0].function.name == "get_weather"
    events = list(co.chat_stream(model="command-a-03-2025", messages=[{"role": "user", "content": "Weather?"}], tools=[tool]))
    args = "".join(e.delta.message.tool_calls.function.arguments for e in events if e.type == "tool-call-delta")
    assert json.loads(args) == {"city": "Paris"}


def test_cohere_errors_parse(co):
    from cohere.core.api_error import ApiError

    with pytest.raises(ApiError) as caught:
        co.chat(
            model="command-a-03-2025",
            messages=[{"role": "user", "content": "Hi"}],
            request_options={"additional_headers": {"x-mock-error": "429"}},
        )
    assert caught.value.status_code == 429 and caught.value.body == {"message": "mock upstream error"}


@pytest.fixture(scope="module")
def genai_client(mock_url):
    from google import genai
    from google.genai import types

    return genai.Client(api_key="g-mock", http_options=types.HttpOptions(base_url=mock_url))


def test_gemini_generate_stream_and_embed_parse(genai_client):
    reply = genai_client.models.generate_content(model="gemini-2.5-flash", contents="Hi")
    assert reply.text == "part0 part1 part2 "
    assert reply.candidates[0].finish_reason.name == "STOP"
    assert reply.usage_metadata.prompt_token_count == 11 and reply.usage_metadata.candidates_token_count == 7
    chunks = list(genai_client.models.generate_content_stream(model="gemini-2.5-flash", contents="Hi"))
    assert "".join(c.text for c in chunks) == "part0 part1 part2 "
    assert chunks[-1].candidates[0].finish_reason.name == "STOP"
    embedded = genai_client.models.embed_content(model="gemini-embedding-001", contents=["a", "b"])
    assert [e.values for e in embedded.embeddings] == [[0.1, 0.2, 0.3]] * 2


def test_gemini_function_calls_parse(genai_client):
    from google.genai import types

    tool = types.Tool(function_declarations=[types.FunctionDeclaration(name="get_weather", parameters_json_schema={"type": "object", "properties": {"city": {"type": "string"}}})])
    reply = genai_client.models.generate_content(
        model="gemini-2.5-flash", contents="Weather?", config=types.GenerateContentConfig(tools=[tool], automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))
    )
    call = reply.function_calls[0]
    assert call.name == "get_weather" and call.args == {"city": "Paris"}


def test_gemini_errors_parse(genai_client):
    from google.genai import errors, types

    with pytest.raises(errors.ClientError) as caught:
        genai_client.models.generate_content(
            model="gemini-2.5-flash", contents="Hi", config=types.GenerateContentConfig(http_options=types.HttpOptions(headers={"x-mock-error": "429"}))
        )
    assert caught.value.code == 429 and caught.value.status == "RESOURCE_EXHAUSTED"
    assert caught.value.message == "mock upstream error"


@pytest.fixture(scope="module")
def bedrock(mock_url):
    import boto3

    client = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=mock_url,
        aws_access_key_id="AKIDMOCK",
        aws_secret_access_key="secret",
    )
    return client


def test_bedrock_converse_and_stream_parse(bedrock):
    reply = bedrock.converse(
        modelId="anthropic.claude-3-5-sonnet-20240620-v1:0", messages=[{"role": "user", "content": [{"text": "Hi"}]}]
    )
    assert reply["output"]["message"]["content"][0]["text"] == "part0 part1 part2 "
    assert reply["stopReason"] == "end_turn"
    assert reply["usage"]["inputTokens"] == 11 and reply["usage"]["outputTokens"] == 7
    stream = bedrock.converse_stream(
        modelId="us.anthropic.claude-sonnet-4-5-20250929-v1:0", messages=[{"role": "user", "content": [{"text": "Hi"}]}]
    )["stream"]
    events = list(stream)
    assert list(events[0]) == ["messageStart"] and list(events[-1]) == ["metadata"]
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    assert text == "part0 part1 part2 "
    assert events[-1]["metadata"]["usage"]["outputTokens"] == 7


def test_bedrock_tool_use_parses(bedrock):
    tool = {"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}}}}
    reply = bedrock.converse(
        modelId="m", messages=[{"role": "user", "content": [{"text": "Weather?"}]}], toolConfig={"tools": [tool]}
    )
    use = reply["output"]["message"]["content"][0]["toolUse"]
    assert use["name"] == "get_weather" and use["input"] == {"city": "Paris"}
    events = list(
        bedrock.converse_stream(modelId="m", messages=[{"role": "user", "content": [{"text": "Weather?"}]}], toolConfig={"tools": [tool]})["stream"]
    )
    pieces = "".join(e["contentBlockDelta"]["delta"]["toolUse"]["input"] for e in events if "contentBlockDelta" in e)
    assert json.loads(pieces) == {"city": "Paris"}


def test_bedrock_embeddings_and_errors_parse(bedrock):
    import botocore.exceptions

    titan = json.loads(bedrock.invoke_model(modelId="amazon.titan-embed-text-v2:0", body=json.dumps({"inputText": "a"}))["body"].read())
    assert titan["embedding"] == [0.1, 0.2, 0.3] and titan["inputTextTokenCount"] == 11

    def throttle(request, **_):
        request.headers["x-mock-error"] = "429"

    bedrock.meta.events.register("before-sign.bedrock-runtime.Converse", throttle)
    try:
        with pytest.raises(botocore.exceptions.ClientError) as caught:
            bedrock.converse(modelId="m", messages=[{"role": "user", "content": [{"text": "Hi"}]}])
    finally:
        bedrock.meta.events.unregister("before-sign.bedrock-runtime.Converse", throttle)
    assert caught.value.response["Error"]["Code"] == "ThrottlingException"
    assert caught.value.response["Error"]["Message"] == "mock upstream error"


def test_sigv4_cases_are_botocores_signatures():
    # The expected headers bursar-providers' signer is checked against are what botocore
    # computes for the same request, credentials and time.
    import sigv4_botocore

    for case in json.loads(sigv4_botocore.CASES.read_text()):
        got = {k.lower(): v for k, v in sigv4_botocore.sign(case).items()}
        assert got == case["expected"], case["description"]


def test_vertex_gemini_and_claude_parse(mock_url):
    import google.oauth2.credentials
    from google import genai
    from google.genai import types

    creds = google.oauth2.credentials.Credentials(token="ya29.python")
    client = genai.Client(
        vertexai=True, project="p", location="us-central1", credentials=creds,
        http_options=types.HttpOptions(base_url=mock_url, api_version="v1"),
    )
    reply = client.models.generate_content(model="gemini-2.5-flash", contents="Hi")
    assert reply.text == "part0 part1 part2 "
    claude = anthropic.AnthropicVertex(
        region="us-central1", project_id="p", access_token="ya29.python", base_url=f"{mock_url}/v1"
    )
    message = claude.messages.create(model="claude-sonnet-4-5@20250929", max_tokens=16, messages=[{"role": "user", "content": "Hi"}])
    assert message.content[0].text == "part0 part1 part2 "
    with claude.messages.stream(model="claude-sonnet-4-5@20250929", max_tokens=16, messages=[{"role": "user", "content": "Hi"}]) as stream:
        assert "".join(stream.text_stream) == "part0 part1 part2 "


def test_google_auth_trades_a_service_account_jwt_at_the_mock(mock_url):
    import pathlib

    import google.auth.transport.requests
    from google.oauth2 import service_account

    fixture = pathlib.Path(__file__).resolve().parents[2] / "crates/bursar-providers/tests/fixtures/vertex-service-account.json"
    info = json.loads(fixture.read_text())
    info["token_uri"] = f"{mock_url}/token"
    creds = service_account.Credentials.from_service_account_info(info, scopes=["https://www.googleapis.com/auth/cloud-platform"])
    creds.refresh(google.auth.transport.requests.Request())
    assert creds.token.startswith("ya29.mock-") and creds.expiry is not None
