use std::collections::HashMap;
use std::sync::Mutex;

/// The thing the lock protects: a store that records each holder's write
/// and, where writes carry a fencing token, rejects one whose token is
/// smaller than the largest it has accepted (Kleppmann's fenced storage).
#[derive(Debug, Default)]
pub struct ProtectedResource {
    /// Per key: the largest fence accepted so far.
    max_fence: Mutex<HashMap<String, u64>>,
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
