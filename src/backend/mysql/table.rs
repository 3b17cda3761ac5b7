//! `mysql-table`: a lock table with a unique index (see the module
//! above for the recipe and what it does about seed 003's problems).

use std::time::Duration;

use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};
use tokio::time::Instant;

use super::{ER_DUP_ENTRY, Problem, Session, bounded, counter_fence, open, server_code};
use crate::backend::{
    AcquireOptions, Attempt, Backoff, Guard, LockClient, Outcome, Released, acquire_with_retry,
};

/// A `mysql-table` client: its connection, and its waits between tries.
pub(super) struct TableClient {
    /// The dedicated connection.
    pub(super) s: Session,
    /// Jittered waits between tries.
    pub(super) backoff: Backoff,
}

/// One try of `mysql-table`: INSERT; on a duplicate key, clean a stale row
/// and INSERT again once.
async fn table_attempt(
    slot: &tokio::sync::Mutex<Option<Conn>>,
    opts: &Opts,
    op_timeout: Duration,
    key: &str,
    token: &str,
    lease: Duration,
) -> Attempt {
    let mut slot = slot.lock().await;
    if slot.is_none() {
        match open(opts, op_timeout).await {
            Ok(c) => *slot = Some(c),
            Err(why) => return Attempt::Failed(why),
        }
    }
    let Some(conn) = slot.as_mut() else {
        return Attempt::Failed("connection unavailable".into());
    };
    let lease_us = lease_micros(lease);
    let result = table_insert_or_clean(conn, op_timeout, key, token, lease_us).await;
    match result {
        Ok(Some(started)) => match counter_fence(conn, key, op_timeout).await {
            Ok(fence) => Attempt::Acquired(Guard {
                key: key.to_string(),
                token: token.to_string(),
                fence: Some(fence),
                lease: Some(Duration::from_micros(lease_us)),
                // The server started the lease after we sent: counting
                // from the send is the safe side.
                acquired_at: started,
            }),
            // The row is ours but we return no guard: its lease frees it.
            Err(p) => {
                if matches!(p, Problem::Lost(_)) {
                    *slot = None;
                }
                Attempt::Unknown(format!("inserted, but the fence failed: {p:?}"))
            }
        },
        Ok(None) => Attempt::Busy,
        Err(p) => {
            if matches!(p, Problem::Lost(_)) {
                *slot = None;
            }
            p.attempt()
        }
    }
}

/// The lease in whole microseconds (`DATETIME(6)`), rounded up, at least 1.
fn lease_micros(lease: Duration) -> u64 {
    let us = lease.as_nanos().div_ceil(1_000);
    u64::try_from(us).unwrap_or(u64::MAX).max(1)
}

/// `Some(sent_at)` if our row is in, `None` if the name is held.
async fn table_insert_or_clean(
    conn: &mut Conn,
    limit: Duration,
    key: &str,
    token: &str,
    lease_us: u64,
) -> std::result::Result<Option<Instant>, Problem> {
    for _ in 0..2 {
        let started = Instant::now();
        let insert = conn.exec_drop(
            "INSERT INTO locks (name, token, expires_at) \
             VALUES (?, ?, NOW(6) + INTERVAL ? MICROSECOND)",
            (key, token, lease_us),
        );
        match tokio::time::timeout(limit, insert).await {
            Ok(Ok(())) => return Ok(Some(started)),
            Ok(Err(e)) if server_code(&e) == Some(ER_DUP_ENTRY) => {}
            Ok(Err(mysql_async::Error::Server(e))) => return Err(Problem::Failed(e.to_string())),
            Ok(Err(e)) => return Err(Problem::Lost(e.to_string())),
            Err(_) => return Err(Problem::Lost(format!("no answer within {limit:?}"))),
        }
        // The cleaner: a row past its expiry is a dead holder's.
        bounded(
            limit,
            conn.exec_drop(
                "DELETE FROM locks WHERE name = ? AND expires_at < NOW(6)",
                (key,),
            ),
        )
        .await?;
        if conn.affected_rows() == 0 {
            return Ok(None);
        }
    }
    // Cleaned, then lost the INSERT race to another client.
    Ok(None)
}

#[async_trait]
impl LockClient for TableClient {
    async fn acquire(&mut self, key: &str, opts: &AcquireOptions) -> Outcome<Guard> {
        let token = self.s.new_token();
        let slot = tokio::sync::Mutex::new(self.s.conn.take());
        let (copts, op_timeout, lease) = (self.s.opts.clone(), self.s.op_timeout, opts.lease);
        let out = acquire_with_retry(&mut self.backoff, opts.timeout, || {
            table_attempt(&slot, &copts, op_timeout, key, &token, lease)
        })
        .await;
        self.s.conn = slot.into_inner();
        out
    }

    async fn release(&mut self, guard: &Guard) -> Outcome<Released> {
        let limit = self.s.op_timeout;
        let conn = match self.s.conn().await {
            Ok(c) => c,
            Err(why) => return Outcome::Fail(why),
        };
        // RETURNING tells an expired row (the lease had run out: the lock
        // was free, only not yet cleaned) from a live one.
        let deleted: std::result::Result<Option<i64>, Problem> = bounded(
            limit,
            conn.exec_first(
                "DELETE FROM locks WHERE name = ? AND token = ? \
                 RETURNING expires_at >= NOW(6)",
                (&guard.key, &guard.token),
            ),
        )
        .await;
        match deleted {
            Ok(alive) => Outcome::Ok(Released {
                was_held: alive == Some(1),
            }),
            Err(p) => {
                if matches!(p, Problem::Lost(_)) {
                    self.s.lose_conn();
                }
                p.outcome()
            }
        }
    }

    async fn renew(&mut self, guard: &mut Guard, lease: Duration) -> Outcome<()> {
        let limit = self.s.op_timeout;
        let lease_us = lease_micros(lease);
        let conn = match self.s.conn().await {
            Ok(c) => c,
            Err(why) => return Outcome::Fail(why),
        };
        let started = Instant::now();
        let updated = bounded(
            limit,
            conn.exec_drop(
                "UPDATE locks SET expires_at = NOW(6) + INTERVAL ? MICROSECOND \
                 WHERE name = ? AND token = ? AND expires_at >= NOW(6)",
                (lease_us, &guard.key, &guard.token),
            ),
        )
        .await;
        match updated {
            Ok(()) if conn.affected_rows() == 1 => {
                guard.lease = Some(Duration::from_micros(lease_us));
                guard.acquired_at = started;
                Outcome::Ok(())
            }
            Ok(()) => Outcome::Fail("not held: the row expired or holds another token".into()),
            Err(p) => {
                if matches!(p, Problem::Lost(_)) {
                    self.s.lose_conn();
                }
                p.outcome()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_round_up_to_microseconds() {
        assert_eq!(lease_micros(Duration::from_nanos(1)), 1);
        assert_eq!(lease_micros(Duration::from_millis(5)), 5_000);
        assert_eq!(lease_micros(Duration::from_nanos(1_500)), 2);
    }
}
