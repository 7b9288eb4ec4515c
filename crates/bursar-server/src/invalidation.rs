//! Cross-instance cache invalidation. Every management write drops what it changed from this
//! instance's caches and broadcasts the same to every other instance: over Redis pub/sub
//! when Redis is configured, else over PostgreSQL `LISTEN/NOTIFY`. A single SQLite instance
//! broadcasts nothing.
//!
//! Messages can be missed (a subscriber reconnecting). A subscriber that reconnects drops
//! every cached principal, and cached snapshots expire after a minute anyway, so a missed
//! message delays a change by at most that long.

use crate::state::AppState;
use bursar_store::Store;
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What a write changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Invalidation {
    /// A key, by hash (its rotated-away secrets included).
    Key(String),
    /// Every key of a team.
    Team(String),
    /// An end user (customer), by id.
    EndUser(String),
    /// Everything (budget rows, users and organizations shared by many keys, resets).
    All,
}

/// The wire format: the change plus who sent it, so an instance skips its own messages.
#[derive(Debug, Serialize, Deserialize)]
struct Message {
    from: String,
    #[serde(flatten)]
    change: Invalidation,
}

/// Where invalidations travel between instances.
#[derive(Clone)]
pub enum Channel {
    Redis {
        /// For subscriptions (a dedicated connection each); boxed, as it is large.
        client: Box<redis::Client>,
        /// For publishing; reconnects by itself.
        publisher: ConnectionManager,
        channel: String,
    },
    Postgres {
        store: Store,
        channel: String,
    },
}

/// PostgreSQL's channel name in the default schema. `NOTIFY` channels are per database, so
/// instances on another schema of the same database (another deployment) get a channel of
/// their own: see [`postgres_channel`].
pub const POSTGRES_CHANNEL: &str = "bursar_invalidate";

/// The channel of the instances whose tables are in `schema`.
pub fn postgres_channel(schema: Option<&str>) -> String {
    match schema {
        None | Some("public") => POSTGRES_CHANNEL.to_string(),
        Some(other) => {
            let digest = bursar_core::keys::hash_key(other);
            // Channel names are identifiers: at most 63 bytes.
            format!("{POSTGRES_CHANNEL}_{}", &digest[..16])
        }
    }
}

impl Channel {
    /// Redis pub/sub at `url`, on the namespace's channel.
    pub fn redis(url: &str, namespace: &str) -> Result<Channel, String> {
        let client = bursar_limits::redis_client(url)?;
        let timeout = Some(Duration::from_secs(2));
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout)
            .set_number_of_retries(1);
        let publisher = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| format!("cannot set up the Redis connection: {e}"))?;
        Ok(Channel::Redis {
            client: Box::new(client),
            publisher,
            channel: Channel::redis_channel(namespace),
        })
    }

    /// Redis's channel for a key namespace: `{<namespace>}:v1:invalidate`.
    pub fn redis_channel(namespace: &str) -> String {
        format!(
            "{{{namespace}}}:v{}:invalidate",
            bursar_limits::LAYOUT_VERSION
        )
    }
}

/// The sending half kept by the caches; sends never wait (a task publishes in order).
#[derive(Clone, Default)]
pub struct Broadcast {
    tx: Option<mpsc::UnboundedSender<Invalidation>>,
}

impl Broadcast {
    pub fn send(&self, change: Invalidation) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(change);
        }
    }
}

/// A broadcast for `channel` and the receiving end its publisher task drains.
pub fn broadcast() -> (Broadcast, mpsc::UnboundedReceiver<Invalidation>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Broadcast { tx: Some(tx) }, rx)
}

/// Publishes this instance's invalidations until the sending side is dropped or `stop`.
pub async fn publish(
    channel: Channel,
    instance: String,
    mut rx: mpsc::UnboundedReceiver<Invalidation>,
    stop: CancellationToken,
) {
    loop {
        let change = tokio::select! {
            () = stop.cancelled() => return,
            change = rx.recv() => match change {
                Some(change) => change,
                None => return,
            },
        };
        let payload = match serde_json::to_string(&Message {
            from: instance.clone(),
            change,
        }) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode an invalidation");
                continue;
            }
        };
        // One retry (a lost Redis connection is re-established meanwhile); after that the
        // message is dropped and the other instances catch up by expiry.
        for attempt in 0..2 {
            let send = async {
                match &channel {
                    Channel::Redis {
                        publisher, channel, ..
                    } => {
                        let mut conn = publisher.clone();
                        let mut cmd = redis::cmd("PUBLISH");
                        cmd.arg(channel).arg(&payload);
                        cmd.query_async::<i64>(&mut conn)
                            .await
                            .map(drop)
                            .map_err(|e| e.to_string())
                    }
                    Channel::Postgres { store, channel } => store
                        .notify(channel, &payload)
                        .await
                        .map_err(|e| e.to_string()),
                }
            };
            // Shutdown does not wait for a Redis that is not answering.
            let sent = tokio::select! {
                () = stop.cancelled() => return,
                sent = send => sent,
            };
            match sent {
                Ok(()) => break,
                Err(e) => {
                    if attempt == 1 {
                        tracing::warn!(error = %e, "could not broadcast an invalidation; other instances see the change when their cache expires");
                    }
                }
            }
        }
    }
}

/// Applies other instances' invalidations to this one's caches until `stop`, reconnecting
/// after failures (and then dropping everything cached, since messages may have been missed).
/// `ready` fires once the first subscription is in place (startup waits for it, so an
/// instance does not serve before it can hear about blocked keys).
pub async fn subscribe(
    state: AppState,
    channel: Channel,
    instance: String,
    ready: tokio::sync::oneshot::Sender<()>,
    stop: CancellationToken,
) {
    let mut ready = Some(ready);
    loop {
        let outcome = tokio::select! {
            () = stop.cancelled() => return,
            outcome = listen_once(&state, &channel, &instance, &mut ready) => outcome,
        };
        if let Err(e) = outcome {
            tracing::warn!(error = %e, "invalidation subscription lost; reconnecting");
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

async fn listen_once(
    state: &AppState,
    channel: &Channel,
    instance: &str,
    ready: &mut Option<tokio::sync::oneshot::Sender<()>>,
) -> Result<(), String> {
    match channel {
        Channel::Redis {
            client, channel, ..
        } => {
            let mut pubsub = client.get_async_pubsub().await.map_err(|e| e.to_string())?;
            pubsub.subscribe(channel).await.map_err(|e| e.to_string())?;
            connected(state, ready).await;
            let mut messages = pubsub.into_on_message();
            while let Some(msg) = messages.next().await {
                if let Ok(payload) = msg.get_payload::<String>() {
                    receive(state, instance, &payload).await;
                }
            }
            Err("Redis closed the subscription".to_string())
        }
        Channel::Postgres { store, channel } => {
            let Some(mut listener) = store.listen(channel).await.map_err(|e| e.to_string())? else {
                // SQLite serves a single instance: nothing to listen to.
                std::future::pending::<()>().await;
                return Ok(());
            };
            connected(state, ready).await;
            loop {
                match listener.recv().await.map_err(|e| e.to_string())? {
                    Some(payload) => receive(state, instance, &payload).await,
                    None => {
                        // The connection is gone, and what is sent until it is back is lost.
                        // The cache is dropped once a new subscription is in place
                        // ([`connected`]), not now: while the database is unreachable its
                        // snapshots are what keeps requests served.
                        return Err("the invalidation listener lost its connection".into());
                    }
                }
            }
        }
    }
}

async fn connected(state: &AppState, ready: &mut Option<tokio::sync::oneshot::Sender<()>>) {
    match ready.take() {
        Some(first) => {
            let _ = first.send(());
        }
        None => {
            tracing::info!("invalidation subscription restored; dropping every cached principal");
            state.forget(&Invalidation::All).await;
        }
    }
}

async fn receive(state: &AppState, instance: &str, payload: &str) {
    let message: Message = match serde_json::from_str(payload) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "ignoring a malformed invalidation message");
            return;
        }
    };
    if message.from == instance {
        return;
    }
    state
        .counters()
        .invalidations_received
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    state.forget(&message.change).await;
    // A snapshot this instance was loading while the write committed could be cached just
    // after the drop; dropping again a moment later catches it.
    let (state, change) = (state.clone(), message.change);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(250)).await;
        state.forget(&change).await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_with_their_sender() {
        let text = serde_json::to_string(&Message {
            from: "i1".into(),
            change: Invalidation::Team("t-1".into()),
        })
        .unwrap_or_default();
        assert_eq!(text, r#"{"from":"i1","kind":"team","id":"t-1"}"#);
        let all = serde_json::to_string(&Message {
            from: "i1".into(),
            change: Invalidation::All,
        })
        .unwrap_or_default();
        assert_eq!(all, r#"{"from":"i1","kind":"all"}"#);
        let back: Message = serde_json::from_str(&all).unwrap_or(Message {
            from: String::new(),
            change: Invalidation::Key(String::new()),
        });
        assert_eq!(back.change, Invalidation::All);
    }
}

#[cfg(test)]
mod channel_tests {
    use super::postgres_channel;

    #[test]
    fn each_schema_has_its_own_channel() {
        assert_eq!(postgres_channel(Some("public")), "bursar_invalidate");
        assert_eq!(postgres_channel(None), "bursar_invalidate");
        let a = postgres_channel(Some("tenant_a"));
        let b = postgres_channel(Some("tenant_b"));
        assert_ne!(a, b);
        assert!(a.starts_with("bursar_invalidate_") && a.len() <= 63, "{a}");
        assert_eq!(
            a,
            postgres_channel(Some("tenant_a")),
            "stable across instances"
        );
    }
}
