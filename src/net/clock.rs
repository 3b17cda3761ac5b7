//! Clock skew and drift on a server lockbench started.
//!
//! A server started with [`SkewControl::env`] loads lockbench's own preload
//! library (`src/net/skew.c`, built by `build.rs` and embedded here). The
//! library answers `clock_gettime(CLOCK_REALTIME…)`, `gettimeofday` and
//! `time` with `base_fake + (real - base_real) * rate`, reading the
//! parameters on every call from a small control file that lockbench maps
//! and rewrites under a seqlock: offset and rate change while the server
//! runs. `CLOCK_MONOTONIC` has its own rate ([`SkewControl::set_monotonic_rate`],
//! 1 by default) and never jumps.
//!
//! Debian's libfaketime 0.9.10 is not used: it makes Debian's redis-server
//! die at start (jemalloc reads the clock before libfaketime initialises).
//!
//! Which servers can be skewed this way is the cluster layer's to say
//! (`ServerKind::lease_clock`).

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering, fence};

use crate::error::{Error, Result};

/// The preload library, or empty bytes when no C compiler was found.
static LIBRARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/liblockbench_skew.so"));

/// The environment variable naming the control file (read by skew.c).
pub const CLOCK_FILE_ENV: &str = "LOCKBENCH_CLOCK_FILE";

/// File names inside the server's directory.
const LIB_NAME: &str = "liblockbench_skew.so";
const CONTROL_NAME: &str = "lockbench-clock.ctl";

/// "LBCLOCK1", as skew.c's `LB_MAGIC`.
const MAGIC: u64 = u64::from_le_bytes(*b"LBCLOCK1");
const MAP_LEN: usize = 4096;

// Byte offsets of the fields of skew.c's `struct control`.
const SEQ: usize = 0;
const MAGIC_AT: usize = 8;
const BASE_REAL: usize = 16;
const BASE_FAKE: usize = 24;
const RATE: usize = 32;
const MONO_BASE_REAL: usize = 40;
const MONO_BASE_FAKE: usize = 48;
const MONO_RATE: usize = 56;

/// The highest rate accepted (skew.c treats more as corrupt).
pub const MAX_RATE: f64 = 1000.0;

/// Whether this build carries the preload library (false when no C compiler
/// was found at build time).
pub fn library_available() -> bool {
    !LIBRARY.is_empty()
}

/// Which clock a server kind's lease expiry follows, where lockbench can
/// skew it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseClock {
    /// The wall clock: offsets (jumps) and rates both apply
    /// ([`SkewControl::set`]).
    Wall,
    /// CLOCK_MONOTONIC: only a rate (drift) applies, never a jump
    /// ([`SkewControl::set_monotonic_rate`]).
    Monotonic,
}

/// Fails with why when this build has no preload library (it was built
/// without a C compiler).
pub fn require_library() -> std::result::Result<(), String> {
    if library_available() {
        Ok(())
    } else {
        Err(
            "this lockbench was built without a C compiler, so it has no clock skew \
             library: install cc (build-essential) and rebuild"
                .into(),
        )
    }
}

/// The control file mapped into lockbench's memory.
struct Mapping {
    ptr: *mut u8,
}

// SAFETY: the mapping is plain shared memory accessed only through atomics,
// and writers are serialised by SkewControl's mutex.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

impl Mapping {
    fn field(&self, offset: usize) -> &AtomicU64 {
        debug_assert!(offset + 8 <= MAP_LEN && offset.is_multiple_of(8));
        // SAFETY: `ptr` is a live, page-aligned mapping of MAP_LEN bytes
        // (unmapped only in Drop), and `offset` is 8-aligned inside it.
        unsafe { &*(self.ptr.add(offset) as *const AtomicU64) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `map` mapped; no reference outlives
        // `self`.
        unsafe {
            libc::munmap(self.ptr.cast(), MAP_LEN);
        }
    }
}

/// One server's clock: the control file, the library beside it, and the
/// environment to start the server with.
pub struct SkewControl {
    control: PathBuf,
    library: PathBuf,
    map: Mapping,
    /// Serialises writers (the seqlock allows one).
    write: Mutex<()>,
}

impl std::fmt::Debug for SkewControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SkewControl")
            .field("control", &self.control)
            .field("offset_ns", &self.offset_ns())
            .field("rate", &self.rate())
            .finish()
    }
}

/// The machine's CLOCK_MONOTONIC now, in nanoseconds: what drivers time
/// their library's calls with (drivers/PROTOCOL.md), and what `Instant`
/// reads on Linux.
pub fn monotonic_ns() -> i64 {
    now(libc::CLOCK_MONOTONIC)
}

fn now(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own. lockbench
    // itself never runs with the preload library.
    unsafe {
        libc::clock_gettime(clock, &mut ts);
    }
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

fn check_rate(rate: f64) -> Result<()> {
    if rate.is_finite() && rate > 0.0 && rate <= MAX_RATE {
        Ok(())
    } else {
        Err(Error::Backend {
            backend: "clock".into(),
            endpoint: String::new(),
            message: format!("clock rate {rate} is not in (0, {MAX_RATE}]"),
        })
    }
}

impl SkewControl {
    /// Creates (or reopens, keeping its settings) the control file in `dir`
    /// (a server's data directory) and writes the library beside it. A new
    /// control file starts at real time.
    pub fn create(dir: &Path) -> Result<SkewControl> {
        if !library_available() {
            return Err(Error::Backend {
                backend: "clock".into(),
                endpoint: dir.display().to_string(),
                message: "lockbench was built without a C compiler, so it has no clock skew \
                          library: install cc and rebuild"
                    .into(),
            });
        }
        let library = dir.join(LIB_NAME);
        let same = std::fs::metadata(&library).is_ok_and(|m| m.len() == LIBRARY.len() as u64);
        if !same {
            std::fs::write(&library, LIBRARY).map_err(|e| Error::io(&library, e))?;
        }
        let control = dir.join(CONTROL_NAME);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&control)
            .map_err(|e| Error::io(&control, e))?;
        file.set_len(MAP_LEN as u64)
            .map_err(|e| Error::io(&control, e))?;
        use std::os::fd::AsRawFd;
        // SAFETY: maps MAP_LEN bytes of a file we just sized to MAP_LEN;
        // the result is checked before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                MAP_LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(Error::io(&control, std::io::Error::last_os_error()));
        }
        let ctl = SkewControl {
            control,
            library,
            map: Mapping { ptr: ptr.cast() },
            write: Mutex::new(()),
        };
        if ctl.map.field(MAGIC_AT).load(Ordering::Acquire) != MAGIC {
            let (r, m) = (now(libc::CLOCK_REALTIME), now(libc::CLOCK_MONOTONIC));
            let _g = ctl.lock();
            ctl.write(r, r, 1.0, m, m, 1.0);
        }
        Ok(ctl)
    }

    /// The environment to start the server with.
    pub fn env(&self) -> Vec<(OsString, OsString)> {
        vec![
            ("LD_PRELOAD".into(), self.library.clone().into_os_string()),
            (CLOCK_FILE_ENV.into(), self.control.clone().into_os_string()),
        ]
    }

    /// The control file.
    pub fn control_path(&self) -> &Path {
        &self.control
    }

    /// Holds the writer lock: a read-then-write must not interleave with
    /// another one, or continuity is lost.
    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.write.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes every field under the seqlock; the caller holds [`Self::lock`].
    fn write(&self, br: i64, bf: i64, rate: f64, mbr: i64, mbf: i64, mrate: f64) {
        let seq = self.map.field(SEQ);
        let s = seq.load(Ordering::Relaxed);
        // Even → odd: readers retry until the update is complete.
        seq.store(
            (s | 1).wrapping_add(if s & 1 == 1 { 2 } else { 0 }),
            Ordering::Relaxed,
        );
        fence(Ordering::Release);
        self.map
            .field(BASE_REAL)
            .store(br as u64, Ordering::Relaxed);
        self.map
            .field(BASE_FAKE)
            .store(bf as u64, Ordering::Relaxed);
        self.map
            .field(RATE)
            .store(rate.to_bits(), Ordering::Relaxed);
        self.map
            .field(MONO_BASE_REAL)
            .store(mbr as u64, Ordering::Relaxed);
        self.map
            .field(MONO_BASE_FAKE)
            .store(mbf as u64, Ordering::Relaxed);
        self.map
            .field(MONO_RATE)
            .store(mrate.to_bits(), Ordering::Relaxed);
        self.map.field(MAGIC_AT).store(MAGIC, Ordering::Relaxed);
        let odd = seq.load(Ordering::Relaxed);
        seq.store(odd.wrapping_add(1), Ordering::Release);
    }

    /// A consistent copy of the fields (only lockbench writes, under `write`).
    fn read(&self) -> (i64, i64, f64, i64, i64, f64) {
        let f = |o| self.map.field(o).load(Ordering::Acquire);
        (
            f(BASE_REAL) as i64,
            f(BASE_FAKE) as i64,
            f64::from_bits(f(RATE)),
            f(MONO_BASE_REAL) as i64,
            f(MONO_BASE_FAKE) as i64,
            f64::from_bits(f(MONO_RATE)),
        )
    }

    fn apply(base_real: i64, base_fake: i64, rate: f64, real: i64) -> i64 {
        base_fake + ((real - base_real) as f64 * rate) as i64
    }

    /// The wall clock the server sees now, in ns since the epoch.
    pub fn server_now_ns(&self) -> i64 {
        let (br, bf, rate, ..) = self.read();
        Self::apply(br, bf, rate, now(libc::CLOCK_REALTIME))
    }

    /// How far the server's wall clock is ahead of the real one now (ns).
    pub fn offset_ns(&self) -> i64 {
        let real = now(libc::CLOCK_REALTIME);
        let (br, bf, rate, ..) = self.read();
        Self::apply(br, bf, rate, real) - real
    }

    /// The server's wall clock rate (1 = real).
    pub fn rate(&self) -> f64 {
        self.read().2
    }

    /// Moves the server's wall clock by `offset_ns` now (a jump; 0 for
    /// none) and from now on runs it at `rate` times real speed. Time stays
    /// continuous apart from the jump: `set(0, r)` only changes the rate.
    pub fn set(&self, offset_ns: i64, rate: f64) -> Result<()> {
        check_rate(rate)?;
        let _g = self.lock();
        let (br, bf, old, mbr, mbf, mrate) = self.read();
        let real = now(libc::CLOCK_REALTIME);
        let fake = Self::apply(br, bf, old, real).saturating_add(offset_ns);
        self.write(real, fake, rate, mbr, mbf, mrate);
        Ok(())
    }

    /// Runs the server's monotonic clock at `rate` from now on, without a
    /// jump (a monotonic clock never goes back). For servers whose expiry
    /// follows CLOCK_MONOTONIC; the cluster layer says which (`ServerKind::lease_clock`).
    pub fn set_monotonic_rate(&self, rate: f64) -> Result<()> {
        check_rate(rate)?;
        let _g = self.lock();
        let (br, bf, r, mbr, mbf, old) = self.read();
        let real = now(libc::CLOCK_MONOTONIC);
        let fake = Self::apply(mbr, mbf, old, real);
        self.write(br, bf, r, real, fake, rate);
        Ok(())
    }

    /// Puts the wall clock back to real time (a jump back if it ran ahead)
    /// and the monotonic rate back to 1 (continuous: it keeps its lead).
    pub fn reset(&self) {
        let _g = self.lock();
        let (_, _, _, mbr, mbf, mold) = self.read();
        let (real, mreal) = (now(libc::CLOCK_REALTIME), now(libc::CLOCK_MONOTONIC));
        let mfake = Self::apply(mbr, mbf, mold, mreal);
        self.write(real, real, 1.0, mreal, mfake, 1.0);
    }
}
