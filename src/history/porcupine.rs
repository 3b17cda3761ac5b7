//! Export to Porcupine's operation form (issue 6, item 7).
//!
//! SCAFFOLD: signature fixed; the writer is to be written.

use std::io::Write;

use super::Event;
use crate::error::Result;

/// Writes `events` (file order) as Porcupine operations to `out`.
pub fn write_porcupine(events: &[Event], out: &mut dyn Write) -> Result<()> {
    let _ = (events, out);
    Err(crate::error::Error::io(
        "porcupine export",
        std::io::Error::other("not implemented yet"),
    ))
}
