//! The budget reset job: every `reset_interval`, stored spend goes back to zero for every
//! budget whose period ended (keys, users, teams, and through their budget rows
//! organizations, memberships and end users). The store makes each reset happen once however
//! many instances run this; the instance that did it drops its cached copies.

use crate::state::AppState;
use bursar_store::ResetReport;
use tokio_util::sync::CancellationToken;

/// Runs the job until `stop` fires.
pub async fn run_budget_resets(state: AppState, stop: CancellationToken) {
    let mut tick = tokio::time::interval(state.config().admission.reset_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match state
            .store()
            .resets()
            .reset_due(bursar_store::now_ms())
            .await
        {
            Ok(report) if !report.is_empty() => forget(&state, &report),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "budget reset pass failed; retrying next tick"),
        }
    }
}

/// Drops cached rows whose spend was reset, so management reads and the next request see it.
fn forget(state: &AppState, report: &ResetReport) {
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
