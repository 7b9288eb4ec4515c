//! The budget reset job: every `reset_interval`, stored spend goes back to zero for every
//! budget whose period ended (keys, users, teams, and through their budget rows
//! organizations, memberships and end users).
//!
//! Of several instances on one database only the holder of the `budget_resets` lease runs
//! it; the lease lasts three intervals and is renewed every pass, so another instance takes
//! over within three intervals when the holder stops. Each reset is also a conditional write,
//! so even two runners at once could not reset one period twice. The instance that reset
//! something drops cached copies everywhere.

use crate::state::AppState;
use bursar_store::ResetReport;
use std::sync::atomic::Ordering;
use tokio_util::sync::CancellationToken;

/// The lease name of the budget reset job.
const RESET_JOB: &str = "budget_resets";

/// Runs the job until `stop` fires.
pub async fn run_budget_resets(state: AppState, stop: CancellationToken) {
    let interval = state.config().admission.reset_interval;
    let lease_ms = i64::try_from(interval.as_millis())
        .unwrap_or(i64::MAX / 4)
        .saturating_mul(3)
        .max(3_000);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = bursar_store::now_ms();
        match state
            .store()
            .resets()
            .lease(RESET_JOB, state.instance_id(), now, lease_ms)
            .await
        {
            Ok(true) => {}
            Ok(false) => continue, // another instance runs it
            Err(e) => {
                tracing::warn!(error = %e, "cannot take the budget reset lease; retrying next tick");
                continue;
            }
        }
        state.counters().reset_runs.fetch_add(1, Ordering::Relaxed);
        match state.store().resets().reset_due(now).await {
            Ok(report) if !report.is_empty() => forget(&state, &report),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "budget reset pass failed; retrying next tick"),
        }
    }
}

/// Drops cached rows whose spend was reset, so management reads and the next request see it.
fn forget(state: &AppState, report: &ResetReport) {
    let count = report.keys.len() + report.users.len() + report.teams.len() + report.budgets.len();
    state
        .counters()
        .budgets_reset
        .fetch_add(count as u64, Ordering::Relaxed);
    tracing::info!(
        keys = report.keys.len(),
        users = report.users.len(),
        teams = report.teams.len(),
        budgets = report.budgets.len(),
        "reset spend for budgets whose period ended"
    );
    state.auth_cache().invalidate_all();
    state.end_users().invalidate_all();
}
