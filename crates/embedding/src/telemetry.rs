//! Per-provider counters and latency percentiles.

use std::collections::VecDeque;

use crate::ErrorClass;

/// Latencies kept per provider for the percentiles (the most recent ones).
pub const LATENCY_WINDOW: usize = 1024;

/// What one provider has done since the service started.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProviderStats {
    /// Requests (remote) or model runs (local) that succeeded.
    pub calls: u64,
    /// Texts embedded by the provider (cache hits not included).
    pub texts: u64,
    /// Tokens billed (remote, as reported) or seen (local).
    pub tokens: u64,
    /// Failed tries that were retried or could be (429, 5xx, network, timeout).
    pub retryable_errors: u64,
    /// Failed tries that moved on to the next provider (401, 400, malformed answers, …).
    pub fatal_errors: u64,
    /// Texts answered from the cache for this provider's model.
    pub cache_hits: u64,
    latencies: VecDeque<f64>,
}

impl ProviderStats {
    /// Records a successful call of `texts` texts and `tokens` tokens that took `ms`.
    pub fn record_call(&mut self, texts: usize, tokens: u64, ms: f64) {
        self.calls += 1;
        self.texts += texts as u64;
        self.tokens += tokens;
        if self.latencies.len() == LATENCY_WINDOW {
            self.latencies.pop_front();
        }
        self.latencies.push_back(ms);
    }

    /// Records a failed try.
    pub fn record_error(&mut self, class: ErrorClass) {
        match class {
            ErrorClass::Retryable => self.retryable_errors += 1,
            ErrorClass::Fatal => self.fatal_errors += 1,
        }
    }

    /// The `q`-quantile (0..=1, nearest rank) of recent call latencies in ms; `None` before a call.
    pub fn latency_quantile(&self, q: f64) -> Option<f64> {
        if self.latencies.is_empty() {
            return None;
        }
        let mut sorted: Vec<f64> = self.latencies.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
        Some(sorted[rank.clamp(1, sorted.len()) - 1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_nearest_rank_over_the_window() {
        let mut s = ProviderStats::default();
        assert_eq!(s.latency_quantile(0.5), None);
        for ms in 1..=100 {
            s.record_call(1, 2, f64::from(ms));
        }
        assert_eq!(s.latency_quantile(0.5), Some(50.0));
        assert_eq!(s.latency_quantile(0.99), Some(99.0));
        assert_eq!((s.calls, s.texts, s.tokens), (100, 100, 200));
        for _ in 0..LATENCY_WINDOW {
            s.record_call(1, 0, 7.0);
        }
        assert_eq!(s.latency_quantile(0.0), Some(7.0));
        s.record_error(ErrorClass::Fatal);
        s.record_error(ErrorClass::Retryable);
        assert_eq!((s.fatal_errors, s.retryable_errors), (1, 1));
    }
}
