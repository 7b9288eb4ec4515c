//! What one data-plane request is charged, worked out once and given to both the limiter
//! (settling its reservation) and the spend ledger (one [`SpendEvent`]), so the live counters
//! and the database always agree to the nano-dollar.

use crate::admission::Admitted;
use crate::auth::Principal;
use bursar_core::money::NanoUsd;
use bursar_core::pricing::Price;
use bursar_limits::Demand;
use bursar_providers::{Endpoint, JsonObject, Target, Usage};
use bursar_store::{Ledger, MASTER_KEY_ATTRIBUTION, SpendEvent};
use serde_json::{Map, Value, json};

/// Tags kept per request, and the longest tag kept (spend-log rows stay small).
const MAX_TAGS: usize = 16;
const MAX_TAG_LEN: usize = 128;
/// The client's `metadata.spend_logs_metadata` is kept when its JSON is at most this long.
const MAX_CLIENT_METADATA: usize = 2_048;
/// A body `metadata` larger than this is not read for tags or spend-log metadata.
const MAX_BODY_METADATA: usize = 64 * 1024;

/// Who made a request and what it asked for: the parts of its spend event known before the
/// upstream answers.
pub struct Origin<'a> {
    pub request_id: String,
    /// The call id the client sees (`x-litellm-call-id`; its own when it sent one).
    pub call_id: &'a str,
    pub endpoint: Endpoint,
    pub principal: &'a Principal,
    pub end_user: Option<&'a str>,
    pub model_group: &'a str,
    pub body: &'a JsonObject,
    /// The client's address.
    pub requester_ip: Option<String>,
}

/// How a request ended.
pub enum Outcome<'a> {
    /// The upstream answered (for a stream: it finished).
    Success(Option<&'a Usage>),
    /// No answer: an upstream error. Nothing is charged.
    Failed(&'a str),
    /// The answer did not reach its end (the client left mid-stream, or the stream broke):
    /// charged by its usage when the upstream reported one, else by its estimate.
    Incomplete(Option<&'a Usage>, &'a str),
}

/// One request's bill: its admission hold, its price and its spend event.
pub struct Charge {
    admitted: Option<Admitted>,
    price: Price,
    ledger: Option<Ledger>,
    event: SpendEvent,
    done: bool,
}

impl Charge {
    pub fn new(
        origin: Origin<'_>,
        admitted: Option<Admitted>,
        price: Price,
        ledger: Option<Ledger>,
    ) -> Charge {
        let (api_key, key_alias, team_id, organization_id) = match origin.principal {
            Principal::MasterKey => (MASTER_KEY_ATTRIBUTION.to_string(), None, None, None),
            Principal::VirtualKey(s) => (
                s.key.token.clone(),
                s.key.key_alias.clone(),
                s.key.team_id.clone(),
                s.key
                    .organization_id
                    .clone()
                    .or_else(|| s.team.as_ref().and_then(|t| t.organization_id.clone())),
            ),
        };
        // The body's `metadata`, parsed once for its tags and `spend_logs_metadata`.
        let body_metadata = origin
            .body
            .get("metadata")
            .filter(|raw| raw.get().len() <= MAX_BODY_METADATA)
            .and_then(|raw| serde_json::from_str::<Value>(raw.get()).ok());
        // LiteLLM's `user_api_key_*` fields (null when unknown) and the call id, which the
        // row's `request_id` no longer carries once the upstream's answer id is known.
        let (user_email, team_alias) = match origin.principal {
            Principal::VirtualKey(s) => (
                s.user.as_ref().and_then(|u| u.user_email.clone()),
                s.team.as_ref().and_then(|t| t.team_alias.clone()),
            ),
            Principal::MasterKey => (None, None),
        };
        let mut metadata = Map::new();
        metadata.insert("user_api_key".into(), json!(api_key));
        metadata.insert("user_api_key_alias".into(), json!(key_alias));
        metadata.insert("user_api_key_team_id".into(), json!(team_id));
        metadata.insert("user_api_key_team_alias".into(), json!(team_alias));
        metadata.insert("user_api_key_org_id".into(), json!(organization_id));
        metadata.insert(
            "user_api_key_user_id".into(),
            json!(origin.principal.user_id()),
        );
        metadata.insert("user_api_key_user_email".into(), json!(user_email));
        metadata.insert("user_api_key_project_id".into(), Value::Null);
        metadata.insert("user_api_key_project_alias".into(), Value::Null);
        metadata.insert("litellm_call_id".into(), json!(origin.call_id));
        if let Some(client) = body_metadata
            .as_ref()
            .and_then(|m| m.get("spend_logs_metadata"))
            .filter(|c| c.is_object() && c.to_string().len() <= MAX_CLIENT_METADATA)
        {
            metadata.insert("spend_logs_metadata".into(), client.clone());
        }
        let now = bursar_store::now_ms();
        Charge {
            event: SpendEvent {
                request_id: origin.request_id,
                call_type: origin.endpoint.call_type().to_string(),
                endpoint: origin.endpoint.path().to_string(),
                api_key,
                key_alias,
                user_id: origin.principal.user_id().map(str::to_string),
                team_id,
                organization_id,
                end_user: origin.end_user.map(str::to_string),
                model_group: origin.model_group.to_string(),
                start_time: now,
                end_time: now,
                success: false,
                tags: tags(origin.principal, body_metadata.as_ref(), origin.body),
                metadata: Value::Object(metadata),
                requester_ip: origin.requester_ip,
                ..SpendEvent::default()
            },
            admitted,
            price,
            ledger,
            done: false,
        }
    }

    /// The id of the answer the client receives: the spend log's LiteLLM `request_id`.
    pub fn answered(&mut self, response_id: Option<String>) {
        self.event.response_id = response_id;
    }

    pub fn admitted(&self) -> Option<&Admitted> {
        self.admitted.as_ref()
    }

    /// The deployment that answered: its price replaces the estimate's (the dearest of the
    /// group), and it is named on the spend log.
    pub fn routed(&mut self, target: &Target) {
        let deployment = &target.deployment;
        self.price = deployment.price();
        let e = &mut self.event;
        e.model = deployment.litellm_model.clone();
        e.model_id = deployment.id.clone();
        e.provider = target.provider().to_string();
        e.api_base = target.api_base().unwrap_or_default().to_string();
    }

    /// What a request with this usage costs: its tokens at the deployment's price; without
    /// usage, the admission estimate (none without a reservation).
    fn demand(&self, usage: Option<&Usage>) -> Demand {
        match usage {
            Some(u) => Demand {
                cost: self.price.cost_of(&u.counts()),
                tokens: u.total_tokens.max(u.prompt_tokens + u.completion_tokens),
                ..Demand::default()
            },
            None => self
                .admitted
                .as_ref()
                .map(Admitted::estimate)
                .unwrap_or_default(),
        }
    }

    /// Works out the charge and fills in the event; the caller settles and submits.
    fn close(&mut self, outcome: &Outcome<'_>) -> (Demand, SpendEvent) {
        self.done = true;
        let (demand, usage, error) = match outcome {
            Outcome::Success(usage) => (self.demand(*usage), *usage, None),
            Outcome::Failed(error) => (Demand::default(), None, Some(*error)),
            Outcome::Incomplete(usage, error) => (self.demand(*usage), *usage, Some(*error)),
        };
        let mut event = std::mem::take(&mut self.event);
        event.end_time = bursar_store::now_ms().max(event.start_time);
        event.success = error.is_none();
        event.spend_nano = demand.cost.0;
        if let Some(u) = usage {
            event.prompt_tokens = u.prompt_tokens;
            event.completion_tokens = u.completion_tokens;
            event.total_tokens = u.total_tokens.max(u.prompt_tokens + u.completion_tokens);
            event.cache_read_input_tokens = u.cache_read_input_tokens;
            event.cache_creation_input_tokens = u.cache_creation_input_tokens;
        }
        if let (Some(error), Value::Object(m)) = (error, &mut event.metadata) {
            m.insert("status".into(), json!("failure"));
            m.insert("error_information".into(), json!({"error_message": error}));
        }
        (demand, event)
    }

    fn submit(&self, event: SpendEvent) {
        if let Some(ledger) = &self.ledger {
            ledger.submit(event);
        }
    }

    /// Settles the reservation and records the request; returns what it cost.
    pub async fn finish(mut self, outcome: Outcome<'_>) -> NanoUsd {
        let (demand, event) = self.close(&outcome);
        if let Some(admitted) = self.admitted.take() {
            match outcome {
                Outcome::Failed(_) => admitted.release().await,
                _ => admitted.settle(demand).await,
            }
        }
        self.submit(event);
        demand.cost
    }

    /// [`Charge::finish`] from a context that cannot wait (a stream's finish hook).
    pub fn finish_now(mut self, outcome: Outcome<'_>) {
        let (demand, event) = self.close(&outcome);
        if let Some(admitted) = self.admitted.take() {
            admitted.settle_later(demand);
        }
        self.submit(event);
    }
}

impl Drop for Charge {
    /// A request dropped before it finished: the client went away while the upstream was
    /// working. It is charged like an abandoned stream, by its estimate.
    fn drop(&mut self) {
        if !self.done {
            let (demand, event) =
                self.close(&Outcome::Incomplete(None, "client closed the connection"));
            if let Some(admitted) = self.admitted.take() {
                admitted.settle_later(demand);
            }
            self.submit(event);
        }
    }
}

/// The request's tags: the body's `metadata.tags` (or top-level `tags`), then the key's and
/// the team's `metadata.tags`, without repeats.
fn tags(principal: &Principal, metadata: Option<&Value>, body: &JsonObject) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |value: Option<&Value>| {
        for tag in value.and_then(Value::as_array).into_iter().flatten() {
            if let Some(t) = tag.as_str()
                && !t.is_empty()
                && t.len() <= MAX_TAG_LEN
                && out.len() < MAX_TAGS
                && !out.iter().any(|o| o == t)
            {
                out.push(t.to_string());
            }
        }
    };
    add(metadata.and_then(|m| m.get("tags")));
    add(body.get_as::<Value>("tags").and_then(Result::ok).as_ref());
    if let Principal::VirtualKey(s) = principal {
        add(s.key.metadata.get("tags"));
        add(s.team.as_ref().and_then(|t| t.metadata.get("tags")));
    }
    out
}
