//! The HTML report: one self-contained `index.html` per run, and a page
//! comparing several runs.
//!
//! Both pages are single files: inline CSS, inline SVG charts drawn with
//! `plotters`, no scripts and no external references, so a run directory can
//! be copied, mailed or archived and still read the same. Every value that
//! comes from a summary is HTML-escaped before it reaches the page.
//!
//! Charts measure text with the vendored DejaVu Sans font, registered once by
//! [`register_font`]; the SVG names the family `sans-serif`, so browsers draw
//! the text with their own sans-serif font.

mod atlas;
pub mod baseline;
mod charts;
pub mod ci;
mod compare;
pub(crate) mod html;
mod matrix;
mod timeline;
pub mod words;

/// The stylesheet both pages share (each adds its own rules after it).
const BASE_CSS: &str = include_str!("base.css");
mod run;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::style::FontStyle;

use crate::error::{Error, Result};
use crate::summary::Summary;

/// The font family the charts use; [`register_font`] registers it.
pub(crate) const FONT_FAMILY: &str = "sans-serif";

/// The vendored font, relative to the crate root (for error messages).
const FONT_PATH: &str = "assets/fonts/DejaVuSans.ttf";

/// Registers the vendored DejaVu Sans font as `sans-serif` for `plotters`.
///
/// `plotters` is built without a system font loader, so some font must be
/// registered before any chart draws text. The report functions call this
/// themselves; call it before anything else that draws with `plotters`
/// (criterion's charts in the benches, say). Registering happens once per
/// process; later calls return the first call's result.
pub fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font(
                FONT_FAMILY,
                FontStyle::Normal,
                include_bytes!("../../assets/fonts/DejaVuSans.ttf"),
            )
            .map_err(|_| "not a valid OpenType font".to_string())
        })
        .clone()
        .map_err(|message| Error::Report {
            path: PathBuf::from(FONT_PATH),
            message,
        })
}

/// Writes `index.html` into `run_dir` from its summary and returns its path.
///
/// The page shows the verdict first (with the witnesses of any violation and
/// the command that repeats the run), then a table of what was measured, then
/// the acquire-latency percentile chart and the throughput timeline with the
/// fault windows shaded. Log links point at `ServerInfo::log`, relative to
/// `run_dir`.
pub fn write_run_report(run_dir: &Path, summary: &Summary) -> Result<PathBuf> {
    let path = run_dir.join("index.html");
    register_font()?;
    let page = run::render(&path, summary)?;
    write_page(&path, &page)?;
    Ok(path)
}

/// Writes `comparison.html` into `out_dir` (created if missing) and returns
/// its path.
///
/// `runs` holds each run's directory and summary; the page has one table row
/// per run, linking to the run's `index.html` relative to `out_dir`, a latency
/// percentile chart with one line per run and a throughput bar chart.
pub fn write_comparison(out_dir: &Path, runs: &[(PathBuf, Summary)]) -> Result<PathBuf> {
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let path = out_dir.join("comparison.html");
    register_font()?;
    let page = compare::render(&path, out_dir, runs)?;
    write_page(&path, &page)?;
    Ok(path)
}

/// Writes `matrix.html` (the property matrix) into `dir` and returns its
/// path.
pub fn write_matrix_page(dir: &Path, matrix: &crate::summary::matrix::Matrix) -> Result<PathBuf> {
    let path = dir.join("matrix.html");
    write_page(&path, &matrix::render(matrix))?;
    Ok(path)
}

/// Writes `atlas.html` and `atlas.md` (the atlas as a page and as
/// Markdown) into `dir`.
pub fn write_atlas_pages(dir: &Path, atlas: &crate::summary::atlas::Atlas) -> Result<()> {
    write_page(&dir.join("atlas.html"), &atlas::render(atlas))?;
    write_page(&dir.join("atlas.md"), &atlas::markdown(atlas))
}

/// The atlas as Markdown (`atlas.md`, the job summary's table).
pub fn atlas_markdown(atlas: &crate::summary::atlas::Atlas) -> String {
    atlas::markdown(atlas)
}

/// Writes a page.
fn write_page(path: &Path, page: &str) -> Result<()> {
    std::fs::write(path, page).map_err(|e| Error::io(path, e))
}

/// An [`Error::Report`] about `path`.
pub(crate) fn report_error(path: &Path, message: impl std::fmt::Display) -> Error {
    Error::Report {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}
