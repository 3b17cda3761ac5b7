use std::collections::HashMap;
use std::sync::Mutex;

/// The thing the lock protects: a store that records each holder's write
/// and, where writes carry a fencing token, rejects one whose token is
/// smaller than the largest it has accepted (Kleppmann's fenced storage).
#[derive(Debug, Default)]
pub struct ProtectedResource {
    /// Per key: the largest fence accepted so far.
    max_fence: Mutex<HashMap<String, u64>>,
    /// Per key: the counter of the counter workload.
    counters: Mutex<HashMap<String, u64>>,
    /// Counter writes accepted: increments acknowledged to their holders.
    acknowledged: std::sync::atomic::AtomicU64,
}

impl ProtectedResource {
    /// An empty resource.
    pub fn new() -> Self {
        Self::default()
    }

    /// A write by a holder of `key`; true if the resource accepted it.
    /// Writes without a fence are always accepted: nothing can tell a stale
    /// holder from a current one.
    pub fn write(&self, key: &str, fence: Option<u64>) -> bool {
        let Some(fence) = fence else {
            return true;
        };
        let mut max = self.max_fence.lock().unwrap_or_else(|p| p.into_inner());
        match max.get_mut(key) {
            Some(m) if fence < *m => false,
            Some(m) => {
                *m = fence;
                true
            }
            None => {
                max.insert(key.to_string(), fence);
                true
            }
        }
    }
}

impl ProtectedResource {
    /// The counter of `key` (0 before any write).
    pub fn read(&self, key: &str) -> u64 {
        let c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        c.get(key).copied().unwrap_or(0)
    }

    /// Sets the counter of `key` to `value`, if the fence is accepted (as
    /// [`write`](Self::write) decides); true if it was.
    pub fn write_counter(&self, key: &str, fence: Option<u64>, value: u64) -> bool {
        if !self.write(key, fence) {
            return false;
        }
        let mut c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        c.insert(key.to_string(), value);
        self.acknowledged
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        true
    }

    /// Counter writes accepted so far.
    pub fn acknowledged(&self) -> u64 {
        self.acknowledged.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The counters summed over keys.
    pub fn counter_total(&self) -> u64 {
        let c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        c.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_a_smaller_fence_per_key() {
        let r = ProtectedResource::new();
        assert!(r.write("a", Some(5)));
        assert!(r.write("a", Some(5)));
        assert!(!r.write("a", Some(4)));
        assert!(r.write("b", Some(1)));
        assert!(r.write("a", None));
    }
}
