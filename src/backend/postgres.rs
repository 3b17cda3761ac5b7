//! `postgres-advisory`: being written (issue 3).

use std::sync::Arc;

use super::LockBackend;
use crate::cluster::Endpoint;
use crate::error::{Error, Result};

/// Connects the backend to its servers.
pub async fn connect(endpoints: &[Endpoint]) -> Result<Arc<dyn LockBackend>> {
    let _ = endpoints;
    Err(Error::Backend {
        backend: "postgres-advisory".into(),
        endpoint: String::new(),
        message: "not built yet".into(),
    })
}
