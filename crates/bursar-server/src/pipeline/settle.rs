//! The charge travels forward with the call: held here, it settles exactly once — when a
//! complete answer arrives, when a stream ends (the tap's finish hook), when routing fails,
//! or, if the request is dropped on the way, by the estimate (`Charge`'s `Drop`).

use crate::charge::{Charge, Outcome};
use bursar_core::money::NanoUsd;
use bursar_providers::{FinishHook, RouteError, Router, StreamSummary, Target, Usage};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

#[derive(Clone)]
pub struct ChargeHold(Arc<Mutex<Option<Charge>>>);

impl ChargeHold {
    pub fn new(charge: Charge) -> ChargeHold {
        ChargeHold(Arc::new(Mutex::new(Some(charge))))
    }

    fn lock(&self) -> MutexGuard<'_, Option<Charge>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn take(&self) -> Option<Charge> {
        self.lock().take()
    }

    /// The deployment that answers: its price and names go on the spend log.
    pub fn routed(&self, target: &Target) {
        if let Some(charge) = self.lock().as_mut() {
            charge.routed(target);
        }
    }

    /// Settles a stream when it ends, completely or not.
    pub fn stream_hook(&self, call_id: &str, model: &str) -> FinishHook {
        let hold = self.clone();
        let (call_id, model) = (call_id.to_string(), model.to_string());
        Box::new(move |summary: StreamSummary| {
            tracing::debug!(
                call_id = %call_id,
                model = %model,
                completed = summary.completed,
                usage = ?summary.usage,
                "stream finished"
            );
            if let Some(mut charge) = hold.take() {
                charge.answered(summary.response_id.clone());
                let usage = summary.usage.as_ref();
                match (&summary.error, summary.completed) {
                    (None, true) => charge.finish_now(Outcome::Success(usage)),
                    (Some(e), _) => charge.finish_now(Outcome::Incomplete(usage, &e.to_string())),
                    (None, false) => {
                        charge.finish_now(Outcome::Incomplete(usage, "client closed the stream"))
                    }
                }
            }
        })
    }

    /// Settles a complete answer; its cost.
    pub async fn complete(&self, response_id: Option<String>, usage: Option<&Usage>) -> NanoUsd {
        match self.take() {
            Some(mut charge) => {
                charge.answered(response_id);
                charge.finish(Outcome::Success(usage)).await
            }
            None => NanoUsd::ZERO,
        }
    }

    /// Settles a call no deployment answered (nothing is charged; the failure is logged).
    pub async fn failed(&self, router: &Router, model: &str, error: &RouteError) {
        if let Some(mut charge) = self.take() {
            // The router does not say which deployment failed; a group of one does.
            if let Some([only]) = router.deployments(model) {
                charge.routed(only);
            }
            charge.finish(Outcome::Failed(&error.to_string())).await;
        }
    }
}
