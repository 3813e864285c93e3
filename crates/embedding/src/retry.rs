//! Exponential backoff with full jitter, honouring `Retry-After`.

/// How often and how patiently a provider is retried on retryable errors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Tries per request, the first included.
    pub max_attempts: u32,
    /// Backoff before the first retry, in milliseconds (doubled each retry).
    pub base_delay_ms: f64,
    /// Ceiling of a computed backoff.
    pub max_delay_ms: f64,
    /// Longest `Retry-After` honoured; a longer one gives up on the provider for this request.
    pub max_retry_after_ms: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay_ms: 250.0,
            max_delay_ms: 8_000.0,
            max_retry_after_ms: 60_000.0,
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1-based), or `None` when the tries are used up.
    /// `random` is uniform in `[0, 1)`; `retry_after_ms` is the server's `Retry-After`.
    pub fn delay(&self, retry: u32, random: f64, retry_after_ms: Option<f64>) -> Option<f64> {
        if retry >= self.max_attempts {
            return None;
        }
        match retry_after_ms {
            Some(ms) if ms > self.max_retry_after_ms => None,
            Some(ms) => Some(ms),
            None => {
                let ceiling =
                    (self.base_delay_ms * 2f64.powi(retry as i32 - 1)).min(self.max_delay_ms);
                Some(ceiling * random.clamp(0.0, 1.0))
            }
        }
    }
}

/// Parses a `Retry-After` value given in seconds (`"2"`, `"0.5"`) into milliseconds.
/// HTTP dates are not parsed (the backoff applies instead).
pub fn parse_retry_after(value: &str) -> Option<f64> {
    let seconds: f64 = value.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then_some(seconds * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_ceiling_and_stops() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1, 0.999_999, None).map(f64::round), Some(250.0));
        assert_eq!(p.delay(3, 0.5, None), Some(500.0));
        assert_eq!(p.delay(2, 0.0, None), Some(0.0));
        assert_eq!(p.delay(4, 0.5, None), None);
        let long = RetryPolicy {
            max_attempts: 20,
            ..p
        };
        assert_eq!(long.delay(12, 1.0, None), Some(8_000.0));
    }

    #[test]
    fn retry_after_wins_unless_too_long() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1, 0.1, parse_retry_after("2")), Some(2000.0));
        assert_eq!(p.delay(1, 0.1, parse_retry_after("600")), None);
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after(" 0.25 "), Some(250.0));
    }
}
