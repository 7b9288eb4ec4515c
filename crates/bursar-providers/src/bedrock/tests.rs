//! Golden cases (`tests/golden/bedrock/`), SigV4 against botocore's signatures, settings.

use super::*;
use crate::framing::Translator;
use crate::golden;
use serde_json::Value;
use std::time::{Duration, UNIX_EPOCH};

struct Subject;

impl golden::Subject for Subject {
    fn request(&self, case: &golden::Case, call: &Outbound<'_>) -> Result<Value, ProviderError> {
        match call.endpoint {
            Endpoint::Embeddings => {
                let model = case
                    .get("embedding_model")
                    .as_str()
                    .unwrap_or("amazon.titan-embed-text-v2:0");
                translate::embed_request(call, EmbedFamily::of(model).unwrap())
            }
            _ => translate::converse_request(call),
        }
    }

    fn complete(
        &self,
        _: &golden::Case,
        call: &Outbound<'_>,
        body: &[u8],
    ) -> Result<(Value, crate::Usage), ProviderError> {
        match call.endpoint {
            Endpoint::Embeddings => translate::embed_answer(body, call.requested, false, 3),
            _ => translate::converse_answer(
                body,
                call.requested,
                call.wants_json_schema(),
                golden::CREATED,
            ),
        }
    }

    fn translator(&self, _: &golden::Case, call: &Outbound<'_>) -> Box<dyn Translator> {
        Box::new(translate::StreamTranslator::new(
            call.requested,
            golden::CREATED,
            call.wants_json_schema(),
        ))
    }

    fn error(&self, status: u16, body: &[u8]) -> ProviderError {
        // Cases give the error type in the body's `__type`, as Bedrock also does.
        let kind = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v["__type"].as_str().map(str::to_string))
            .unwrap_or_default();
        translate::exception(&kind, status, body)
    }
}

#[test]
fn golden_translations() {
    golden::run("bedrock", &Subject);
}

fn configure(params: &str, env: &[(&str, &str)]) -> Result<Bedrock, Vec<String>> {
    crate::params::configure_for_test(params, env, Bedrock::configure)
}

/// The cases' expected headers are botocore's (tests/python/sigv4_botocore.py computes them,
/// and the Python test group checks botocore still does).
#[test]
fn sigv4_signatures_match_botocore() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sigv4.json");
    let cases: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let token = case["session_token"].as_str();
        let b = Bedrock {
            region: case["region"].as_str().unwrap().into(),
            endpoint: String::new(),
            model_path: String::new(),
            model_id: String::new(),
            auth: Auth::SigV4 {
                access_key_id: Secret::new(case["access_key_id"].as_str().unwrap()),
                secret_access_key: Secret::new(case["secret_access_key"].as_str().unwrap()),
                session_token: token.map(Secret::new),
            },
            headers: HeaderMap::new(),
        };
        let mut headers = HeaderMap::new();
        for (k, v) in case["headers"].as_object().unwrap() {
            headers.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v.as_str().unwrap()).unwrap(),
            );
        }
        let time = chrono_free_time(case["time"].as_str().unwrap());
        b.authorize(
            case["url"].as_str().unwrap(),
            &mut headers,
            case["body"].as_str().unwrap().as_bytes(),
            time,
        )
        .unwrap();
        for (name, want) in case["expected"].as_object().unwrap() {
            assert_eq!(
                headers[name.as_str()],
                want.as_str().unwrap(),
                "{}: {name}",
                case["description"]
            );
        }
        assert_eq!(
            headers.contains_key("x-amz-security-token"),
            token.is_some()
        );
    }
}

/// `20261202T120000Z` as a time, without a date crate.
fn chrono_free_time(s: &str) -> SystemTime {
    let n = |a: usize, b: usize| s[a..b].parse::<i64>().unwrap();
    let (y, m, d) = (n(0, 4), n(4, 6), n(6, 8));
    let (hh, mm, ss) = (n(9, 11), n(11, 13), n(13, 15));
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    UNIX_EPOCH + Duration::from_secs((days * 86_400 + hh * 3600 + mm * 60 + ss) as u64)
}

#[test]
fn settings_credentials_and_model_ids() {
    let b = configure(
        "{model: bedrock/converse/us.anthropic.claude-sonnet-4-5-20250929-v1:0, aws_region_name: us-west-2, aws_access_key_id: AK, aws_secret_access_key: SK}",
        &[],
    )
    .unwrap();
    assert_eq!(b.model_id(), "us.anthropic.claude-sonnet-4-5-20250929-v1:0");
    assert_eq!(
        b.model_path,
        "us.anthropic.claude-sonnet-4-5-20250929-v1%3A0"
    );
    assert_eq!(
        b.endpoint,
        "https://bedrock-runtime.us-west-2.amazonaws.com"
    );
    let from_env = configure(
        "{model: bedrock/amazon.nova-pro-v1:0}",
        &[
            ("AWS_REGION", "eu-central-1"),
            ("AWS_ACCESS_KEY_ID", "A"),
            ("AWS_SECRET_ACCESS_KEY", "S"),
            ("AWS_SESSION_TOKEN", "T"),
        ],
    )
    .unwrap();
    assert!(matches!(
        from_env.auth,
        Auth::SigV4 {
            session_token: Some(_),
            ..
        }
    ));
    assert_eq!(from_env.region, "eu-central-1");
    let bearer = configure(
        "{model: bedrock/m, aws_region_name: us-east-1, api_key: bedrock-api-key}",
        &[],
    )
    .unwrap();
    assert!(matches!(bearer.auth, Auth::Bearer(_)));
    let problems = configure("{model: bedrock/m}", &[])
        .err()
        .unwrap()
        .join("\n");
    assert!(
        problems.contains("aws_region_name: provider bedrock needs a region"),
        "{problems}"
    );
    assert!(
        problems.contains("aws_access_key_id: provider bedrock needs credentials"),
        "{problems}"
    );
}
