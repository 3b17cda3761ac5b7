//! The timeline on the run page: holds as bars per client on a key, fault
//! windows shaded, violating overlaps in red, with the violation class named.
//!
//! Bounded size whatever the run's length: an overview compressed to a fixed
//! number of columns per key, and zoomed windows around the first few
//! violations with a cap on the bars drawn. Bounded memory too: the history
//! is streamed twice, holds passing one at a time ([`stream_holds`]). The
//! first pass finds the run's end, the keys held, and the first holds of
//! each key (for the example window); the second fills the overview's
//! columns and the windows, which by then have their times.

use std::collections::BinaryHeap;
use std::fmt::Write as _;
use std::path::Path;

use rustc_hash::{FxHashMap, FxHashSet};

use super::html::escape;
use crate::check::{HoldSpan, Witness, stream_holds};
use crate::history::Process;
use crate::summary::{FaultRecord, Summary};

/// Zoomed windows drawn at most (one per violation).
const WINDOWS: usize = 3;
/// Client rows in one zoomed window at most.
const MAX_ROWS: usize = 24;
/// Bars in one zoomed window at most.
const MAX_BARS: usize = 600;
/// Holds a window keeps at most: the earliest-starting ones, from which its
/// rows and bars are chosen (every hold in it is still counted). Far more
/// than the bars drawn, so the choice is the same as from every hold unless
/// the drawn rows' holds are rarer than one in eighty.
const KEPT: usize = 50_000;
/// Holds of each key the example window is measured from.
const EXAMPLE_HOLDS: usize = 30;
/// Keys in the overview at most.
const MAX_KEYS: usize = 8;
/// Columns of the overview.
const COLUMNS: usize = 600;

const WIDTH: f64 = 1000.0;
const LEFT: f64 = 90.0;
const RIGHT: f64 = 20.0;
const ROW_H: f64 = 18.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 64.0;

/// A zoomed window: what it shows, and what the second pass found in it.
struct Window<'s> {
    key: u32,
    name: String,
    t0: u64,
    t1: u64,
    heading: String,
    label: String,
    witnesses: Vec<&'s Witness>,
    /// The earliest-starting holds in the window, at most [`KEPT`].
    kept: BinaryHeap<HoldSpan>,
    /// Every hold in the window.
    inside: usize,
    /// Each holder's first hold in the window.
    first: FxHashMap<Process, (u64, u64)>,
}

impl<'s> Window<'s> {
    /// A window on `key` (called `name`) from `t0` to `t1`, before its holds.
    fn on(key: u32, name: &str, t0: u64, t1: u64, heading: String, label: String) -> Self {
        Window {
            key,
            name: name.to_string(),
            t0,
            t1,
            heading,
            label,
            witnesses: Vec::new(),
            kept: BinaryHeap::new(),
            inside: 0,
            first: FxHashMap::default(),
        }
    }

    fn take(&mut self, h: HoldSpan, end_ns: u64) {
        if h.key != self.key || h.start_ns > self.t1 || h.end_ns.unwrap_or(end_ns) < self.t0 {
            return;
        }
        self.inside += 1;
        let first = self.first.entry(h.process).or_insert((u64::MAX, u64::MAX));
        *first = (*first).min((h.start_ns, h.start_index));
        keep_earliest(&mut self.kept, h, KEPT);
    }
}

/// Adds `h` to `heap` (a max-heap), keeping only the `n` earliest.
fn keep_earliest(heap: &mut BinaryHeap<HoldSpan>, h: HoldSpan, n: usize) {
    if heap.len() < n {
        heap.push(h);
    } else if heap.peek().is_some_and(|last| h < *last) {
        heap.pop();
        heap.push(h);
    }
}

/// The window of the example shown when there is no violation: about the
/// first thirty holds of key `key` (`kh`, sorted by start).
fn example_window(key: u32, name: &str, kh: &[HoldSpan], end_ns: u64) -> Window<'static> {
    let start = kh.first().map(|h| h.start_ns).unwrap_or(0);
    let t0 = start.saturating_sub(1_000_000);
    // About thirty holds: readable, yet showing the hand-offs.
    let thirtieth = kh
        .get(EXAMPLE_HOLDS - 1)
        .or(kh.last())
        .map(|h| h.end_ns.unwrap_or(end_ns))
        .unwrap_or(end_ns);
    let t1 = thirtieth
        .max(t0 + 10_000_000)
        .min(t0 + 2_000_000_000)
        .min(end_ns.max(t0 + 1));
    let heading = format!(
        "<h3>The first holds on key <code>{}</code> (no violations: an example)</h3>",
        escape(name)
    );
    Window::on(key, name, t0, t1, heading, String::new())
}

/// The zoomed windows around the first violations: one for each witness
/// not already in an earlier window, at most [`WINDOWS`].
fn violation_windows<'s, 'n>(
    s: &'s Summary,
    by_name: &[u32],
    name: &dyn Fn(u32) -> &'n str,
    end_ns: u64,
) -> Vec<Window<'s>> {
    let mut windows: Vec<Window<'s>> = Vec::new();
    for (i, w) in s.witnesses.iter().enumerate() {
        if windows.len() >= WINDOWS {
            break;
        }
        let Some(key) = by_name.iter().copied().find(|&k| name(k) == w.key) else {
            continue;
        };
        // A witness already visible in an earlier window gets none.
        if windows
            .iter()
            .any(|d| d.name == w.key && w.overlap_start_ns >= d.t0 && w.overlap_start_ns <= d.t1)
        {
            continue;
        }
        let lease_ns = w
            .first
            .lease_ms
            .or(w.second.lease_ms)
            .unwrap_or(s.lease_ms)
            .saturating_mul(1_000_000);
        let overlap_end = w.overlap_end_ns.unwrap_or(end_ns).max(w.overlap_start_ns);
        // Wide enough to show both holds and their neighbours, at most
        // two leases either side (readable when holds are far shorter
        // than the lease).
        let first_len = w
            .first
            .end_ns
            .unwrap_or(end_ns)
            .saturating_sub(w.first.start_ns);
        let mut pad = (overlap_end - w.overlap_start_ns)
            .max(first_len)
            .saturating_mul(3)
            .max(5_000_000);
        if lease_ns > 0 {
            pad = pad.min(2 * lease_ns);
        }
        let t0 = w.overlap_start_ns.saturating_sub(pad);
        let t1 = (overlap_end + pad).min(end_ns.max(overlap_end + 1));
        let heading = format!(
            "<h3>Violation {}: key <code>{}</code>, clients {} and {}, class <span class=\"red\">{}</span></h3>",
            i + 1,
            escape(&w.key),
            w.first.process,
            w.second.process,
            w.class.as_str()
        );
        let mut win = Window::on(
            key,
            name(key),
            t0,
            t1,
            heading,
            format!(" — {}", w.class.as_str()),
        );
        win.witnesses = s.witnesses.iter().filter(|x| x.key == w.key).collect();
        windows.push(win);
    }
    windows
}

/// The note above the timeline: what its bars and colours mean, and the
/// run's violation classes.
fn legend(s: &Summary) -> String {
    let classes = if s.violation_classes.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = s
            .violation_classes
            .iter()
            .map(|(c, n)| format!("<strong>{}</strong> × {n}", escape(c)))
            .collect();
        format!(" Violation classes: {}.", list.join(", "))
    };
    format!(
        "<p class=\"note\">Bars: a client holding the key (from its acquire <code>ok</code> to its \
         release). <span class=\"red\">Red</span>: two clients holding it at once. Grey bands: \
         fault windows.{classes}</p>\n"
    )
}

/// The timeline section of the run page for the run in `run_dir`.
pub(crate) fn section(run_dir: &Path, s: &Summary) -> String {
    let history = crate::history::history_in(run_dir);
    let mut out = String::from("<section>\n<h2>Timeline</h2>\n");
    let no_timeline = |mut out: String, why: String| {
        let _ = write!(
            out,
            "<p class=\"nodata\">No timeline: {}</p>\n</section>",
            escape(&why)
        );
        out
    };

    // First pass: the end, the keys held, each key's first holds.
    let mut held: Vec<usize> = Vec::new();
    let mut firsts: Vec<BinaryHeap<HoldSpan>> = Vec::new();
    let example = s.witnesses.is_empty();
    let first_pass = stream_holds(&history, |h| {
        let k = h.key as usize;
        if held.len() <= k {
            held.resize(k + 1, 0);
            firsts.resize_with(k + 1, BinaryHeap::new);
        }
        held[k] += 1;
        if example {
            keep_earliest(&mut firsts[k], h, EXAMPLE_HOLDS);
        }
    });
    let keys = match first_pass {
        Err(e) => return no_timeline(out, e.to_string()),
        Ok(Err(why)) => {
            return no_timeline(out, format!("the history is inconsistent ({})", why.0));
        }
        Ok(Ok(keys)) => keys,
    };
    let end_ns = keys.end_ns;
    let name = |k: u32| keys.names.get(k as usize).map_or("", String::as_str);
    // The keys held, in name order.
    let mut by_name: Vec<u32> = (0..held.len() as u32)
        .filter(|&k| held[k as usize] > 0)
        .collect();
    by_name.sort_by(|a, b| name(*a).cmp(name(*b)));
    if by_name.is_empty() {
        out.push_str("<p class=\"nodata\">No timeline: nobody held a lock.</p>\n</section>");
        return out;
    }
    out.push_str(&legend(s));

    // The zoomed windows' times.
    let mut windows: Vec<Window> = Vec::new();
    if example {
        let key = by_name[0];
        let kh = std::mem::take(&mut firsts[key as usize]).into_sorted_vec();
        windows.push(example_window(key, name(key), &kh, end_ns));
    } else {
        let _ = writeln!(
            out,
            "<p class=\"note\">Zoomed windows around the first violations ({} in all; \
             a window shows every recorded witness within it, at most {WINDOWS} windows, each at \
             most ±2 leases around its overlap). The overview marks the {} witnesses kept in \
             summary.json.</p>",
            s.violations.max(s.witnesses.len() as u64),
            s.witnesses.len()
        );
        windows = violation_windows(s, &by_name, &name, end_ns);
    }
    drop(firsts);

    // Second pass: the windows' holds and the overview's columns.
    let col_ns = end_ns.max(1).div_ceil(COLUMNS as u64).max(1);
    let shown: Vec<u32> = by_name.iter().copied().take(MAX_KEYS).collect();
    let mut columns: Vec<Vec<bool>> = vec![vec![false; COLUMNS]; shown.len()];
    let second_pass = stream_holds(&history, |h| {
        if let Some(row) = shown.iter().position(|&k| k == h.key) {
            let a = ((h.start_ns / col_ns) as usize).min(COLUMNS - 1);
            let b = ((h.end_ns.unwrap_or(end_ns) / col_ns) as usize).min(COLUMNS - 1);
            columns[row][a..=b.max(a)]
                .iter_mut()
                .for_each(|c| *c = true);
        }
        for w in &mut windows {
            w.take(h, end_ns);
        }
    });
    match second_pass {
        Err(e) => return no_timeline(out, e.to_string()),
        Ok(Err(why)) => {
            return no_timeline(out, format!("the history is inconsistent ({})", why.0));
        }
        Ok(Ok(_)) => {}
    }

    for w in windows {
        out.push_str(&w.heading);
        out.push('\n');
        out.push_str(&window(w, end_ns, &s.faults));
    }
    out.push_str("<h3>Overview of the whole run</h3>\n");
    let rows: Vec<(&str, Vec<bool>)> = shown.iter().map(|&k| name(k)).zip(columns).collect();
    out.push_str(&overview(
        &rows,
        by_name.len(),
        col_ns,
        end_ns,
        &s.faults,
        &s.witnesses,
    ));
    out.push_str("</section>");
    out
}

fn x_of(t: u64, t0: u64, t1: u64) -> f64 {
    let span = (t1.saturating_sub(t0)).max(1) as f64;
    LEFT + (t.saturating_sub(t0) as f64 / span).min(1.0) * (WIDTH - LEFT - RIGHT)
}

/// Time axis ticks, legend, fault shading; `rows` tall.
fn frame(svg: &mut String, title: &str, rows: usize, t0: u64, t1: u64, faults: &[FaultRecord]) {
    let h = TOP + rows as f64 * ROW_H;
    let _ = write!(
        svg,
        "<text x=\"{}\" y=\"18\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">{}</text>",
        WIDTH / 2.0,
        escape(title)
    );
    for f in faults {
        let end = f.end_ns.unwrap_or(t1);
        if end < t0 || f.start_ns > t1 {
            continue;
        }
        let (a, b) = (x_of(f.start_ns.max(t0), t0, t1), x_of(end.min(t1), t0, t1));
        let _ = write!(
            svg,
            "<rect x=\"{a:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#bbb\" fill-opacity=\"0.45\"><title>{}</title></rect>",
            (b - a).max(1.0),
            h - TOP,
            escape(&f.label())
        );
    }
    // Axis and ticks.
    let span_s = t1.saturating_sub(t0) as f64 / 1e9;
    let step = nice_step(span_s / 8.0);
    let first = (t0 as f64 / 1e9 / step).ceil() * step;
    let _ = write!(
        svg,
        "<line x1=\"{LEFT}\" y1=\"{h}\" x2=\"{}\" y2=\"{h}\" stroke=\"#333\"/>",
        WIDTH - RIGHT
    );
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10()).ceil() as usize
    };
    for k in 0..20 {
        let t = first + k as f64 * step;
        if t * 1e9 > t1 as f64 {
            break;
        }
        let x = x_of((t * 1e9) as u64, t0, t1);
        let _ = write!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"{h}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#333\"/>\
             <text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\" font-size=\"11\">{t:.decimals$}</text>",
            h + 5.0,
            h + 17.0
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"12\">time since the run started (s)</text>",
        (LEFT + WIDTH - RIGHT) / 2.0,
        h + 32.0
    );
    // Legend.
    let ly = h + 48.0;
    let _ = write!(
        svg,
        "<rect x=\"{LEFT}\" y=\"{}\" width=\"18\" height=\"10\" fill=\"#4a78c2\"/><text x=\"{}\" y=\"{ly}\" font-size=\"11\">hold</text>\
         <rect x=\"{}\" y=\"{}\" width=\"18\" height=\"10\" fill=\"#d93025\"/><text x=\"{}\" y=\"{ly}\" font-size=\"11\">two holders at once (violation)</text>\
         <rect x=\"{}\" y=\"{}\" width=\"18\" height=\"10\" fill=\"#bbb\" fill-opacity=\"0.6\"/><text x=\"{}\" y=\"{ly}\" font-size=\"11\">fault window</text>",
        ly - 9.0,
        LEFT + 24.0,
        LEFT + 80.0,
        ly - 9.0,
        LEFT + 104.0,
        LEFT + 310.0,
        ly - 9.0,
        LEFT + 334.0
    );
}

fn nice_step(raw: f64) -> f64 {
    if raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    let base = 10f64.powf(raw.log10().floor());
    let m = raw / base;
    base * if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    }
}

/// A window's rows: the witnesses' clients first, then the others by
/// their first hold, at most [`MAX_ROWS`]; and how many clients it has.
fn window_rows(
    witnesses: &[&Witness],
    first: &FxHashMap<Process, (u64, u64)>,
    t0: u64,
    t1: u64,
    end_ns: u64,
) -> (Vec<Process>, usize) {
    let mut rows: Vec<Process> = Vec::new();
    let mut all: FxHashSet<Process> = FxHashSet::default();
    for w in witnesses {
        for p in [w.first.process, w.second.process] {
            let in_window = w.overlap_start_ns <= t1 && w.overlap_end_ns.unwrap_or(end_ns) >= t0;
            if in_window {
                all.insert(p);
                if !rows.contains(&p) && rows.len() < MAX_ROWS {
                    rows.push(p);
                }
            }
        }
    }
    let mut by_first: Vec<(&(u64, u64), &Process)> = first.iter().map(|(p, f)| (f, p)).collect();
    by_first.sort();
    for (_, p) in by_first {
        all.insert(*p);
        if !rows.contains(p) && rows.len() < MAX_ROWS {
            rows.push(*p);
        }
    }
    (rows, all.len())
}

/// The witnesses' overlaps within the window `t0..t1`, in red on both
/// holders' rows.
fn draw_overlaps(
    svg: &mut String,
    witnesses: &[&Witness],
    rows: &[Process],
    (t0, t1): (u64, u64),
    end_ns: u64,
) {
    for w in witnesses {
        let oe = w.overlap_end_ns.unwrap_or(end_ns);
        if w.overlap_start_ns > t1 || oe < t0 {
            continue;
        }
        let (a, b) = (
            x_of(w.overlap_start_ns.max(t0), t0, t1),
            x_of(oe.min(t1), t0, t1),
        );
        for p in [w.first.process, w.second.process] {
            let Some(r) = rows.iter().position(|q| *q == p) else {
                continue;
            };
            let y = TOP + r as f64 * ROW_H + 1.0;
            let _ = write!(
                svg,
                "<rect class=\"overlap\" x=\"{a:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#d93025\"><title>violation ({}): clients {} and {} both held {}</title></rect>",
                (b - a).max(2.0),
                ROW_H - 2.0,
                w.class.as_str(),
                w.first.process,
                w.second.process,
                escape(&w.key)
            );
        }
    }
}

/// One zoomed window, its holds found.
fn window(w: Window<'_>, end_ns: u64, faults: &[FaultRecord]) -> String {
    let Window {
        name: key,
        t0,
        t1,
        label,
        witnesses,
        kept,
        inside,
        first,
        ..
    } = w;
    let kept = kept.into_sorted_vec();
    let (rows, all_rows) = window_rows(&witnesses, &first, t0, t1, end_ns);
    let height = TOP + rows.len().max(1) as f64 * ROW_H + BOTTOM;
    let mut svg = format!(
        "<figure><svg xmlns=\"http://www.w3.org/2000/svg\" class=\"timeline\" viewBox=\"0 0 {WIDTH} {height}\" \
         width=\"{WIDTH}\" height=\"{height}\" font-family=\"sans-serif\" role=\"img\">"
    );
    let title = format!(
        "Holds of key {key} from {:.3} s to {:.3} s{label}",
        t0 as f64 / 1e9,
        t1 as f64 / 1e9
    );
    frame(&mut svg, &title, rows.len().max(1), t0, t1, faults);
    let _ = write!(
        svg,
        "<text transform=\"translate(14 {:.1}) rotate(-90)\" text-anchor=\"middle\" font-size=\"12\">client</text>",
        TOP + rows.len() as f64 * ROW_H / 2.0
    );
    for (r, p) in rows.iter().enumerate() {
        let y = TOP + r as f64 * ROW_H;
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"11\">{}</text>\
             <line x1=\"{LEFT}\" y1=\"{:.1}\" x2=\"{}\" y2=\"{:.1}\" stroke=\"#eee\"/>",
            LEFT - 6.0,
            y + ROW_H * 0.7,
            escape(&p.to_string()),
            y + ROW_H,
            WIDTH - RIGHT,
            y + ROW_H
        );
    }
    let mut drawn = 0usize;
    for h in &kept {
        let Some(r) = rows.iter().position(|p| *p == h.process) else {
            continue;
        };
        if drawn >= MAX_BARS {
            break;
        }
        drawn += 1;
        let end = h.end_ns.unwrap_or(end_ns);
        let (a, b) = (x_of(h.start_ns.max(t0), t0, t1), x_of(end.min(t1), t0, t1));
        let y = TOP + r as f64 * ROW_H + 3.0;
        let _ = write!(
            svg,
            "<rect x=\"{a:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#4a78c2\"><title>client {} held {} from {:.6} s to {:.6} s{}</title></rect>",
            (b - a).max(1.0),
            ROW_H - 6.0,
            h.process,
            escape(&key),
            h.start_ns as f64 / 1e9,
            end as f64 / 1e9,
            h.fence.map(|f| format!(" (fence {f})")).unwrap_or_default()
        );
    }
    // Overlaps in red on both holders' rows.
    draw_overlaps(&mut svg, &witnesses, &rows, (t0, t1), end_ns);
    svg.push_str("</svg>");
    let mut notes = Vec::new();
    if all_rows > rows.len() {
        notes.push(format!("{} of {all_rows} clients shown", rows.len()));
    }
    if drawn < inside {
        notes.push(format!("{drawn} of {inside} holds drawn"));
    }
    let _ = writeln!(
        svg,
        "<figcaption>One row per client (its id in the history).{}</figcaption></figure>",
        if notes.is_empty() {
            String::new()
        } else {
            format!(" Capped: {}.", notes.join("; "))
        }
    );
    svg
}

/// Whole-run overview: one row per key, compressed to [`COLUMNS`] columns:
/// a column is blue when anyone held the key in it, red when two did.
/// `rows` are the keys shown with their held columns, of `keys` in all.
fn overview(
    rows: &[(&str, Vec<bool>)],
    keys: usize,
    col_ns: u64,
    end_ns: u64,
    faults: &[FaultRecord],
    witnesses: &[Witness],
) -> String {
    let (t0, t1) = (0u64, end_ns.max(1));
    let height = TOP + rows.len() as f64 * ROW_H + BOTTOM;
    let mut svg = format!(
        "<figure><svg xmlns=\"http://www.w3.org/2000/svg\" class=\"timeline\" viewBox=\"0 0 {WIDTH} {height}\" \
         width=\"{WIDTH}\" height=\"{height}\" font-family=\"sans-serif\" role=\"img\">"
    );
    frame(
        &mut svg,
        "Overview: when each key was held, whole run",
        rows.len(),
        t0,
        t1,
        faults,
    );
    let _ = write!(
        svg,
        "<text transform=\"translate(14 {:.1}) rotate(-90)\" text-anchor=\"middle\" font-size=\"12\">key</text>",
        TOP + rows.len() as f64 * ROW_H / 2.0
    );
    for (r, (key, held)) in rows.iter().enumerate() {
        let mut bad = vec![false; COLUMNS];
        for w in witnesses.iter().filter(|w| w.key == *key) {
            let a = ((w.overlap_start_ns / col_ns) as usize).min(COLUMNS - 1);
            let b = ((w.overlap_end_ns.unwrap_or(end_ns) / col_ns) as usize).min(COLUMNS - 1);
            bad[a..=b.max(a)].iter_mut().for_each(|c| *c = true);
        }
        let y = TOP + r as f64 * ROW_H;
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"11\">{}</text>",
            LEFT - 6.0,
            y + ROW_H * 0.7,
            escape(&truncate(key, 12))
        );
        for (cells, color) in [(held, "#4a78c2"), (&bad, "#d93025")] {
            let mut c = 0;
            while c < COLUMNS {
                if !cells[c] {
                    c += 1;
                    continue;
                }
                let start = c;
                while c < COLUMNS && cells[c] {
                    c += 1;
                }
                let a = x_of(start as u64 * col_ns, t0, t1);
                let b = x_of(c as u64 * col_ns, t0, t1);
                let _ = write!(
                    svg,
                    "<rect x=\"{a:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{color}\"/>",
                    y + 3.0,
                    (b - a).max(1.0),
                    ROW_H - 6.0
                );
            }
        }
    }
    svg.push_str("</svg>");
    let _ = writeln!(
        svg,
        "<figcaption>Each row a key; the run is compressed to {COLUMNS} columns of {:.1} ms (blue: \
         someone held the key in that column; red: a violating overlap; the overview is not \
         fine enough to show gaps shorter than a column).{}</figcaption></figure>",
        col_ns as f64 / 1e6,
        if keys > MAX_KEYS {
            format!(" The first {MAX_KEYS} of {keys} keys are shown.")
        } else {
            String::new()
        }
    );
    svg
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}
