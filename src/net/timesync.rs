//! How far an agent's wall clock is from a reference, and how sure that
//! is: the exchange NTP makes (Mills, RFC 5905 §8), reduced to one
//! timestamp from the reference.
//!
//! The agent reads its clock (`t0`), asks the reference for its time `T`,
//! and reads its clock again when the answer comes (`t1`). The reference
//! read its clock somewhere between the two, so the offset (reference
//! minus agent) is `T − (t0 + t1) / 2` within half the round trip. Of a
//! few exchanges the one with the shortest round trip is kept: its bound is
//! the tightest. The reference is a UDP socket on loopback that answers
//! each 8-byte request with the request and its wall clock
//! ([`Reference`]).

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;

use crate::error::{Error, Result};
use crate::history::ClockSample;

/// The wall clock in ns since the epoch, plus `skew_ns`.
pub fn wall_ns(skew_ns: i64) -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    now.saturating_add(skew_ns)
}

/// A time reference on a loopback UDP port; it answers until dropped.
#[derive(Debug)]
pub struct Reference {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Reference {
    /// Starts a reference on a free port of 127.0.0.1.
    pub async fn start() -> Result<Reference> {
        let socket = UdpSocket::bind("127.0.0.1:0")
            .await
            .map_err(|e| Error::io("time reference", e))?;
        let addr = socket
            .local_addr()
            .map_err(|e| Error::io("time reference", e))?;
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                if n != 8 {
                    continue;
                }
                let mut reply = [0u8; 16];
                reply[..8].copy_from_slice(&buf[..8]);
                reply[8..].copy_from_slice(&wall_ns(0).to_be_bytes());
                let _ = socket.send_to(&reply, from).await;
            }
        });
        Ok(Reference { addr, task })
    }

    /// Where it answers.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Exchanges made per measurement; the shortest round trip wins.
const EXCHANGES: u64 = 16;

/// Measures the wall clock (plus `skew_ns`) against the reference at
/// `reference`: the offset and its bound from the exchange with the
/// shortest round trip. An error when no answer came within a second.
pub async fn measure(reference: SocketAddr, skew_ns: i64) -> Result<ClockSample> {
    let what = || format!("the time reference at {reference}");
    let socket = UdpSocket::bind("127.0.0.1:0")
        .await
        .map_err(|e| Error::io(what(), e))?;
    socket
        .connect(reference)
        .await
        .map_err(|e| Error::io(what(), e))?;
    let mut best: Option<ClockSample> = None;
    for seq in 0..EXCHANGES {
        let t0 = wall_ns(skew_ns);
        if socket.send(&seq.to_be_bytes()).await.is_err() {
            continue;
        }
        let mut buf = [0u8; 16];
        let got = tokio::time::timeout(Duration::from_millis(250), async {
            loop {
                match socket.recv(&mut buf).await {
                    Ok(16) if buf[..8] == seq.to_be_bytes() => return true,
                    Ok(_) => continue,
                    Err(_) => return false,
                }
            }
        })
        .await;
        let t1 = wall_ns(skew_ns);
        if got != Ok(true) {
            continue;
        }
        let mut t = [0u8; 8];
        t.copy_from_slice(&buf[8..]);
        let reference_ns = i64::from_be_bytes(t);
        let mid = t0 + (t1 - t0) / 2;
        let sample = ClockSample {
            offset_ns: reference_ns - mid,
            // Rounded up, and at least a microsecond: the clocks' reads
            // are not instantaneous either.
            bound_ns: ((t1 - t0).max(0) as u64).div_ceil(2).max(1_000),
        };
        if best.is_none_or(|b| sample.bound_ns < b.bound_ns) {
            best = Some(sample);
        }
    }
    best.ok_or_else(|| {
        Error::io(
            what(),
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no answer to any of 16 exchanges; is the reference running and reachable?",
            ),
        )
    })
}

/// chrony's bound on this machine's clock error, from `chronyc -c tracking`
/// (the CSV form of `chronyc tracking`): chrony's documentation bounds the
/// error by `|System time| + Root dispersion + Root delay / 2`. The offset
/// is taken as 0 and the system time's offset, of either sign, is part of
/// the bound.
pub fn parse_chrony_tracking(csv: &str) -> std::result::Result<ClockSample, String> {
    let fields: Vec<&str> = csv.trim().split(',').collect();
    if fields.len() < 14 {
        return Err(format!(
            "chronyc -c tracking printed {} fields, not 14: {:?}",
            fields.len(),
            csv.trim()
        ));
    }
    let secs = |i: usize, what: &str| {
        fields[i]
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| {
                format!(
                    "chronyc -c tracking: {what} {:?} is not a number",
                    fields[i]
                )
            })
    };
    let leap = fields[13].trim();
    if leap.eq_ignore_ascii_case("Not synchronised") {
        return Err(
            "chrony says this clock is not synchronised (chronyc tracking: Leap \
                    status)"
                .into(),
        );
    }
    let system = secs(4, "System time")?.abs();
    let delay = secs(10, "Root delay")?.abs();
    let dispersion = secs(11, "Root dispersion")?.abs();
    let bound = system + dispersion + delay / 2.0;
    Ok(ClockSample {
        offset_ns: 0,
        bound_ns: (bound * 1e9).ceil() as u64,
    })
}

/// chrony's bound on this machine's clock now ([`parse_chrony_tracking`]
/// of `chronyc -c tracking`, given 5 s).
pub async fn chrony() -> Result<ClockSample> {
    let what = "chronyc -c tracking";
    let run = tokio::process::Command::new("chronyc")
        .args(["-c", "tracking"])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .map_err(|_| {
            Error::io(
                what,
                std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer within 5 s"),
            )
        })?
        .map_err(|e| {
            Error::io(
                what,
                std::io::Error::new(
                    e.kind(),
                    format!("{e}; is chrony installed and chronyd running here?"),
                ),
            )
        })?;
    if !out.status.success() {
        return Err(Error::io(
            what,
            std::io::Error::other(format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
        ));
    }
    parse_chrony_tracking(&String::from_utf8_lossy(&out.stdout))
        .map_err(|why| Error::io(what, std::io::Error::other(why)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_skewed_clock_is_measured_within_its_bound() {
        let r = Reference::start().await.unwrap();
        let plain = measure(r.addr(), 0).await.unwrap();
        assert!(
            plain.offset_ns.unsigned_abs() <= plain.bound_ns,
            "{plain:?}"
        );
        // A clock 40 ms ahead: the reference is 40 ms behind it.
        let ahead = measure(r.addr(), 40_000_000).await.unwrap();
        let error = (ahead.offset_ns + 40_000_000).unsigned_abs();
        assert!(error <= ahead.bound_ns, "{ahead:?}");
        assert!(ahead.bound_ns < 40_000_000, "{ahead:?}");
    }

    #[test]
    fn chrony_s_figures_give_the_bound() {
        // The CSV line of `chronyc -c tracking` on a machine synchronised
        // to a PTP clock: System time 4.315 µs, Root delay 1 ns, Root
        // dispersion 29.493 µs.
        let line = "50484330,PHC0,1,1709727533.139866748,0.000004315,-0.000003372,\
                    0.000002759,1.274,-0.005,0.161,0.000000001,0.000029493,8.0,Normal\n";
        let s = parse_chrony_tracking(line).unwrap();
        assert_eq!(s.offset_ns, 0);
        // 4315 + 29493 + 0.5 ns, rounded up.
        assert_eq!(s.bound_ns, 33_809);
        // A slow clock counts the same.
        let slow = line.replace(",0.000004315,", ",-0.000004315,");
        assert_eq!(parse_chrony_tracking(&slow).unwrap().bound_ns, 33_809);
        let e = parse_chrony_tracking(&line.replace("Normal", "Not synchronised")).unwrap_err();
        assert!(e.contains("not synchronised"), "{e}");
        assert!(
            parse_chrony_tracking("506,PHC0,1")
                .unwrap_err()
                .contains("not 14")
        );
        let e = parse_chrony_tracking(&line.replace("0.000029493", "x")).unwrap_err();
        assert!(e.contains("Root dispersion"), "{e}");
    }

    #[tokio::test]
    async fn no_reference_is_an_error_not_a_hang() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        drop(socket);
        let e = measure(addr, 0).await.unwrap_err();
        assert!(e.to_string().contains("no answer"), "{e}");
    }
}
