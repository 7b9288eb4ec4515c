//! Google OAuth access tokens for Vertex AI, from a service-account key (a JWT signed with
//! RS256, exchanged at its `token_uri`) or an authorized-user file (a refresh token). A
//! token is cached until a minute before it expires; concurrent requests wait for one
//! refresh rather than each fetching their own.

use crate::error::ProviderError;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bursar_core::keys::Secret;
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde::Deserialize;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Mutex;

pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// A token is replaced this long before it expires.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// A credentials file as Google writes them (`type` decides which fields matter).
#[derive(Deserialize)]
struct CredentialsFile {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    client_email: Option<String>,
    #[serde(default)]
    private_key: Option<String>,
    #[serde(default)]
    token_uri: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
}

enum Source {
    ServiceAccount {
        email: String,
        key: RsaKeyPair,
    },
    AuthorizedUser {
        client_id: String,
        client_secret: Secret,
        refresh_token: Secret,
    },
}

pub struct TokenSource {
    source: Source,
    token_uri: String,
    /// The credentials' project, when they name one.
    pub project_id: Option<String>,
    cached: Mutex<Option<(Secret, Instant)>>,
}

impl TokenSource {
    /// Reads a credentials file's JSON (LiteLLM's `vertex_credentials` may hold the JSON
    /// itself or a path to it).
    pub fn from_json(json: &str) -> Result<TokenSource, String> {
        let file: CredentialsFile = serde_json::from_str(json)
            .map_err(|e| format!("not a Google credentials file: {e}"))?;
        let token_uri = file
            .token_uri
            .clone()
            .unwrap_or_else(|| GOOGLE_TOKEN_URI.into());
        let source = match file.kind.as_str() {
            "service_account" => {
                let email = file
                    .client_email
                    .ok_or("a service account needs client_email")?;
                let pem = file
                    .private_key
                    .ok_or("a service account needs private_key")?;
                let der = pem_body(&pem).ok_or("private_key is not a PEM private key")?;
                let key = RsaKeyPair::from_pkcs8(&der)
                    .map_err(|e| format!("private_key is not an RSA PKCS#8 key: {e}"))?;
                Source::ServiceAccount { email, key }
            }
            "authorized_user" => Source::AuthorizedUser {
                client_id: file
                    .client_id
                    .ok_or("authorized_user credentials need client_id")?,
                client_secret: Secret::new(
                    file.client_secret
                        .ok_or("authorized_user credentials need client_secret")?,
                ),
                refresh_token: Secret::new(
                    file.refresh_token
                        .ok_or("authorized_user credentials need refresh_token")?,
                ),
            },
            other => {
                return Err(format!(
                    "credentials of type {other:?} are not supported; use a service_account key or authorized_user credentials"
                ));
            }
        };
        Ok(TokenSource {
            source,
            token_uri,
            project_id: file.project_id,
            cached: Mutex::new(None),
        })
    }

    /// A valid access token, fetching a new one when the cached one is (nearly) expired.
    pub async fn token(&self, http: &reqwest::Client) -> Result<Secret, ProviderError> {
        let mut cached = self.cached.lock().await;
        if let Some((token, expires)) = cached.as_ref()
            && Instant::now() + REFRESH_MARGIN < *expires
        {
            return Ok(token.clone());
        }
        let (token, lifetime) = self.fetch(http).await?;
        *cached = Some((token.clone(), Instant::now() + lifetime));
        Ok(token)
    }

    async fn fetch(&self, http: &reqwest::Client) -> Result<(Secret, Duration), ProviderError> {
        let fail = |detail: String| ProviderError::Upstream {
            provider: "vertex_ai".into(),
            status: 401,
            message: format!("cannot get a Google access token: {detail}"),
            kind: Some("authentication_error".into()),
            param: None,
            class: None,
        };
        let form: Vec<(&str, String)> = match &self.source {
            Source::ServiceAccount { email, key } => vec![
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:jwt-bearer".into(),
                ),
                (
                    "assertion",
                    self.assertion(email, key, SystemTime::now())
                        .map_err(fail)?,
                ),
            ],
            Source::AuthorizedUser {
                client_id,
                client_secret,
                refresh_token,
            } => vec![
                ("grant_type", "refresh_token".into()),
                ("client_id", client_id.clone()),
                ("client_secret", client_secret.expose().into()),
                ("refresh_token", refresh_token.expose().into()),
            ],
        };
        let body = form
            .iter()
            .map(|(k, v)| format!("{k}={}", form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let response = http
            .post(&self.token_uri)
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| fail(e.to_string()))?;
        if !status.is_success() {
            return Err(fail(format!(
                "{} answered {status}: {}",
                self.token_uri,
                text.chars().take(300).collect::<String>()
            )));
        }
        #[derive(Deserialize)]
        struct Token {
            access_token: String,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        let t: Token = serde_json::from_str(&text)
            .map_err(|e| fail(format!("unexpected token answer: {e}")))?;
        Ok((
            Secret::new(t.access_token),
            Duration::from_secs(t.expires_in.unwrap_or(3600)),
        ))
    }

    /// The signed JWT a service account trades for a token.
    fn assertion(&self, email: &str, key: &RsaKeyPair, now: SystemTime) -> Result<String, String> {
        let iat = now
            .duration_since(UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_secs();
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = serde_json::json!({
            "iss": email, "scope": SCOPE, "aud": self.token_uri, "iat": iat, "exp": iat + 3600,
        });
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signing_input = format!("{header}.{claims}");
        let mut signature = vec![0; key.public().modulus_len()];
        key.sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            signing_input.as_bytes(),
            &mut signature,
        )
        .map_err(|_| "the private key cannot sign".to_string())?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }
}

/// The DER inside a `-----BEGIN PRIVATE KEY-----` block.
fn pem_body(pem: &str) -> Option<Vec<u8>> {
    let start = pem.find("-----BEGIN PRIVATE KEY-----")? + "-----BEGIN PRIVATE KEY-----".len();
    let end = pem.find("-----END PRIVATE KEY-----")?;
    let b64: String = pem
        .get(start..end)?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD.decode(b64).ok()
}

/// `application/x-www-form-urlencoded` value encoding.
fn form_encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};

    const FIXTURE: &str = include_str!("../../tests/fixtures/vertex-service-account.json");

    #[test]
    fn the_assertion_is_an_rs256_jwt_google_accepts() {
        let source = TokenSource::from_json(FIXTURE).unwrap();
        assert_eq!(source.project_id.as_deref(), Some("bursar-test-project"));
        let Source::ServiceAccount { email, key } = &source.source else {
            panic!()
        };
        let jwt = source
            .assertion(email, key, UNIX_EPOCH + Duration::from_secs(1_800_000_000))
            .unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(
            claims["iss"],
            "bursar-test@bursar-test-project.iam.gserviceaccount.com"
        );
        assert_eq!(claims["scope"], SCOPE);
        assert_eq!(claims["aud"], source.token_uri);
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
            3600
        );
        // The signature verifies with the key's public half.
        let public = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key.public().as_ref());
        let signed = format!("{}.{}", parts[0], parts[1]);
        public
            .verify(
                signed.as_bytes(),
                &URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
            )
            .unwrap();
    }

    #[test]
    fn bad_credentials_are_named() {
        for (json, needle) in [
            ("{", "not a Google credentials file"),
            (r#"{"type":"external_account"}"#, "not supported"),
            (
                r#"{"type":"service_account","client_email":"a"}"#,
                "private_key",
            ),
            (
                r#"{"type":"service_account","client_email":"a","private_key":"nope"}"#,
                "PEM",
            ),
        ] {
            let e = TokenSource::from_json(json).err().unwrap();
            assert!(e.contains(needle), "{json}: {e}");
        }
    }
}
