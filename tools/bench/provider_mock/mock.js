// njs handlers for the benchmark's native-provider mock (tools/bench/provider_mock).
// Canned bodies come from the preloaded object P (gen_bodies.py); only function
// definitions here, as njs 0.7 re-runs this file's global code on every request.

function wantsStream(r) {
    const b = r.requestText;
    return typeof b === 'string' && /"stream"\s*:\s*true/.test(b);
}

// POST /v1/messages : an Anthropic message, or its event stream for "stream": true.
function messages(r) {
    if (wantsStream(r)) {
        r.headersOut['Content-Type'] = 'text/event-stream';
        r.headersOut['Cache-Control'] = 'no-cache';
        r.return(200, P.anthropic_sse);
    } else {
        r.headersOut['Content-Type'] = 'application/json';
        r.return(200, P.anthropic);
    }
}

// POST /model/{id}/converse and /converse-stream : Bedrock's Converse JSON, or its
// event stream (binary frames, stored base64 in P).
function converse(r) {
    r.headersOut['Content-Type'] = 'application/json';
    r.return(200, P.converse);
}

function converseStream(r) {
    r.headersOut['Content-Type'] = 'application/vnd.amazon.eventstream';
    r.return(200, Buffer.from(P.converse_stream_b64, 'base64'));
}

export default { messages, converse, converseStream };
