//! `mysql-get-lock`: MariaDB's user-level locks, `GET_LOCK` and
//! `RELEASE_LOCK`, on a dedicated connection.

use std::time::Duration;

use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use tokio::time::Instant;

use super::{Held, Holds, Problem, Session, bounded, counter_fence};
use crate::backend::{AcquireOptions, Guard, LockClient, Outcome, Released};

/// A `mysql-get-lock` client: the connection whose session holds its
/// locks.
pub(super) struct GetLockClient {
    /// The dedicated connection.
    pub(super) s: Session,
    /// The locks held through it.
    pub(super) held: Holds,
}

/// The user-level lock name of `key`.
fn lock_name(key: &str) -> std::result::Result<String, String> {
    let name = format!("lockbench/{key}");
    // MariaDB refuses longer names (ER_TOO_LONG_IDENT).
    if name.chars().count() > 64 {
        return Err(format!("lock name {name:?} is longer than 64 characters"));
    }
    Ok(name)
}

impl GetLockClient {
    /// Forgets a broken connection, and the locks that went with it (the
    /// server frees them when it notices the connection closed).
    fn lose_conn(&mut self) {
        self.s.lose_conn();
        self.held.map.clear();
    }
}

#[async_trait]
impl LockClient for GetLockClient {
    async fn acquire(&mut self, key: &str, opts: &AcquireOptions) -> Outcome<Guard> {
        let name = match lock_name(key) {
            Ok(n) => n,
            Err(why) => return Outcome::Fail(why),
        };
        let token = self.s.new_token();
        let limit = self.s.op_timeout;
        // The server waits up to the timeout; the answer then needs a
        // request's time to come back.
        let wait_limit = opts.timeout + limit;
        let conn = match self.s.conn().await {
            Ok(c) => c,
            Err(why) => return Outcome::Fail(why),
        };
        let started = Instant::now();
        let got: std::result::Result<Option<Option<i64>>, Problem> = bounded(
            wait_limit,
            conn.exec_first("SELECT GET_LOCK(?, ?)", (&name, opts.timeout.as_secs_f64())),
        )
        .await;
        match got {
            Ok(Some(Some(1))) => {}
            Ok(Some(Some(_))) => {
                return Outcome::Fail(format!(
                    "busy: still held by another connection after {:?}",
                    opts.timeout
                ));
            }
            Ok(_) => return Outcome::Fail("GET_LOCK returned NULL (an error)".into()),
            Err(p) => {
                if matches!(p, Problem::Lost(_)) {
                    // Dropping the connection frees what it may have taken.
                    self.lose_conn();
                }
                return p.outcome();
            }
        }
        let fence = match self.s.conn().await {
            Ok(conn) => counter_fence(conn, key, limit).await,
            Err(why) => Err(Problem::Lost(why)),
        };
        match fence {
            Ok(fence) => {
                self.held
                    .map
                    .entry(key.to_string())
                    .or_insert_with(|| Held {
                        tokens: Vec::new(),
                        conn: None,
                        fence_ids: Vec::new(),
                    })
                    .tokens
                    .push(token.clone());
                Outcome::Ok(Guard {
                    key: key.to_string(),
                    token,
                    fence: Some(fence),
                    lease: None,
                    acquired_at: started,
                })
            }
            Err(p) => {
                // Taken but unusable without a fence: closing the
                // connection gives it back.
                self.lose_conn();
                Outcome::Info(format!("locked, but the fence failed: {p:?}"))
            }
        }
    }

    async fn release(&mut self, guard: &Guard) -> Outcome<Released> {
        // A stale guard must not release a later hold of the same name by
        // this connection: the server only knows the connection.
        if !self.held.holds(guard) {
            return Outcome::Ok(Released { was_held: false });
        }
        let name = match lock_name(&guard.key) {
            Ok(n) => n,
            Err(why) => return Outcome::Fail(why),
        };
        let limit = self.s.op_timeout;
        let conn = match self.s.conn().await {
            Ok(c) => c,
            Err(why) => return Outcome::Fail(why),
        };
        let released: std::result::Result<Option<Option<i64>>, Problem> =
            bounded(limit, conn.exec_first("SELECT RELEASE_LOCK(?)", (&name,))).await;
        match released {
            Ok(r) => {
                self.held.forget(guard);
                Outcome::Ok(Released {
                    was_held: r == Some(Some(1)),
                })
            }
            Err(p) => {
                if matches!(p, Problem::Lost(_)) {
                    self.lose_conn();
                }
                p.outcome()
            }
        }
    }

    async fn renew(&mut self, guard: &mut Guard, _lease: Duration) -> Outcome<()> {
        if !self.held.holds(guard) {
            return Outcome::Fail("not held by this connection".into());
        }
        let name = match lock_name(&guard.key) {
            Ok(n) => n,
            Err(why) => return Outcome::Fail(why),
        };
        let limit = self.s.op_timeout;
        let conn = match self.s.conn().await {
            Ok(c) => c,
            Err(why) => return Outcome::Fail(why),
        };
        // No lease to extend: check that the server still has it ours.
        let ours: std::result::Result<Option<Option<i64>>, Problem> = bounded(
            limit,
            conn.exec_first("SELECT IS_USED_LOCK(?) = CONNECTION_ID()", (&name,)),
        )
        .await;
        match ours {
            Ok(Some(Some(1))) => Outcome::Ok(()),
            Ok(_) => Outcome::Fail("not held: the server has it free or another's".into()),
            Err(p) => {
                if matches!(p, Problem::Lost(_)) {
                    self.lose_conn();
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
    fn long_lock_names_are_refused() {
        assert!(lock_name("k").is_ok());
        assert!(lock_name(&"x".repeat(60)).is_err());
    }
}
