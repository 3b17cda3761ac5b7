//! The atlas's expectation tables (`mode = "atlas"`): what each backend is
//! expected to do under each fault column, and why.
//!
//! ```toml
//! [atlas.all]      # every backend, unless its own table says otherwise
//! crash = { expect = "safe", why = "a killed holder stops acting; ..." }
//!
//! [atlas.redis]
//! pause = { expect = "unsafe", why = "Kleppmann 2016: ..." }
//! ```
//!
//! Every backend of the scenario must have an expectation for every
//! column, from its own table or from `all`, each with a reason.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use crate::summary::atlas::{Column, Expectation, Expected};

/// The table's name for expectations of every backend.
pub const ALL: &str = "all";

/// One cell's expectation as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCell {
    expect: Spanned<String>,
    why: Spanned<String>,
}

/// `[atlas.<backend>]` tables as written.
pub(super) type RawAtlas = BTreeMap<Spanned<String>, BTreeMap<Spanned<String>, Spanned<RawCell>>>;

/// A problem with the tables: where, what, and a hint.
pub(super) type Problem = (Option<Range<usize>>, String, Option<String>);

/// Each backend's expectation per column, every column filled.
pub type Expectations = BTreeMap<String, BTreeMap<Column, Expectation>>;

fn columns() -> String {
    Column::ALL
        .iter()
        .map(|c| c.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads the tables for `backends`. `atlas` says whether the scenario is
/// an atlas: the tables are required then and refused otherwise.
pub(super) fn read(
    raw: Option<Spanned<RawAtlas>>,
    backends: &[String],
    atlas: bool,
) -> Result<Expectations, Problem> {
    let Some(raw) = raw else {
        if atlas {
            return Err((
                None,
                "an atlas needs its expectations: no [atlas.<backend>] table".into(),
                Some(format!(
                    "add [atlas.all] and [atlas.<backend>] tables with one line per column ({}): \
                     pause = {{ expect = \"unsafe\", why = \"...\" }}; docs/scenarios.md",
                    columns()
                )),
            ));
        }
        return Ok(Expectations::new());
    };
    let span = raw.span();
    if !atlas {
        return Err((
            Some(span),
            "[atlas] tables are only read by an atlas".into(),
            Some("add mode = \"atlas\", or remove the tables".into()),
        ));
    }
    let mut given: BTreeMap<String, BTreeMap<Column, Expectation>> = BTreeMap::new();
    for (backend, cells) in raw.into_inner() {
        let name = backend.get_ref().clone();
        if name != ALL && !backends.contains(&name) {
            return Err((
                Some(backend.span()),
                format!("[atlas.{name}]: {name} is not one of this scenario's backends"),
                Some(format!(
                    "the tables are [atlas.all] and one per backend: {}",
                    backends.join(", ")
                )),
            ));
        }
        let table = given.entry(name.clone()).or_default();
        for (column, cell) in cells {
            let Some(c) = Column::from_name(column.get_ref()) else {
                return Err((
                    Some(column.span()),
                    format!("[atlas.{name}]: {:?} is not a column", column.get_ref()),
                    Some(format!("the columns are {}", columns())),
                ));
            };
            let cell = cell.into_inner();
            let Some(expect) = Expected::from_name(cell.expect.get_ref()) else {
                return Err((
                    Some(cell.expect.span()),
                    format!(
                        "[atlas.{name}] {c}: expect = {:?} is not an expectation",
                        cell.expect.get_ref()
                    ),
                    Some("use \"safe\", \"unsafe\" or \"timing\"".into()),
                ));
            };
            let why = cell.why.get_ref().trim().to_string();
            if why.is_empty() {
                return Err((
                    Some(cell.why.span()),
                    format!("[atlas.{name}] {c}: why is empty"),
                    Some(
                        "say why, with the source: a paper, the vendor's docs, an issue, or the \
                         recipe's reasoning"
                            .into(),
                    ),
                ));
            }
            table.insert(c, Expectation { expect, why });
        }
    }
    let defaults = given.remove(ALL).unwrap_or_default();
    let mut out = Expectations::new();
    for b in backends {
        let own = given.remove(b).unwrap_or_default();
        let mut row = BTreeMap::new();
        for c in Column::ALL {
            let Some(e) = own.get(&c).or_else(|| defaults.get(&c)) else {
                return Err((
                    Some(span.clone()),
                    format!("the atlas has no expectation for {b} under {c}"),
                    Some(format!(
                        "add {c} = {{ expect = \"safe\" | \"unsafe\" | \"timing\", why = \"...\" }} \
                         to [atlas.{b}] or [atlas.all]"
                    )),
                ));
            };
            row.insert(c, e.clone());
        }
        out.insert(b.clone(), row);
    }
    Ok(out)
}
