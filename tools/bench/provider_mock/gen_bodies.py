#!/usr/bin/env python3
"""Canned native-provider answers for the benchmark's provider mock, as pre-serialized
strings (nginx preloads them once; njs only picks one per request). The Anthropic and
Bedrock answers carry the same nine words as the shared OpenAI mock's, so every path moves
the same content. Bedrock's ConverseStream is binary (AWS event-stream frames): it is kept
base64-encoded and decoded per request.

usage: gen_bodies.py OUT.json
"""
import json
import sys

WORDS = ["Hello", "!", " This", " is", " a", " canned", " mock", " reply", "."]
MODEL = "claude-haiku-4-5-20251001"
ID = "msg_01MockBenchAnswer000000001"


def dumps(o):
    return json.dumps(o, separators=(",", ":"))


usage = {"input_tokens": 12, "output_tokens": len(WORDS), "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
anthropic = dumps({
    "id": ID, "type": "message", "role": "assistant", "model": MODEL,
    "content": [{"type": "text", "text": "".join(WORDS)}],
    "stop_reason": "end_turn", "stop_sequence": None, "usage": usage,
})


def event(name, data):
    return f"event: {name}\ndata: {dumps(data)}\n\n"


sse = "".join(
    [event("message_start", {"type": "message_start", "message": {
        "id": ID, "type": "message", "role": "assistant", "model": MODEL, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {**usage, "output_tokens": 1}}}),
     event("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
     event("ping", {"type": "ping"})]
    + [event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}}) for w in WORDS]
    + [event("content_block_stop", {"type": "content_block_stop", "index": 0}),
       event("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": {"output_tokens": len(WORDS)}}),
       event("message_stop", {"type": "message_stop"})])

# Bedrock Converse and ConverseStream.
import base64
import binascii
import struct

bedrock_usage = {"inputTokens": 12, "outputTokens": len(WORDS), "totalTokens": 12 + len(WORDS)}
converse = dumps({"output": {"message": {"role": "assistant", "content": [{"text": "".join(WORDS)}]}},
                  "stopReason": "end_turn", "usage": bedrock_usage, "metrics": {"latencyMs": 1}})


def frame(event_type, payload):
    headers = b""
    for name, value in ((":event-type", event_type), (":content-type", "application/json"), (":message-type", "event")):
        n, v = name.encode(), value.encode()
        headers += bytes([len(n)]) + n + bytes([7]) + struct.pack(">H", len(v)) + v
    body = dumps(payload).encode()
    total = 12 + len(headers) + len(body) + 4
    prelude = struct.pack(">II", total, len(headers))
    message = prelude + struct.pack(">I", binascii.crc32(prelude)) + headers + body
    return message + struct.pack(">I", binascii.crc32(message))


stream = (frame("messageStart", {"role": "assistant"})
          + b"".join(frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": w}}) for w in WORDS)
          + frame("contentBlockStop", {"contentBlockIndex": 0})
          + frame("messageStop", {"stopReason": "end_turn"})
          + frame("metadata", {"usage": bedrock_usage, "metrics": {"latencyMs": 1}}))

json.dump({"anthropic": anthropic, "anthropic_sse": sse, "converse": converse,
           "converse_stream_b64": base64.b64encode(stream).decode()}, open(sys.argv[1], "w"))
