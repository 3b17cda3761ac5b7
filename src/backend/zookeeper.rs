//! `zookeeper`: being written (issue 3).

use std::sync::Arc;

use super::LockBackend;
use crate::cluster::Endpoint;
use crate::error::{Error, Result};

/// Which recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipe {
    /// Each waiter watches the next-lower node.
    NextLower,
    /// Every waiter watches the lowest node.
    Herd,
}

/// Connects the backend to its servers.
pub async fn connect(_recipe: Recipe, endpoints: &[Endpoint]) -> Result<Arc<dyn LockBackend>> {
    let _ = endpoints;
    Err(Error::Backend {
        backend: "zookeeper".into(),
        endpoint: String::new(),
        message: "not built yet".into(),
    })
}
