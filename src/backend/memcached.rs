//! `memcached`: being written (issue 3).

use std::sync::Arc;

use super::LockBackend;
use crate::cluster::Endpoint;
use crate::error::{Error, Result};

/// Which recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipe {
    /// `add` with expiry; compare-and-delete release.
    Add,
    /// GET then SET: broken on purpose.
    GetThenSet,
}

/// Connects the backend to its servers.
pub async fn connect(_recipe: Recipe, endpoints: &[Endpoint]) -> Result<Arc<dyn LockBackend>> {
    let _ = endpoints;
    Err(Error::Backend {
        backend: "memcached".into(),
        endpoint: String::new(),
        message: "not built yet".into(),
    })
}
