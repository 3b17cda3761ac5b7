//! The checkers' speed figure (issue 6): the whole streaming analysis
//! (mutual exclusion with causes, ownership, fencing, liveness, recovery)
//! over a history of 100 clients on 10 keys, reading the file included.
//! Target: at most 2 s and 1 GB for 1,000,000 operations. Measured twice,
//! since "operation" can be read two ways: 1,000,000 events (lines), and
//! 1,000,000 invoke/completion pairs (2,000,000 events).
//!
//! The history is generated once, outside the timing, into a temp dir: a
//! small simulation of clients cycling acquire → write → release on a lock
//! table, with some acquires failing (held) or ending `info`, some releases
//! failing and being retried, the odd crash, and a partition now and then.
//! After the run the process's peak RSS (`VmHWM`) is printed.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

mod common;

use criterion::{SamplingMode, Throughput};
use lockbench::check::{AnalysisOptions, analyze_file};

const CLIENTS: u64 = 100;
const KEYS: u64 = 10;

/// A tiny deterministic generator (xorshift64*): the history is the same
/// on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Where a client is in its cycle.
#[derive(Clone, Copy)]
enum Step {
    AcquireInvoke,
    AcquireDone,
    WriteInvoke,
    WriteDone,
    ReleaseInvoke,
    ReleaseDone,
}

struct Client {
    id: u64,
    key: u64,
    step: Step,
    fence: u64,
    /// Failed releases of the current hold.
    tries: u32,
}

/// Writes the history; returns how many events it holds.
fn generate(path: &Path, events: u64) -> u64 {
    let file = std::fs::File::create(path).expect("create history");
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let mut clients: Vec<Client> = (0..CLIENTS)
        .map(|id| Client {
            id,
            key: 0,
            step: Step::AcquireInvoke,
            fence: 0,
            tries: 0,
        })
        .collect();
    let mut next_id = CLIENTS;
    let mut holder: Vec<Option<u64>> = vec![None; KEYS as usize];
    let mut fences = vec![0u64; KEYS as usize];
    let mut time = 1_000u64;
    let mut index = 0u64;
    let mut partition_open = false;
    let line = |out: &mut std::io::BufWriter<std::fs::File>, text: String| {
        out.write_all(text.as_bytes()).expect("write history");
    };
    while index < events {
        time += 1 + rng.below(20_000);
        // A partition opens or heals every 50,000 events or so.
        if rng.below(50_000) == 0 {
            let (f, edge) = if partition_open {
                ("stop-partition", "stop")
            } else {
                ("start-partition", "start")
            };
            partition_open = !partition_open;
            line(
                &mut out,
                format!(
                    "{{\"index\":{index},\"time_ns\":{time},\"process\":\"nemesis\",\"type\":\"info\",\"f\":\"{f}\",\"value\":{{\"fault\":\"partition\",\"edge\":\"{edge}\",\"targets\":[\"h{}\"]}}}}\n",
                    rng.below(10) + 1
                ),
            );
            index += 1;
            continue;
        }
        let slot = rng.below(CLIENTS) as usize;
        let c = &mut clients[slot];
        let p = c.id;
        let k = c.key;
        let text = match c.step {
            Step::AcquireInvoke => {
                c.key = rng.below(KEYS);
                c.step = Step::AcquireDone;
                format!(
                    "{{\"index\":{index},\"time_ns\":{time},\"process\":{p},\"type\":\"invoke\",\"f\":\"acquire\",\"key\":\"key-{}\",\"lease_ms\":2000}}\n",
                    c.key
                )
            }
            Step::AcquireDone => {
                let roll = rng.below(100);
                if roll < 2 {
                    c.step = Step::AcquireInvoke;
                    format!(
                        "{{\"index\":{index},\"time_ns\":{time},\"process\":{p},\"type\":\"info\",\"f\":\"acquire\",\"key\":\"key-{k}\",\"error\":\"timeout\"}}\n"
                    )
                } else if holder[k as usize].is_none() {
                    holder[k as usize] = Some(p);
                    fences[k as usize] += 1;
                    c.fence = fences[k as usize];
                    c.step = Step::WriteInvoke;
                    format!(
                        "{{\"index\":{index},\"time_ns\":{time},\"process\":{p},\"type\":\"ok\",\"f\":\"acquire\",\"key\":\"key-{k}\",\"fence\":{},\"lease_ms\":2000}}\n",
                        c.fence
                    )
                } else {
                    c.step = Step::AcquireInvoke;
                    format!(
                        "{{\"index\":{index},\"time_ns\":{time},\"process\":{p},\"type\":\"fail\",\"f\":\"acquire\",\"key\":\"key-{k}\",\"error\":\"lock is held by another client\"}}\n"
                    )
                }
            }
            Step::WriteInvoke => {
                c.step = Step::WriteDone;
                format!(
                    "{{\"index\":{index},\"time_ns\":{time},\"process\":{p},\"type\":\"invoke\",\"f\":\"write\",\"key\":\"key-{k}\",\"fence\":{}}}\n",
                    c.fence
                )
            }
            Step::WriteDone => {
                c.step = Step::ReleaseInvoke;
                format!(
                    "{{\"index\":{index},\"time_ns\":{time},\"process\":{p},\"type\":\"ok\",\"f\":\"write\",\"key\":\"key-{k}\",\"fence\":{},\"value\":{{\"accepted\":true}}}}\n",
                    c.fence
                )
            }
            Step::ReleaseInvoke => {
                // Now and then the holder crashes instead (a new client
                // takes its place), leaving the lock to its lease.
                if rng.below(2_000) == 0 {
                    holder[k as usize] = None;
                    c.tries = 0;
                    c.id = next_id;
                    next_id += 1;
                    c.step = Step::AcquireInvoke;
                    format!(
                        "{{\"index\":{index},\"time_ns\":{time},\"process\":{p},\"type\":\"info\",\"f\":\"crash\",\"error\":\"client task aborted\"}}\n"
                    )
                } else {
                    c.step = Step::ReleaseDone;
                    format!(
                        "{{\"index\":{index},\"time_ns\":{time},\"process\":{p},\"type\":\"invoke\",\"f\":\"release\",\"key\":\"key-{k}\",\"fence\":{}}}\n",
                        c.fence
                    )
                }
            }
            Step::ReleaseDone => {
                if c.tries < 3 && rng.below(100) < 3 {
                    c.tries += 1;
                    c.step = Step::ReleaseInvoke;
                    format!(
                        "{{\"index\":{index},\"time_ns\":{time},\"process\":{p},\"type\":\"fail\",\"f\":\"release\",\"key\":\"key-{k}\",\"error\":\"connection refused\"}}\n"
                    )
                } else {
                    holder[k as usize] = None;
                    c.tries = 0;
                    c.step = Step::AcquireInvoke;
                    format!(
                        "{{\"index\":{index},\"time_ns\":{time},\"process\":{p},\"type\":\"ok\",\"f\":\"release\",\"key\":\"key-{k}\"}}\n"
                    )
                }
            }
        };
        line(&mut out, text);
        index += 1;
    }
    out.flush().expect("flush history");
    index
}

/// The process's peak resident set size, from /proc/self/status.
fn peak_rss() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .map(|l| l.trim_start_matches("VmHWM:").trim().to_string())
}

fn main() {
    // criterion draws its plots with plotters, which (with ab_glyph) only
    // knows fonts registered by the program.
    if let Err(e) = lockbench::report::register_font() {
        eprintln!("font: {e}");
    }
    // The smoke run (`cargo test`, benches/common) checks a thousandth.
    let scale = if common::smoke() { 1_000 } else { 1 };
    common::banner(
        "checkers",
        "the whole analysis of histories of 1M and 2M events",
        Duration::from_secs(60),
        "",
    );
    let mut c = common::criterion();
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("checkers: no temp dir: {e}");
            std::process::exit(1);
        }
    };
    let mut g = c.benchmark_group("checkers");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(15));
    for (name, events) in [
        ("analyze_file_1m_events_100_clients_10_keys", 1_000_000),
        ("analyze_file_2m_events_100_clients_10_keys", 2_000_000),
    ] {
        let path = dir.path().join(format!("{name}.jsonl"));
        let events = generate(&path, events / scale);
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        // One run outside criterion, to show what the analysis finds.
        let (analysis, stats) = analyze_file(&path, AnalysisOptions::default()).expect("analysis");
        println!(
            "{name}: {events} events ({} read), {:.1} MB; mutex {} ({} violations), ownership {}, fencing {:?}, jain {:.3}, {} fault ends",
            stats.events,
            size as f64 / 1e6,
            analysis.mutex.verdict,
            analysis.mutex.violations,
            analysis.ownership.verdict,
            analysis.fencing.outcome,
            analysis.liveness.jain_index,
            analysis.recovery.faults.len()
        );
        g.throughput(Throughput::Elements(events));
        g.bench_function(name, |b| {
            b.iter(|| analyze_file(&path, AnalysisOptions::default()).expect("analysis"))
        });
        // Only one history on disk at a time.
        let _ = std::fs::remove_file(&path);
    }
    g.finish();
    c.final_summary();
    println!(
        "peak RSS (VmHWM) of this process: {} (target ≤ 1 GB)",
        peak_rss().unwrap_or_else(|| "unavailable".into())
    );
}
