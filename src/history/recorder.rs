use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::Event;
use crate::error::{Error, Result};

/// The run's one monotonic clock: every event is stamped from it.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// When the run started; `time_ns` counts from here.
    start: Instant,
}

impl Clock {
    /// A clock that starts now.
    pub fn start() -> Self {
        Clock {
            start: Instant::now(),
        }
    }

    /// Nanoseconds since the run started.
    pub fn now_ns(&self) -> u64 {
        self.ns_at(Instant::now())
    }

    /// Nanoseconds from the start of the run to `t` (0 if `t` is earlier).
    pub fn ns_at(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.start).as_nanos()).unwrap_or(u64::MAX)
    }

    /// The instant of the run's start.
    pub fn started(&self) -> Instant {
        self.start
    }
}

/// The sending side of the history: cheap to clone, one per client.
///
/// Sending waits when the writer falls behind (the channel is bounded), so
/// a slow disk slows the run instead of growing memory without limit.
#[derive(Debug, Clone)]
pub struct RecorderHandle {
    /// `None` when recording is off (benchmarks measure its cost).
    tx: Option<mpsc::Sender<Event>>,
}

impl RecorderHandle {
    /// A handle that drops every event: recording off.
    pub fn disabled() -> Self {
        RecorderHandle { tx: None }
    }

    /// Whether events go anywhere.
    pub fn is_enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Records one event. If the writer has stopped (a disk error), the
    /// event is dropped; [`Recorder::finish`] reports the error.
    pub async fn record(&self, event: Event) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(event).await;
        }
    }
}

/// The writing side: a dedicated thread that numbers events in file order
/// and appends them to `history.jsonl`, flushing at least once a second so
/// that a run killed with SIGKILL leaves a readable prefix.
#[derive(Debug)]
pub struct Recorder {
    /// The writer thread; yields the number of events written.
    writer: std::thread::JoinHandle<Result<u64>>,
    /// The history file, for messages.
    path: PathBuf,
}

/// How long the writer may keep events in its buffer.
const FLUSH_EVERY: Duration = Duration::from_millis(500);

impl Recorder {
    /// Creates `path` and starts the writer. `capacity` bounds the events in
    /// flight between the clients and the writer.
    pub fn create(path: &Path, capacity: usize) -> Result<(Recorder, RecorderHandle)> {
        let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let owned = path.to_path_buf();
        let writer = std::thread::Builder::new()
            .name("lockbench-history".into())
            .spawn(move || write_loop(rx, BufWriter::with_capacity(1 << 16, file), &owned))
            .map_err(|e| Error::io(path, e))?;
        Ok((
            Recorder {
                writer,
                path: path.to_path_buf(),
            },
            RecorderHandle { tx: Some(tx) },
        ))
    }

    /// Waits until every handle is dropped and everything is on disk.
    /// Returns the number of events written.
    pub fn finish(self) -> Result<u64> {
        match self.writer.join() {
            Ok(result) => result,
            Err(_) => Err(Error::io(
                &self.path,
                std::io::Error::other("history writer thread panicked"),
            )),
        }
    }
}

fn write_loop(
    mut rx: mpsc::Receiver<Event>,
    mut out: BufWriter<std::fs::File>,
    path: &Path,
) -> Result<u64> {
    let mut index = 0u64;
    let mut last_flush = Instant::now();
    let mut line = Vec::with_capacity(256);
    let io = |e: std::io::Error| Error::io(path, e);
    loop {
        let event = match rx.try_recv() {
            Ok(event) => event,
            Err(mpsc::error::TryRecvError::Empty) => {
                // Nothing waiting: put what we have on disk before sleeping.
                out.flush().map_err(io)?;
                last_flush = Instant::now();
                match rx.blocking_recv() {
                    Some(event) => event,
                    None => break,
                }
            }
            Err(mpsc::error::TryRecvError::Disconnected) => break,
        };
        let mut event = event;
        event.index = index;
        index += 1;
        line.clear();
        serde_json::to_writer(&mut line, &event).map_err(|e| io(std::io::Error::other(e)))?;
        line.push(b'\n');
        out.write_all(&line).map_err(io)?;
        if last_flush.elapsed() >= FLUSH_EVERY {
            out.flush().map_err(io)?;
            last_flush = Instant::now();
        }
    }
    out.flush().map_err(io)?;
    out.get_ref().sync_data().map_err(io)?;
    Ok(index)
}
