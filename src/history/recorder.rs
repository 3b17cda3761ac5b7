use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::{Event, F, OpType, Process};
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

/// A lock key as the recorder knows it: its index in the key table given
/// to [`Recorder::create`] (a run's keys are known before it starts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyId(pub u32);

/// The functions of a client's own operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpF {
    /// `acquire`.
    Acquire,
    /// `release`.
    Release,
    /// `renew`.
    Renew,
    /// `write` (the protected resource).
    Write,
}

impl OpF {
    /// The same function as an [`F`].
    pub fn f(self) -> F {
        match self {
            OpF::Acquire => F::Acquire,
            OpF::Release => F::Release,
            OpF::Renew => F::Renew,
            OpF::Write => F::Write,
        }
    }
}

/// The common event of a run, in a fixed-size, allocation-free form: a
/// client's operation on one of the run's keys, with no error and no value
/// other than a write's `{"accepted": ...}`. Everything else is an
/// [`Event`]. Both end as the same history v1 line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    /// The client's process id.
    pub process: u64,
    /// Invocation or completion.
    pub kind: OpType,
    /// What was done.
    pub f: OpF,
    /// Which of the run's keys.
    pub key: KeyId,
    /// The fencing token, where there is one.
    pub fence: Option<u64>,
    /// The lease, in milliseconds.
    pub lease_ms: Option<u64>,
    /// A write's outcome at the protected resource: `value` is
    /// `{"accepted": ...}`.
    pub accepted: Option<bool>,
}

impl Op {
    /// An operation with only the required fields.
    pub fn new(process: u64, kind: OpType, f: OpF, key: KeyId) -> Self {
        Op {
            process,
            kind,
            f,
            key,
            fence: None,
            lease_ms: None,
            accepted: None,
        }
    }
}

/// One entry of the buffer: most are `Op`s, which cost no allocation.
#[derive(Debug)]
enum Entry {
    Op { time_ns: u64, op: Op },
    Event(Box<Event>),
}

/// The events waiting for the writer, and the last time given out.
#[derive(Debug)]
struct Buffer {
    entries: Vec<Entry>,
    /// The time of the last event appended: times never go back in file
    /// order.
    last_ns: u64,
}

/// What the clients and the writer share: a bounded buffer of events.
#[derive(Debug)]
struct Shared {
    /// Stamps each event as it enters the buffer.
    clock: Clock,
    /// The run's keys: `KeyId(i)` is `keys[i]`.
    keys: Vec<String>,
    /// Events not yet taken by the writer, in time order.
    buffer: Mutex<Buffer>,
    /// The most events the buffer holds; a client waits when it is full.
    capacity: usize,
    /// Signalled when the writer empties the buffer.
    space: Notify,
    /// Set when the writer has stopped on an error: events are dropped
    /// instead of waiting forever.
    failed: AtomicBool,
    /// The writer's thread, woken when the buffer is half full (it naps
    /// otherwise: few wake-ups at low rates, no wait at high ones).
    writer: std::sync::OnceLock<std::thread::Thread>,
}

impl Shared {
    fn wake_writer(&self) {
        if let Some(t) = self.writer.get() {
            t.unpark();
        }
    }

    fn buffer(&self) -> std::sync::MutexGuard<'_, Buffer> {
        // Pushes and swaps cannot leave the Vec half-updated.
        self.buffer.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The sending side of the history: cheap to clone, one per client.
///
/// An event is stamped with the run's clock just before the critical
/// section that appends it, and raised there to the last time appended if
/// that is later, so the file's order is the events' time order, as tools
/// that read index order as real-time order (Knossos, Porcupine) require.
/// The time given is still within the recording call (between the clock
/// read and the append, as the last event's append came before this one),
/// so an invoke's time is before its request leaves and a completion's
/// after its answer came; the clock is not read under the lock. The buffer is bounded: when the writer falls behind, clients
/// wait, so a slow disk slows the run instead of growing memory.
#[derive(Debug, Clone)]
pub struct RecorderHandle {
    /// `None` when recording is off (benchmarks measure its cost).
    shared: Option<Arc<Shared>>,
}

impl RecorderHandle {
    /// A handle that drops every event: recording off.
    pub fn disabled() -> Self {
        RecorderHandle { shared: None }
    }

    /// Whether events go anywhere.
    pub fn is_enabled(&self) -> bool {
        self.shared.is_some()
    }

    /// Whether the writer stopped on an error (a full disk): events are
    /// dropped from then on, and the run should stop.
    pub fn has_failed(&self) -> bool {
        self.shared
            .as_ref()
            .is_some_and(|s| s.failed.load(Ordering::Relaxed))
    }

    /// Records `event`, setting its `time_ns` to now.
    pub fn record(&self, event: Event) -> Recording {
        let event = Box::new(event);
        self.push(None, move |time_ns| {
            let mut e = event;
            e.time_ns = time_ns;
            Entry::Event(e)
        })
    }

    /// Records `op`, stamped now: the same line as the equivalent `Event`,
    /// at a fraction of the cost (no allocation on the client's side, a
    /// copy on the writer's). `op.key` must be a key of the table the
    /// recorder was created with.
    pub fn record_op(&self, op: Op) -> Recording {
        self.record_op_at(op, None)
    }

    /// Records `op` stamped `at`, a time the caller has just read (an
    /// acquire's answer), or now: one clock read less per event.
    pub fn record_op_at(&self, op: Op, at: Option<std::time::Instant>) -> Recording {
        debug_assert!(
            self.shared
                .as_ref()
                .is_none_or(|s| (op.key.0 as usize) < s.keys.len()),
            "unknown key id {:?}",
            op.key
        );
        self.push(at, move |time_ns| Entry::Op { time_ns, op })
    }

    /// Appends the entry `make` builds from the event's time now, or, when
    /// the buffer is full, gives the wait for space to await.
    fn push<M>(&self, at: Option<std::time::Instant>, make: M) -> Recording
    where
        M: FnOnce(u64) -> Entry + Send + 'static,
    {
        let Some(shared) = &self.shared else {
            return Recording(None);
        };
        match shared.try_push(at, make) {
            Ok(()) => Recording(None),
            Err(make) => Recording(Some(Box::pin(shared.clone().push_waiting(at, make)))),
        }
    }
}

impl Shared {
    /// Appends the entry now, or hands `make` back when the buffer is full.
    fn try_push<M: FnOnce(u64) -> Entry>(
        &self,
        at: Option<std::time::Instant>,
        make: M,
    ) -> std::result::Result<(), M> {
        let stamp = match at {
            Some(at) => self.clock.ns_at(at),
            None => self.clock.now_ns(),
        };
        let mut buffer = self.buffer();
        if self.failed.load(Ordering::Relaxed) {
            return Ok(());
        }
        if buffer.entries.len() >= self.capacity {
            return Err(make);
        }
        let time_ns = stamp.max(buffer.last_ns);
        buffer.last_ns = time_ns;
        buffer.entries.push(make(time_ns));
        let half = buffer.entries.len() == self.capacity.div_ceil(2);
        drop(buffer);
        if half {
            self.wake_writer();
        }
        Ok(())
    }

    /// Waits for space in the buffer, then appends the entry.
    async fn push_waiting<M: FnOnce(u64) -> Entry>(
        self: Arc<Self>,
        at: Option<std::time::Instant>,
        mut make: M,
    ) {
        loop {
            let space = self.space.notified();
            tokio::pin!(space);
            space.as_mut().enable();
            if self.buffer().entries.len() >= self.capacity {
                self.wake_writer();
                space.await;
            }
            match self.try_push(at, make) {
                Ok(()) => return,
                Err(back) => make = back,
            }
        }
    }
}

/// What a recording call leaves to await: nothing when its event went into
/// the buffer at once (the usual case), else the wait for space, then the
/// append. One pointer wide, because every client's task holds one across
/// its awaits: boxing the rare wait keeps 100,000 clients' tasks small.
#[must_use = "when the buffer is full, the event is recorded only once this is awaited"]
pub struct Recording(Option<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>>);

impl Future for Recording {
    type Output = ();

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        match self.get_mut().0.as_mut() {
            None => std::task::Poll::Ready(()),
            Some(wait) => wait.as_mut().poll(cx),
        }
    }
}

/// How a history is stored: the same history v1 lines, plain or
/// zstd-compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HistoryFormat {
    /// `history.jsonl.zst`: zstd frames of history v1 lines, each frame
    /// closed within `FLUSH_EVERY`, so a killed run leaves whole frames
    /// (`zstdcat` reads them; every lockbench reader takes both forms).
    #[default]
    Zstd,
    /// `history.jsonl`: plain history v1 lines.
    Jsonl,
}

impl HistoryFormat {
    /// The file name a run directory gives its history in this form.
    pub fn file_name(self) -> &'static str {
        match self {
            HistoryFormat::Zstd => "history.jsonl.zst",
            HistoryFormat::Jsonl => "history.jsonl",
        }
    }
}

/// zstd's level for histories: level 1 made a real history 7.4× smaller
/// at 250 MB/s on a 2-core machine (issue 16), far above what a run writes.
const ZSTD_LEVEL: i32 = 1;
/// A zstd frame is closed when this much text is waiting, or at the next
/// flush, whichever comes first: larger frames compress better, and this
/// bounds the writer's memory.
const FRAME_TEXT: usize = 1 << 20;

/// Where the writer's lines go: straight to the file, or into zstd frames.
enum Sink {
    Plain(BufWriter<std::fs::File>),
    Zstd {
        file: std::fs::File,
        /// Reused for every frame: a context is costly to set up.
        compressor: zstd::bulk::Compressor<'static>,
        /// Lines not yet in a frame.
        text: Vec<u8>,
        /// The compressed frame, reused.
        frame: Vec<u8>,
    },
}

impl Sink {
    fn new(file: std::fs::File, format: HistoryFormat) -> std::io::Result<Sink> {
        Ok(match format {
            HistoryFormat::Jsonl => Sink::Plain(BufWriter::with_capacity(1 << 16, file)),
            HistoryFormat::Zstd => Sink::Zstd {
                file,
                compressor: zstd::bulk::Compressor::new(ZSTD_LEVEL)?,
                text: Vec::with_capacity(FRAME_TEXT + 4096),
                frame: Vec::new(),
            },
        })
    }

    fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Plain(out) => out.write_all(line),
            Sink::Zstd { text, .. } => {
                text.extend_from_slice(line);
                if text.len() >= FRAME_TEXT {
                    self.flush()
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Everything written so far goes to the file (for zstd: as one
    /// closed frame).
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Plain(out) => out.flush(),
            Sink::Zstd {
                file,
                compressor,
                text,
                frame,
            } => {
                if text.is_empty() {
                    return Ok(());
                }
                frame.clear();
                frame.reserve(zstd::zstd_safe::compress_bound(text.len()));
                compressor.compress_to_buffer(text.as_slice(), frame)?;
                text.clear();
                file.write_all(frame)
            }
        }
    }
}

/// The writing side, two threads. The writer takes the buffered events in
/// batches, numbers them in file order and appends them to the spool as
/// compact records (a copy each: no formatting, no compression), handing a
/// segment to the converter at least twice a second. The converter turns
/// each segment into history v1 lines in the history file (zstd: one or
/// more closed frames per segment) and deletes it. It runs at the lowest
/// priority (SCHED_IDLE) while its backlog is small, so at saturation it
/// waits for the run's idle CPU, or its end, instead of taking the clients'
/// CPU; past `BACKLOG_MAX` it runs as an ordinary thread. A run killed
/// with SIGKILL leaves the closed frames and the segments not yet
/// converted: readers chain them (`open_history`), so the readable prefix
/// reaches the writer's last flush.
#[derive(Debug)]
pub struct Recorder {
    /// The writer thread; yields the number of events written.
    writer: std::thread::JoinHandle<Result<u64>>,
    /// The converter thread; ends when the writer has.
    converter: std::thread::JoinHandle<Result<()>>,
    /// The converter's priority.
    priority: Arc<Priority>,
    /// The history file, for messages.
    path: PathBuf,
}

/// How long the writer may keep events in memory: a segment goes to disk
/// and to the converter at least this often.
const FLUSH_EVERY: Duration = Duration::from_millis(500);
/// The writer's pause between batches. A client that fills half the
/// buffer wakes it sooner, so at high rates it takes half a buffer at a
/// time, and at low ones it wakes 50 times a second instead of the 2,000
/// a fixed 0.5 ms pause made (CPU taken from the servers and clients on a
/// small machine).
const NAP: Duration = Duration::from_millis(20);
/// Records are written to the segment file in pieces of this size.
const WRITE_PIECE: usize = 1 << 20;
/// A segment is handed over at this size even within the flush interval:
/// this bounds the converter's memory (it reads a segment whole).
const SEGMENT_MAX: usize = 16 << 20;
/// Spool bytes waiting for the converter beyond which it stops yielding
/// to the run: disk use stays bounded at saturation.
pub const BACKLOG_MAX: u64 = 1 << 30;

impl Recorder {
    /// Creates `path` and starts the writer. At most `capacity` events wait
    /// between the clients and the writer; `clock` stamps them.
    /// The file is written in `format` whatever its name. `keys` is the
    /// table [`Op::key`] indexes.
    pub fn create(
        path: &Path,
        format: HistoryFormat,
        capacity: usize,
        clock: Clock,
        keys: &[String],
    ) -> Result<(Recorder, RecorderHandle)> {
        let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
        let sink = Sink::new(file, format).map_err(|e| Error::io(path, e))?;
        // Segments of an earlier run under this name would be read as ours.
        for old in super::spool::leftovers(path) {
            std::fs::remove_file(&old).map_err(|e| Error::io(&old, e))?;
        }
        let capacity = capacity.max(1);
        let shared = Arc::new(Shared {
            clock,
            keys: keys.to_vec(),
            buffer: Mutex::new(Buffer {
                entries: Vec::with_capacity(capacity),
                last_ns: 0,
            }),
            capacity,
            space: Notify::new(),
            failed: AtomicBool::new(false),
            writer: std::sync::OnceLock::new(),
        });
        let backlog = Arc::new(AtomicU64::new(0));
        let (segments, received) = std::sync::mpsc::channel::<(PathBuf, u64)>();
        let spool = Spool {
            history: path.to_path_buf(),
            keys: keys.to_vec(),
            file: None,
            records: Vec::with_capacity(WRITE_PIECE + 4096),
            next_index: 0,
            segment_bytes: 0,
            segments,
            backlog: backlog.clone(),
        };
        // A weak reference: the writer's "last handle" test counts strong
        // ones, the clients' and its own.
        let converter_shared = Arc::downgrade(&shared);
        let converter_path = path.to_path_buf();
        let priority = Arc::new(Priority::default());
        let converter_priority = priority.clone();
        let converter = std::thread::Builder::new()
            .name("lockbench-convert".into())
            .spawn(move || {
                let result = convert_loop(received, sink, &backlog, &converter_priority)
                    .map_err(|e| Error::io(&converter_path, e));
                if result.is_err()
                    && let Some(shared) = converter_shared.upgrade()
                {
                    shared.failed.store(true, Ordering::Relaxed);
                    shared.space.notify_waiters();
                }
                result
            })
            .map_err(|e| Error::io(path, e))?;
        let writer_shared = shared.clone();
        let owned = path.to_path_buf();
        let writer = std::thread::Builder::new()
            .name("lockbench-history".into())
            .spawn(move || {
                let _ = writer_shared.writer.set(std::thread::current());
                let result = write_loop(&writer_shared, spool, &owned);
                if result.is_err() {
                    writer_shared.failed.store(true, Ordering::Relaxed);
                    writer_shared.space.notify_waiters();
                }
                result
            })
            .map_err(|e| Error::io(path, e))?;
        Ok((
            Recorder {
                writer,
                converter,
                priority,
                path: path.to_path_buf(),
            },
            RecorderHandle {
                shared: Some(shared),
            },
        ))
    }

    /// Waits until every handle is dropped and everything is in the
    /// history file. Returns the number of events written.
    pub fn finish(self) -> Result<u64> {
        self.finish_recording()?.wait()
    }

    /// Waits until every handle is dropped and every event is on disk, in
    /// the spool if not yet in the history file: the end of the run's
    /// recording. The conversion may still be going on; [`Finishing::wait`]
    /// waits for it.
    pub fn finish_recording(self) -> Result<Finishing> {
        // It may be napping: the last handle's drop is news to it.
        self.writer.thread().unpark();
        let written = self
            .writer
            .join()
            .map_err(|_| panicked(&self.path, "writer"));
        self.priority.run_over();
        let finishing = Finishing {
            events: 0,
            converter: self.converter,
            path: self.path,
        };
        match written {
            Ok(Ok(events)) => Ok(Finishing {
                events,
                ..finishing
            }),
            Ok(Err(e)) | Err(e) => {
                // The writer dropped its end of the channel: the converter
                // ends once it has converted what it was handed.
                let _ = finishing.converter.join();
                Err(e)
            }
        }
    }
}

fn panicked(path: &Path, what: &str) -> Error {
    Error::io(
        path,
        std::io::Error::other(format!("history {what} thread panicked")),
    )
}

/// A recording that has ended, its events on disk, while the converter
/// turns the rest of the spool into history lines.
#[derive(Debug)]
pub struct Finishing {
    events: u64,
    converter: std::thread::JoinHandle<Result<()>>,
    path: PathBuf,
}

impl Finishing {
    /// The number of events recorded.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Waits until every event is in the history file; returns how many.
    pub fn wait(self) -> Result<u64> {
        self.converter
            .join()
            .map_err(|_| panicked(&self.path, "converter"))??;
        Ok(self.events)
    }
}

/// The writer's side of the spool: the current segment and the records not
/// yet written to it.
struct Spool {
    history: PathBuf,
    keys: Vec<String>,
    /// The open segment and its path.
    file: Option<(std::fs::File, PathBuf)>,
    /// Records not yet written.
    records: Vec<u8>,
    /// The index the next event gets.
    next_index: u64,
    /// Bytes in the open segment.
    segment_bytes: u64,
    /// To the converter: each finished segment and its size.
    segments: std::sync::mpsc::Sender<(PathBuf, u64)>,
    /// Bytes handed to the converter and not yet converted.
    backlog: Arc<AtomicU64>,
}

impl Spool {
    /// Writes the pending records to the open segment (opening one first).
    fn write_out(&mut self) -> std::io::Result<()> {
        if self.records.is_empty() {
            return Ok(());
        }
        if self.file.is_none() {
            return Err(std::io::Error::other("no open segment"));
        }
        if let Some((file, _)) = &mut self.file {
            file.write_all(&self.records)?;
        }
        self.segment_bytes += self.records.len() as u64;
        self.records.clear();
        Ok(())
    }

    /// Makes sure a segment is open for the next event.
    fn open(&mut self) -> std::io::Result<()> {
        if self.file.is_some() {
            return Ok(());
        }
        let path = super::spool::segment_path(&self.history, self.next_index);
        let mut file = std::fs::File::create(&path)?;
        let header = super::spool::header(self.next_index, &self.keys);
        file.write_all(&header)?;
        self.segment_bytes = header.len() as u64;
        self.file = Some((file, path));
        Ok(())
    }

    /// Writes what is pending and hands the segment to the converter.
    fn hand_over(&mut self) -> std::io::Result<()> {
        self.write_out()?;
        if let Some((file, path)) = self.file.take() {
            drop(file);
            self.backlog
                .fetch_add(self.segment_bytes, Ordering::Relaxed);
            // A converter that stopped has said why through `failed`.
            let _ = self.segments.send((path, self.segment_bytes));
        }
        Ok(())
    }
}

fn write_loop(shared: &Arc<Shared>, mut spool: Spool, path: &Path) -> Result<u64> {
    let io = |e: std::io::Error| Error::io(path, e);
    let mut last_flush = Instant::now();
    let mut batch: Vec<Entry> = Vec::with_capacity(shared.capacity);
    let mut line = Vec::with_capacity(256);
    loop {
        // Only the writer's own reference left: no handle can add events.
        let last_round = Arc::strong_count(shared) == 1;
        std::mem::swap(&mut shared.buffer().entries, &mut batch);
        shared.space.notify_waiters();
        let quiet = batch.is_empty();
        if !batch.is_empty() {
            spool.open().map_err(io)?;
        }
        for entry in batch.drain(..) {
            match entry {
                Entry::Op { time_ns, op } => {
                    super::spool::push_op(&mut spool.records, time_ns, &op)
                }
                Entry::Event(event) => {
                    line.clear();
                    write_line(&mut line, spool.next_index, &event);
                    super::spool::push_line(&mut spool.records, &line);
                }
            }
            spool.next_index += 1;
            if spool.records.len() >= WRITE_PIECE {
                spool.write_out().map_err(io)?;
                if spool.segment_bytes as usize >= SEGMENT_MAX {
                    spool.hand_over().map_err(io)?;
                    spool.open().map_err(io)?;
                }
            }
        }
        if last_round {
            break;
        }
        // A quiet moment hands over what it has: nothing is coming to
        // add to it.
        if last_flush.elapsed() >= FLUSH_EVERY || (quiet && spool.file.is_some()) {
            spool.hand_over().map_err(io)?;
            last_flush = Instant::now();
        }
        // A wake-up before the nap is over (half a buffer, the end) or a
        // spurious one only starts the next round early.
        std::thread::park_timeout(NAP);
    }
    spool.hand_over().map_err(io)?;
    // No fsync: what a killed process wrote is in the page cache and
    // survives it; only a machine crash could lose it.
    Ok(spool.next_index)
}

/// Sets the calling thread's scheduling policy: SCHED_IDLE (runs only on
/// CPU nothing else wants) or the ordinary one.
fn set_idle(tid: libc::pid_t, idle: bool) {
    let policy = if idle {
        libc::SCHED_IDLE
    } else {
        libc::SCHED_OTHER
    };
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `tid` is the converter thread (0: the calling thread), which
    // outlives every call (the recorder joins it after); `param` lives
    // across the call. A refusal leaves the policy as it was: only slower.
    unsafe {
        libc::sched_setscheduler(tid, policy, &param);
    }
}

/// The converter's scheduling, shared with the recorder, which ends its
/// idle priority when the run ends: under a busy machine (other processes
/// keeping the CPUs busy) a SCHED_IDLE thread barely runs.
#[derive(Debug, Default)]
struct Priority {
    /// The converter's thread id once it runs, and whether the run is
    /// over; changed only under this lock, so the last change wins.
    state: Mutex<(Option<libc::pid_t>, bool)>,
}

impl Priority {
    fn lock(&self) -> std::sync::MutexGuard<'_, (Option<libc::pid_t>, bool)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The run is over: the converter runs as an ordinary thread.
    fn run_over(&self) {
        let mut state = self.lock();
        state.1 = true;
        if let Some(tid) = state.0 {
            set_idle(tid, false);
        }
    }

    /// The converter, before each segment: idle while the run goes and
    /// the backlog is small.
    fn update(&self, backlog: u64, idle: &mut bool) {
        let mut state = self.lock();
        if state.0.is_none() {
            // SAFETY: gettid has no preconditions.
            state.0 = Some(unsafe { libc::gettid() });
        }
        let wants = !state.1 && backlog < BACKLOG_MAX;
        if wants != *idle {
            set_idle(0, wants);
            *idle = wants;
        }
    }
}

fn convert_loop(
    segments: std::sync::mpsc::Receiver<(PathBuf, u64)>,
    mut sink: Sink,
    backlog: &AtomicU64,
    priority: &Priority,
) -> std::io::Result<()> {
    let mut idle = false;
    priority.update(0, &mut idle);
    let mut line = Vec::with_capacity(256);
    for (path, size) in segments {
        priority.update(backlog.load(Ordering::Relaxed), &mut idle);
        let bytes = std::fs::read(&path)?;
        super::spool::read_segment(&bytes, &mut line, |_, text| sink.write_line(text))?;
        // The segment's lines are on disk (closed frames) before it goes.
        sink.flush()?;
        std::fs::remove_file(&path)?;
        backlog.fetch_sub(size, Ordering::Relaxed);
    }
    sink.flush()
}

/// The constant pieces of `Op` lines, made once per run: the converter
/// then copies them instead of escaping strings per event.
pub(super) struct OpLines {
    /// `,"key":"..."` for each key, escaped.
    keys: Vec<Vec<u8>>,
}

impl OpLines {
    pub(super) fn new(keys: &[String]) -> Self {
        OpLines {
            keys: keys
                .iter()
                .map(|k| {
                    let mut piece = b",\"key\":".to_vec();
                    json_str(&mut piece, k);
                    piece
                })
                .collect(),
        }
    }

    /// `,"type":"...","f":"..."`.
    fn type_and_f(kind: OpType, f: OpF) -> &'static [u8] {
        macro_rules! pieces {
            ($($kind:ident $f:ident $text:literal),* $(,)?) => {
                match (kind, f) {
                    $((OpType::$kind, OpF::$f) => $text.as_bytes(),)*
                }
            };
        }
        pieces! {
            Invoke Acquire ",\"type\":\"invoke\",\"f\":\"acquire\"",
            Ok Acquire ",\"type\":\"ok\",\"f\":\"acquire\"",
            Fail Acquire ",\"type\":\"fail\",\"f\":\"acquire\"",
            Info Acquire ",\"type\":\"info\",\"f\":\"acquire\"",
            Invoke Release ",\"type\":\"invoke\",\"f\":\"release\"",
            Ok Release ",\"type\":\"ok\",\"f\":\"release\"",
            Fail Release ",\"type\":\"fail\",\"f\":\"release\"",
            Info Release ",\"type\":\"info\",\"f\":\"release\"",
            Invoke Renew ",\"type\":\"invoke\",\"f\":\"renew\"",
            Ok Renew ",\"type\":\"ok\",\"f\":\"renew\"",
            Fail Renew ",\"type\":\"fail\",\"f\":\"renew\"",
            Info Renew ",\"type\":\"info\",\"f\":\"renew\"",
            Invoke Write ",\"type\":\"invoke\",\"f\":\"write\"",
            Ok Write ",\"type\":\"ok\",\"f\":\"write\"",
            Fail Write ",\"type\":\"fail\",\"f\":\"write\"",
            Info Write ",\"type\":\"info\",\"f\":\"write\"",
        }
    }

    /// The line of `op`: byte for byte the line of its `Event` (a test
    /// holds them equal).
    pub(super) fn write(&self, out: &mut Vec<u8>, index: u64, time_ns: u64, op: &Op) {
        let mut num = itoa::Buffer::new();
        out.extend_from_slice(b"{\"index\":");
        out.extend_from_slice(num.format(index).as_bytes());
        out.extend_from_slice(b",\"time_ns\":");
        out.extend_from_slice(num.format(time_ns).as_bytes());
        out.extend_from_slice(b",\"process\":");
        out.extend_from_slice(num.format(op.process).as_bytes());
        out.extend_from_slice(Self::type_and_f(op.kind, op.f));
        if let Some(key) = self.keys.get(op.key.0 as usize) {
            out.extend_from_slice(key);
        }
        if let Some(fence) = op.fence {
            out.extend_from_slice(b",\"fence\":");
            out.extend_from_slice(num.format(fence).as_bytes());
        }
        if let Some(lease) = op.lease_ms {
            out.extend_from_slice(b",\"lease_ms\":");
            out.extend_from_slice(num.format(lease).as_bytes());
        }
        match op.accepted {
            Some(true) => out.extend_from_slice(b",\"value\":{\"accepted\":true}"),
            Some(false) => out.extend_from_slice(b",\"value\":{\"accepted\":false}"),
            None => {}
        }
        out.extend_from_slice(b"}\n");
    }
}

impl Op {
    /// The same operation as an `Event` (for tests and for callers without
    /// a key table).
    pub fn to_event(&self, time_ns: u64, keys: &[String]) -> Event {
        let mut e = Event::new(
            time_ns,
            Process::Client(self.process),
            self.kind,
            self.f.f(),
        );
        e.key = keys.get(self.key.0 as usize).cloned();
        e.fence = self.fence;
        e.lease_ms = self.lease_ms;
        e.value = self.accepted.map(|a| serde_json::json!({ "accepted": a }));
        e
    }
}

/// One history v1 line, byte for byte what serde's `Event` serialization
/// gives (a test holds them equal), without its per-field overhead: the
/// writer formats millions of events a second.
fn write_line(out: &mut Vec<u8>, index: u64, e: &Event) {
    let mut num = itoa::Buffer::new();
    out.extend_from_slice(b"{\"index\":");
    out.extend_from_slice(num.format(index).as_bytes());
    out.extend_from_slice(b",\"time_ns\":");
    out.extend_from_slice(num.format(e.time_ns).as_bytes());
    out.extend_from_slice(b",\"process\":");
    match e.process {
        Process::Client(id) => out.extend_from_slice(num.format(id).as_bytes()),
        Process::Nemesis => out.extend_from_slice(b"\"nemesis\""),
    }
    out.extend_from_slice(b",\"type\":\"");
    out.extend_from_slice(e.kind.as_str().as_bytes());
    out.extend_from_slice(b"\",\"f\":");
    json_str(out, e.f.as_str());
    if let Some(key) = &e.key {
        out.extend_from_slice(b",\"key\":");
        json_str(out, key);
    }
    if let Some(fence) = e.fence {
        out.extend_from_slice(b",\"fence\":");
        out.extend_from_slice(num.format(fence).as_bytes());
    }
    if let Some(lease) = e.lease_ms {
        out.extend_from_slice(b",\"lease_ms\":");
        out.extend_from_slice(num.format(lease).as_bytes());
    }
    if let Some(value) = &e.value {
        out.extend_from_slice(b",\"value\":");
        // Writing JSON into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, value);
    }
    if let Some(error) = &e.error {
        out.extend_from_slice(b",\"error\":");
        json_str(out, error);
    }
    out.extend_from_slice(b"}\n");
}

fn json_str(out: &mut Vec<u8>, s: &str) {
    let plain = s
        .bytes()
        .all(|b| b >= 0x20 && b != b'"' && b != b'\\' && b < 0x7f);
    if plain {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_written_lines_equal_serde() {
        let mut events = vec![
            Event::new(5, Process::Client(3), OpType::Invoke, F::Acquire),
            Event::new(
                9,
                Process::Nemesis,
                OpType::Info,
                F::Fault("start-partition".into()),
            ),
        ];
        let mut full = Event::new(11, Process::Client(0), OpType::Ok, F::Write);
        full.key = Some("weird \"key\"\n\u{e9}".into());
        full.fence = Some(42);
        full.lease_ms = Some(5000);
        full.value = Some(serde_json::json!({"accepted": true, "n": [1, 2]}));
        full.error = Some("timed out \\ after 1 s".into());
        events.push(full);
        for (i, mut e) in events.into_iter().enumerate() {
            let mut line = Vec::new();
            write_line(&mut line, i as u64, &e);
            e.index = i as u64;
            let expected = serde_json::to_string(&e).unwrap() + "\n";
            assert_eq!(String::from_utf8(line).unwrap(), expected);
        }
    }

    #[test]
    fn op_lines_equal_their_events_lines() {
        let keys = vec!["k0".to_string(), "we\"ird\n\u{e9}".to_string()];
        let lines = OpLines::new(&keys);
        let mut n = 0;
        for kind in [OpType::Invoke, OpType::Ok, OpType::Fail, OpType::Info] {
            for f in [OpF::Acquire, OpF::Release, OpF::Renew, OpF::Write] {
                for (key, fence, lease_ms, accepted) in [
                    (0, None, None, None),
                    (1, Some(7), Some(5000), Some(true)),
                    (0, Some(u64::MAX), None, Some(false)),
                ] {
                    let op = Op {
                        process: 3 + n,
                        kind,
                        f,
                        key: KeyId(key),
                        fence,
                        lease_ms,
                        accepted,
                    };
                    let mut line = Vec::new();
                    lines.write(&mut line, n, 1000 + n, &op);
                    let mut e = op.to_event(1000 + n, &keys);
                    e.index = n;
                    let expected = serde_json::to_string(&e).unwrap() + "\n";
                    assert_eq!(String::from_utf8(line).unwrap(), expected);
                    n += 1;
                }
            }
        }
    }

    #[tokio::test]
    async fn file_order_is_time_order_and_all_events_arrive() {
        for format in [HistoryFormat::Zstd, HistoryFormat::Jsonl] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(format.file_name());
            let (recorder, handle) =
                Recorder::create(&path, format, 16, Clock::start(), &[]).unwrap();
            let mut tasks = Vec::new();
            for p in 0..8u64 {
                let h = handle.clone();
                tasks.push(tokio::spawn(async move {
                    for _ in 0..500 {
                        h.record(Event::new(
                            0,
                            Process::Client(p),
                            OpType::Invoke,
                            F::Acquire,
                        ))
                        .await;
                    }
                }));
            }
            drop(handle);
            for t in tasks {
                t.await.unwrap();
            }
            let written = tokio::task::spawn_blocking(move || recorder.finish())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(written, 4000);
            let raw = std::fs::read(&path).unwrap();
            assert_eq!(
                raw.starts_with(&[0x28, 0xB5, 0x2F, 0xFD]),
                format == HistoryFormat::Zstd,
                "{format:?}"
            );
            let h = crate::history::read_jsonl(&path).unwrap();
            assert_eq!(h.events.len(), 4000);
            assert!(!h.truncated);
            for pair in h.events.windows(2) {
                assert!(pair[0].time_ns <= pair[1].time_ns);
                assert_eq!(pair[0].index + 1, pair[1].index);
            }
        }
    }

    /// What a killed run leaves of a compressed history: closed frames,
    /// then an unfinished one. Readers take the closed frames' events and
    /// whatever the cut frame decodes to, as a prefix.
    #[test]
    fn a_cut_compressed_history_reads_as_its_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl.zst");
        let file = std::fs::File::create(&path).unwrap();
        let mut sink = Sink::new(file, HistoryFormat::Zstd).unwrap();
        let mut line = Vec::new();
        for i in 0..3000u64 {
            line.clear();
            let e = Event::new(i * 10, Process::Client(i % 7), OpType::Invoke, F::Acquire);
            write_line(&mut line, i, &e);
            sink.write_line(&line).unwrap();
            // Two closed frames: after 1000 and after 2000 events.
            if i == 999 || i == 1999 {
                sink.flush().unwrap();
            }
        }
        sink.flush().unwrap();
        drop(sink);
        let whole = std::fs::read(&path).unwrap();
        let all = crate::history::read_jsonl(&path).unwrap();
        assert_eq!(all.events.len(), 3000);
        // Cut inside the third frame: the first two frames' 2000 events
        // at least survive, in order, and nothing is an error.
        let first_two = {
            let mut frames = 0;
            let mut at = 0;
            // Frame starts are where the magic number occurs.
            for i in 1..whole.len() - 4 {
                if whole[i..i + 4] == [0x28, 0xB5, 0x2F, 0xFD] {
                    frames += 1;
                    if frames == 2 {
                        at = i;
                    }
                }
            }
            at
        };
        assert!(first_two > 0);
        std::fs::write(&path, &whole[..first_two + (whole.len() - first_two) / 2]).unwrap();
        let cut = crate::history::read_jsonl(&path).unwrap();
        assert!(cut.events.len() >= 2000, "{}", cut.events.len());
        assert!(cut.events.len() < 3000);
        for (i, e) in cut.events.iter().enumerate() {
            assert_eq!(e.index, i as u64);
        }
    }
    /// What a run killed while its converter lagged leaves: the history's
    /// closed frames (events 0..1200, the last frame cut in the middle),
    /// one segment the converter had finished but not yet deleted (events
    /// 1000..2000: overlapping), and one the writer was cut off in
    /// (2000..3000, its last record half-written). Readers give every
    /// event once, in order, up to the cut record.
    #[test]
    fn a_killed_runs_segments_continue_its_history() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl.zst");
        let keys = vec!["a".to_string(), "b".to_string()];
        let op = |i: u64| {
            let mut op = Op::new(i % 5, OpType::Ok, OpF::Write, KeyId((i % 2) as u32));
            op.fence = Some(i);
            op.accepted = Some(!i.is_multiple_of(3));
            op
        };
        let lines = OpLines::new(&keys);
        let mut sink =
            Sink::new(std::fs::File::create(&path).unwrap(), HistoryFormat::Zstd).unwrap();
        let mut line = Vec::new();
        for i in 0..1200u64 {
            line.clear();
            lines.write(&mut line, i, i * 3, &op(i));
            sink.write_line(&line).unwrap();
            if i == 999 {
                sink.flush().unwrap();
            }
        }
        sink.flush().unwrap();
        drop(sink);
        // Cut the file inside its second frame.
        let whole = std::fs::read(&path).unwrap();
        let second = (1..whole.len() - 4)
            .find(|&i| whole[i..i + 4] == [0x28, 0xB5, 0x2F, 0xFD])
            .unwrap();
        std::fs::write(&path, &whole[..second + (whole.len() - second) / 2]).unwrap();
        for (first, end, cut) in [(1000u64, 2000u64, false), (2000, 3000, true)] {
            let mut bytes = super::super::spool::header(first, &keys);
            for i in first..end {
                if i % 7 == 0 {
                    // A general event among the ops.
                    let mut e =
                        Event::new(i * 3, Process::Nemesis, OpType::Info, F::Fault("x".into()));
                    e.error = Some("why".into());
                    line.clear();
                    write_line(&mut line, i, &e);
                    super::super::spool::push_line(&mut bytes, &line);
                } else {
                    super::super::spool::push_op(&mut bytes, i * 3, &op(i));
                }
            }
            if cut {
                bytes.truncate(bytes.len() - 5);
            }
            std::fs::write(super::super::spool::segment_path(&path, first), &bytes).unwrap();
        }
        let h = crate::history::read_jsonl(&path).unwrap();
        // 2999 is the cut record (not a general one: 2999 % 7 != 0).
        assert_eq!(h.events.len(), 2999);
        for (i, e) in h.events.iter().enumerate() {
            assert_eq!(e.index, i as u64);
            assert_eq!(e.time_ns, 3 * i as u64);
        }
        assert_eq!(h.events[1003].fence, Some(1003));
        assert_eq!(h.events[1003].key.as_deref(), Some("b"));
        assert_eq!(h.events[2002].error.as_deref(), Some("why"));
    }

    /// A recorder leaves no segment behind when it finishes.
    #[tokio::test]
    async fn a_finished_recorder_leaves_no_spool() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl.zst");
        let keys = vec!["k".to_string()];
        let (recorder, handle) =
            Recorder::create(&path, HistoryFormat::Zstd, 64, Clock::start(), &keys).unwrap();
        for i in 0..10_000u64 {
            handle
                .record_op(Op::new(i % 4, OpType::Invoke, OpF::Acquire, KeyId(0)))
                .await;
        }
        drop(handle);
        let written = tokio::task::spawn_blocking(move || recorder.finish())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(written, 10_000);
        assert!(super::super::spool::leftovers(&path).is_empty());
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
        assert_eq!(
            crate::history::read_jsonl(&path).unwrap().events.len(),
            10_000
        );
    }
}
