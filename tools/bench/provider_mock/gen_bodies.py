#!/usr/bin/env python3
"""Canned native-provider answers for the benchmark's provider mock, as pre-serialized
strings (nginx preloads them once; njs only picks one per request). The Anthropic answer
carries the same nine words as the shared OpenAI mock's, so the two paths move the same
content.

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

json.dump({"anthropic": anthropic, "anthropic_sse": sse}, open(sys.argv[1], "w"))
