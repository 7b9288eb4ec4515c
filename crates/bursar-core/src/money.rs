//! Money as an integer number of nano-USD (1e-9 USD).
//!
//! Every price, budget and spend inside Bursar is a [`NanoUsd`] so that sums are exact and
//! concurrent reservations can be compared without float drift. JSON at the API boundary is a
//! plain USD number, converted once with [`NanoUsd::from_usd`] / [`NanoUsd::as_usd`].

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An amount of money in nano-USD. Negative amounts are allowed (refunds, settlements).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NanoUsd(pub i64);

const NANOS_PER_USD: f64 = 1_000_000_000.0;

impl NanoUsd {
    pub const ZERO: NanoUsd = NanoUsd(0);

    /// Converts a USD amount, rounding to the nearest nano-USD. Returns `None` for NaN,
    /// infinities and amounts beyond ±9.2 billion USD (the i64 range).
    pub fn from_usd(usd: f64) -> Option<NanoUsd> {
        if !usd.is_finite() {
            return None;
        }
        let nanos = (usd * NANOS_PER_USD).round();
        if nanos >= i64::MAX as f64 || nanos <= i64::MIN as f64 {
            return None;
        }
        Some(NanoUsd(nanos as i64))
    }

    pub fn as_usd(self) -> f64 {
        self.0 as f64 / NANOS_PER_USD
    }

    pub fn saturating_add(self, other: NanoUsd) -> NanoUsd {
        NanoUsd(self.0.saturating_add(other.0))
    }

    pub fn saturating_sub(self, other: NanoUsd) -> NanoUsd {
        NanoUsd(self.0.saturating_sub(other.0))
    }

    /// Price per token × token count, saturating instead of overflowing.
    pub fn times(self, count: u64) -> NanoUsd {
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        NanoUsd(self.0.saturating_mul(count))
    }
}

impl Serialize for NanoUsd {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.as_usd())
    }
}

impl<'de> Deserialize<'de> for NanoUsd {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let usd = f64::deserialize(deserializer)?;
        NanoUsd::from_usd(usd)
            .ok_or_else(|| serde::de::Error::custom(format!("{usd} is not a valid USD amount")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usd_round_trips_through_nanos() {
        let amount = NanoUsd::from_usd(12.345678901).unwrap();
        assert_eq!(amount, NanoUsd(12_345_678_901));
        assert!((amount.as_usd() - 12.345678901).abs() < 1e-12);
    }

    #[test]
    fn per_token_prices_keep_precision() {
        // gpt-4o-mini input price: 0.15 USD per million tokens.
        let price = NanoUsd::from_usd(0.000_000_15).unwrap();
        assert_eq!(price, NanoUsd(150));
        assert_eq!(price.times(1_000_000), NanoUsd::from_usd(0.15).unwrap());
    }

    #[test]
    fn non_finite_and_huge_amounts_are_rejected() {
        assert_eq!(NanoUsd::from_usd(f64::NAN), None);
        assert_eq!(NanoUsd::from_usd(f64::INFINITY), None);
        assert_eq!(NanoUsd::from_usd(1e12), None);
    }

    #[test]
    fn serializes_as_usd_number() {
        let json = serde_json::to_string(&NanoUsd(1_500_000_000)).unwrap();
        assert_eq!(json, "1.5");
        let back: NanoUsd = serde_json::from_str("0.25").unwrap();
        assert_eq!(back, NanoUsd(250_000_000));
    }

    #[test]
    fn multiplication_saturates() {
        assert_eq!(NanoUsd(i64::MAX).times(2), NanoUsd(i64::MAX));
    }
}
