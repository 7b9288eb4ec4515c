use super::*;
use std::sync::{Arc, Mutex};

fn source(chunks: Vec<&'static str>) -> ByteStream {
    Box::pin(futures_util::stream::iter(
        chunks.into_iter().map(|c| Ok(Bytes::from(c))),
    ))
}

fn options(model: Option<&str>, strip: bool) -> TapOptions {
    TapOptions {
        model: model.map(str::to_string),
        strip_usage_chunk: strip,
        idle_timeout: Duration::from_secs(5),
        provider: "openai".into(),
        abort: None,
    }
}

async fn run(chunks: Vec<&'static str>, opts: TapOptions) -> (Vec<String>, StreamSummary) {
    let seen = Arc::new(Mutex::new(None));
    let sink = seen.clone();
    let hook: FinishHook = Box::new(move |s| *sink.lock().unwrap() = Some(s));
    let out: Vec<String> = tap(source(chunks), opts, Some(hook))
        .map(|r| String::from_utf8(r.unwrap().to_vec()).unwrap())
        .collect()
        .await;
    let summary = seen.lock().unwrap().take().unwrap();
    (out, summary)
}

const CHUNK: &str =
    "data: {\"id\":\"1\",\"model\":\"gpt-4o\",\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n";
const USAGE: &str = "data: {\"id\":\"1\",\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":7,\"total_tokens\":12}}\n\n";
const DONE: &str = "data: [DONE]\n\n";

#[tokio::test]
async fn passes_events_through_untouched_and_reads_usage() {
    let (out, summary) = run(vec![CHUNK, USAGE, DONE], options(Some("gpt-4o"), false)).await;
    assert_eq!(out.concat(), format!("{CHUNK}{USAGE}{DONE}"));
    assert_eq!(summary.usage, Some(Usage::new(5, 7)));
    assert!(summary.completed);
    assert!(summary.error.is_none());
}

#[tokio::test]
async fn events_split_across_chunks_are_reassembled() {
    // Split the first event in the middle of its JSON and the blank line.
    let (a, b) = CHUNK.split_at(20);
    let (b, c) = b.split_at(b.len() - 1);
    let a: &'static str = Box::leak(a.to_string().into_boxed_str());
    let b: &'static str = Box::leak(b.to_string().into_boxed_str());
    let c: &'static str = Box::leak(c.to_string().into_boxed_str());
    let (out, _) = run(vec![a, b, c, DONE], options(None, false)).await;
    assert_eq!(out, vec![CHUNK.to_string(), DONE.to_string()]);
}

#[tokio::test]
async fn usage_chunk_is_dropped_when_the_client_did_not_ask() {
    let (out, summary) = run(vec![CHUNK, USAGE, DONE], options(None, true)).await;
    assert_eq!(out.concat(), format!("{CHUNK}{DONE}"));
    assert_eq!(summary.usage.map(|u| u.total_tokens), Some(12));
}

#[tokio::test]
async fn model_is_rewritten_to_the_requested_name() {
    let (out, _) = run(vec![CHUNK], options(Some("my-alias"), false)).await;
    let text = out.concat();
    assert!(
        text.starts_with("data: {\"id\":\"1\",\"model\":\"my-alias\""),
        "{text}"
    );
    assert!(text.ends_with("\n\n"));
}

#[tokio::test]
async fn upstream_failure_becomes_an_error_frame() {
    let failing: ByteStream = Box::pin(futures_util::stream::iter(vec![
        Ok(Bytes::from(CHUNK)),
        Err(ProviderError::Stream {
            provider: "openai".into(),
            detail: "connection reset".into(),
        }),
    ]));
    let seen = Arc::new(Mutex::new(None));
    let sink = seen.clone();
    let out: Vec<Bytes> = tap(
        failing,
        options(None, false),
        Some(Box::new(move |s| *sink.lock().unwrap() = Some(s))),
    )
    .map(|r| r.unwrap())
    .collect()
    .await;
    let last = String::from_utf8(out.last().unwrap().to_vec()).unwrap();
    assert!(last.starts_with("data: {\"error\""), "{last}");
    assert!(last.ends_with("data: [DONE]\n\n"));
    let summary = seen.lock().unwrap().take().unwrap();
    assert!(summary.error.is_some());
    assert!(!summary.completed);
}

#[tokio::test]
async fn idle_upstream_times_out() {
    let stalled: ByteStream = Box::pin(futures_util::stream::pending());
    let mut opts = options(None, false);
    opts.idle_timeout = Duration::from_millis(20);
    let out: Vec<Bytes> = tap(stalled, opts, None).map(|r| r.unwrap()).collect().await;
    assert_eq!(out.len(), 1);
    assert!(String::from_utf8_lossy(&out[0]).contains("\"code\":\"408\""));
}

#[tokio::test]
async fn dropping_the_stream_still_reports() {
    let seen = Arc::new(Mutex::new(None));
    let sink = seen.clone();
    let mut stream = tap(
        source(vec![CHUNK, CHUNK, DONE]),
        options(None, false),
        Some(Box::new(move |s| *sink.lock().unwrap() = Some(s))),
    );
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first, Bytes::from(CHUNK));
    drop(stream);
    let summary = seen.lock().unwrap().take().expect("hook ran on drop");
    assert!(!summary.completed);
    assert_eq!(summary.bytes, CHUNK.len() as u64);
}

#[test]
fn crlf_events_are_recognised() {
    assert_eq!(last_event_end(b"data: 1\r\n\r\ndata: 2"), Some(11));
    assert_eq!(next_event_len(b"data: 1\r\n\r\ndata: 2\r\n\r\n"), Some(11));
    assert_eq!(
        single_data_payload(b"data: {\"a\":1}\r\n\r\n"),
        Some(&b"{\"a\":1}"[..])
    );
}

#[tokio::test]
async fn garbage_ends_the_stream_with_an_error_frame_after_the_good_events() {
    for garbage in [
        "<html>502 Bad Gateway</html>\n\n",
        "data: not json at all\n\n",
        "\u{0}\u{1}binary\n\n",
    ] {
        let (out, summary) = run(vec![CHUNK, garbage, CHUNK, DONE], options(None, false)).await;
        let text = out.concat();
        assert!(text.starts_with(CHUNK), "{text}");
        assert_eq!(
            text.matches("\"Hi\"").count(),
            1,
            "nothing after the garbage: {text}"
        );
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
        assert!(text.contains("\"code\":\"502\""), "{text}");
        assert!(
            matches!(summary.error, Some(ProviderError::InvalidResponse { .. })),
            "{summary:?}"
        );
    }
    // Comments and the other SSE fields are not garbage.
    let fields = ": keep-alive\n\nevent: ping\ndata: {}\nid: 7\nretry: 10\n\n";
    let (out, summary) = run(vec![fields, CHUNK, DONE], options(None, false)).await;
    assert_eq!(out.concat(), format!("{fields}{CHUNK}{DONE}"));
    assert!(summary.error.is_none());
}
