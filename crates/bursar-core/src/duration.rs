//! LiteLLM duration strings (`30s`, `15m`, `12h`, `30d`, `1w`, `1mo`), used for budget
//! periods, key lifetimes and timeouts.

use std::fmt;
use std::time::Duration;

/// A parsed duration. Months are calendar months, so they are kept apart from fixed spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetDuration {
    Seconds(u64),
    Months(u32),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: expected a number followed by s, m, h, d, w or mo (e.g. 30d)")]
pub struct DurationError {
    pub input: String,
}

impl BudgetDuration {
    /// Parses `N`, `Ns`, `Nm`, `Nh`, `Nd`, `Nw` or `Nmo`. A bare number means seconds, as in
    /// LiteLLM's `duration_parser`.
    pub fn parse(input: &str) -> Result<BudgetDuration, DurationError> {
        let err = || DurationError {
            input: input.to_string(),
        };
        let text = input.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        if digits.is_empty() {
            return Err(err());
        }
        let n: u64 = digits.parse().map_err(|_| err())?;
        let secs = |mult: u64| {
            n.checked_mul(mult)
                .map(BudgetDuration::Seconds)
                .ok_or_else(err)
        };
        match unit {
            "" | "s" => secs(1),
            "m" => secs(60),
            "h" => secs(3_600),
            "d" => secs(86_400),
            "w" => secs(604_800),
            "mo" => u32::try_from(n)
                .map(BudgetDuration::Months)
                .map_err(|_| err()),
            _ => Err(err()),
        }
    }

    /// The span as a fixed duration; a month counts as 30 days here (used only where a
    /// calendar is not available, e.g. cache lifetimes).
    /// [`Self::approximate`] in milliseconds, saturating.
    pub fn millis(self) -> i64 {
        i64::try_from(self.approximate().as_millis()).unwrap_or(i64::MAX)
    }

    /// The time one duration after `from_ms` (epoch milliseconds), saturating.
    pub fn after(self, from_ms: i64) -> i64 {
        from_ms.saturating_add(self.millis())
    }

    /// The first reset strictly after `now_ms` of a period that resets at `reset_at` and then
    /// every duration (whole periods are stepped over, never drifted).
    pub fn next_reset(self, reset_at: i64, now_ms: i64) -> i64 {
        let step = self.millis().max(1);
        if now_ms < reset_at {
            return reset_at;
        }
        let missed = (now_ms - reset_at) / step + 1;
        reset_at.saturating_add(missed.saturating_mul(step))
    }

    pub fn approximate(self) -> Duration {
        match self {
            BudgetDuration::Seconds(s) => Duration::from_secs(s),
            BudgetDuration::Months(m) => Duration::from_secs(u64::from(m) * 30 * 86_400),
        }
    }
}

impl fmt::Display for BudgetDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BudgetDuration::Seconds(s) => write!(f, "{s}s"),
            BudgetDuration::Months(m) => write!(f, "{m}mo"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_reset_steps_whole_periods() {
        let d = BudgetDuration::Seconds(10);
        assert_eq!(d.next_reset(1_000, 500), 1_000);
        assert_eq!(d.next_reset(1_000, 1_000), 11_000);
        assert_eq!(d.next_reset(1_000, 10_999), 11_000);
        assert_eq!(d.next_reset(1_000, 11_000), 21_000);
        assert_eq!(d.next_reset(1_000, 95_000), 101_000);
    }

    #[test]
    fn parses_every_litellm_unit() {
        assert_eq!(
            BudgetDuration::parse("30s"),
            Ok(BudgetDuration::Seconds(30))
        );
        assert_eq!(
            BudgetDuration::parse("30m"),
            Ok(BudgetDuration::Seconds(1_800))
        );
        assert_eq!(
            BudgetDuration::parse("2h"),
            Ok(BudgetDuration::Seconds(7_200))
        );
        assert_eq!(
            BudgetDuration::parse("30d"),
            Ok(BudgetDuration::Seconds(2_592_000))
        );
        assert_eq!(
            BudgetDuration::parse("1w"),
            Ok(BudgetDuration::Seconds(604_800))
        );
        assert_eq!(BudgetDuration::parse("1mo"), Ok(BudgetDuration::Months(1)));
        assert_eq!(BudgetDuration::parse("45"), Ok(BudgetDuration::Seconds(45)));
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "d", "10x", "1.5h", "-3d", "99999999999999999999s"] {
            assert!(BudgetDuration::parse(bad).is_err(), "{bad} should fail");
        }
    }
}
