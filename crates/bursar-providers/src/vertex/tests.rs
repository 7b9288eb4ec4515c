//! Vertex AI's settings, URLs and bodies (the translations are the Gemini and Anthropic
//! adapters', with their golden cases).

use super::*;
use crate::json::JsonObject;

const FIXTURE: &str = include_str!("../../tests/fixtures/vertex-service-account.json");

fn configure(params: &str, env: &[(&str, &str)]) -> Result<Vertex, Vec<String>> {
    crate::params::configure_for_test(params, env, Vertex::configure)
}

fn credentials_file() -> tempfile_path::Path {
    tempfile_path::write(FIXTURE)
}

/// A credentials file on disk for the duration of a test.
mod tempfile_path {
    pub struct Path(pub std::path::PathBuf);
    impl Drop for Path {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    pub fn write(text: &str) -> Path {
        let p = std::env::temp_dir().join(format!("bursar-vertex-{}.json", rand::random::<u64>()));
        std::fs::write(&p, text).unwrap();
        Path(p)
    }
}

#[test]
fn urls_follow_project_location_and_publisher() {
    let file = credentials_file();
    let path = file.0.display().to_string();
    let g = configure(
        &format!("{{model: vertex_ai/gemini-2.5-pro, vertex_credentials: '{path}'}}"),
        &[],
    )
    .unwrap();
    assert_eq!(
        g.model_url,
        "https://us-central1-aiplatform.googleapis.com/v1/projects/bursar-test-project/locations/us-central1/publishers/google/models/gemini-2.5-pro"
    );
    let c = configure(
        "{model: vertex_ai/claude-sonnet-4-5@20250929, vertex_project: other, vertex_location: global}",
        &[("GOOGLE_APPLICATION_CREDENTIALS", &path)],
    )
    .unwrap();
    assert_eq!(c.publisher, Publisher::Anthropic);
    assert_eq!(
        c.model_url,
        "https://aiplatform.googleapis.com/v1/projects/other/locations/global/publishers/anthropic/models/claude-sonnet-4-5@20250929"
    );
}

#[test]
fn missing_credentials_are_named() {
    let problems = configure("{model: vertex_ai/gemini-2.5-pro}", &[])
        .err()
        .unwrap()
        .join("\n");
    assert!(
        problems.contains(
            "model_list[0].litellm_params.vertex_credentials: provider vertex_ai needs credentials"
        ),
        "{problems}"
    );
    let problems = configure(
        "{model: vertex_ai/gemini-2.5-pro, vertex_credentials: /nonexistent.json}",
        &[],
    )
    .err()
    .unwrap()
    .join("\n");
    assert!(
        problems.contains("cannot read /nonexistent.json"),
        "{problems}"
    );
}

#[test]
fn claude_bodies_name_the_vertex_version_not_the_model() {
    let file = credentials_file();
    let path = file.0.display().to_string();
    let c = configure(
        &format!("{{model: vertex_ai/claude-sonnet-4-5, vertex_credentials: '{path}'}}"),
        &[],
    )
    .unwrap();
    let body = JsonObject::parse(
        br#"{"model":"v","messages":[{"role":"user","content":"Hi"}],"stream":true}"#,
    )
    .unwrap();
    let call = Outbound {
        endpoint: Endpoint::ChatCompletions,
        body: &body,
        stream: true,
        requested: "v",
        upstream_model: "claude-sonnet-4-5",
        drop_params: false,
    };
    let (url, sent) = c.body(&call).unwrap();
    assert!(
        url.ends_with("/publishers/anthropic/models/claude-sonnet-4-5:streamRawPredict"),
        "{url}"
    );
    assert_eq!(sent["anthropic_version"], ANTHROPIC_VERSION);
    assert!(sent.get("model").is_none());
    assert_eq!(sent["messages"][0]["content"][0]["text"], "Hi");
}

#[test]
fn embeddings_use_predict_instances() {
    let body = JsonObject::parse(br#"{"model":"v","input":["a","b"],"dimensions":8}"#).unwrap();
    let call = Outbound {
        endpoint: Endpoint::Embeddings,
        body: &body,
        stream: false,
        requested: "v",
        upstream_model: "text-embedding-005",
        drop_params: false,
    };
    assert_eq!(
        embed_request(&call).unwrap(),
        json!({"instances": [{"content": "a"}, {"content": "b"}], "parameters": {"outputDimensionality": 8}})
    );
    let answer = br#"{"predictions":[{"embeddings":{"values":[0.5],"statistics":{"token_count":2,"truncated":false}}},{"embeddings":{"values":[0.25],"statistics":{"token_count":1}}}]}"#;
    let (list, usage) = embed_answer(&call, answer).unwrap();
    assert_eq!(list["data"][1]["embedding"], json!([0.25]));
    assert_eq!(usage.prompt_tokens, 3);
}
