//! `mariadb` server: being written (issue 3).

use std::path::Path;
use std::time::Duration;

use super::{Installed, Launch};
use crate::error::{Error, Result};

/// How long a start may take.
pub(super) const START_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) fn locate() -> std::result::Result<Installed, String> {
    Err("mariadb support is not built yet".into())
}

pub(super) fn prepare(_installed: &Installed, _port: u16, _data_dir: &Path) -> Result<Launch> {
    Err(Error::Backend {
        backend: "mariadb".into(),
        endpoint: String::new(),
        message: "not built yet".into(),
    })
}

pub(super) async fn probe(_addr: &str) -> std::result::Result<String, String> {
    Err("mariadb support is not built yet".into())
}
