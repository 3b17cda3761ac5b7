//! `mysql-for-update`: an InnoDB row lock held by an open transaction.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use tokio::time::Instant;

use super::{ER_LOCK_WAIT_TIMEOUT, Held, Holds, Problem, Session, bounded, open, server_code};
use crate::backend::{AcquireOptions, Guard, LockClient, Outcome, Released};

/// A `mysql-for-update` client: an idle connection, and one open
/// transaction per held key.
pub(super) struct ForUpdateClient {
    /// The idle connection.
    pub(super) s: Session,
    /// Each held key's transaction.
    pub(super) held: Holds,
    /// Lock rows this client knows exist.
    pub(super) known_rows: HashSet<String>,
}

/// `WAIT n` / `NOWAIT` for an acquire timeout: whole seconds, rounded up.
fn wait_clause(timeout: Duration) -> (String, Duration) {
    if timeout.is_zero() {
        return ("NOWAIT".into(), Duration::ZERO);
    }
    let secs = timeout.as_nanos().div_ceil(1_000_000_000);
    let secs = u64::try_from(secs).unwrap_or(u64::MAX).min(31_536_000);
    (format!("WAIT {secs}"), Duration::from_secs(secs))
}

/// Outcome of one `SELECT ... FOR UPDATE`.
enum RowLock {
    Locked,
    Busy,
    /// The row is missing (should not happen once created).
    NoRow,
}

async fn select_for_update(
    conn: &mut Conn,
    key: &str,
    timeout: Duration,
    op_timeout: Duration,
) -> std::result::Result<RowLock, Problem> {
    let (clause, wait) = wait_clause(timeout);
    let sql = format!("SELECT name FROM lock_rows WHERE name = ? FOR UPDATE {clause}");
    let limit = wait + op_timeout;
    match tokio::time::timeout(limit, conn.exec_first::<String, _, _>(sql, (key,))).await {
        Ok(Ok(Some(_))) => Ok(RowLock::Locked),
        Ok(Ok(None)) => Ok(RowLock::NoRow),
        Ok(Err(e)) if server_code(&e) == Some(ER_LOCK_WAIT_TIMEOUT) => Ok(RowLock::Busy),
        Ok(Err(mysql_async::Error::Server(e))) => Err(Problem::Failed(e.to_string())),
        Ok(Err(e)) => Err(Problem::Lost(e.to_string())),
        Err(_) => Err(Problem::Lost(format!("no answer within {limit:?}"))),
    }
}

/// A fence that survives the rollback of the holding transaction.
async fn auto_increment_fence(
    conn: &mut Conn,
    limit: Duration,
) -> std::result::Result<u64, Problem> {
    bounded(limit, conn.query_drop("INSERT INTO fence_ids () VALUES ()")).await?;
    conn.last_insert_id()
        .ok_or_else(|| Problem::Lost("the fence insert returned no id".into()))
}

impl ForUpdateClient {
    /// Keeps `conn` as the idle connection, or closes it if there is one.
    fn park(&mut self, conn: Conn) {
        if self.s.conn.is_none() {
            self.s.conn = Some(conn);
        }
    }

    /// Takes the row lock in a new transaction on `conn`. `Ok(None)`: busy,
    /// and the transaction is rolled back.
    async fn for_update_on(
        &mut self,
        conn: &mut Conn,
        key: &str,
        timeout: Duration,
        token: &str,
        started: Instant,
    ) -> std::result::Result<Option<Guard>, Problem> {
        let limit = self.s.op_timeout;
        if !self.known_rows.contains(key) {
            // Look first with a plain (non-locking) read: INSERT IGNORE on an
            // existing row takes a shared lock on it, so it would queue
            // behind the holder.
            let exists: Option<i64> = bounded(
                limit,
                conn.exec_first("SELECT 1 FROM lock_rows WHERE name = ?", (key,)),
            )
            .await?;
            if exists.is_none() {
                bounded(
                    limit,
                    conn.exec_drop("INSERT IGNORE INTO lock_rows (name) VALUES (?)", (key,)),
                )
                .await?;
            }
            // Ends the read view too, so the lock's transaction starts fresh.
            bounded(limit, conn.query_drop("COMMIT")).await?;
            self.known_rows.insert(key.to_string());
        }
        let locked = select_for_update(conn, key, timeout, limit).await;
        let fence = match locked {
            Ok(RowLock::Locked) => auto_increment_fence(conn, limit).await,
            Ok(RowLock::Busy) => {
                bounded(limit, conn.query_drop("ROLLBACK")).await?;
                return Ok(None);
            }
            Ok(RowLock::NoRow) => {
                self.known_rows.remove(key);
                Err(Problem::Failed(format!("no lock row for {key:?}")))
            }
            Err(p) => Err(p),
        };
        match fence {
            Ok(fence) => Ok(Some(Guard {
                key: key.to_string(),
                token: token.to_string(),
                fence: Some(fence),
                lease: None,
                acquired_at: started,
            })),
            Err(Problem::Failed(why)) => {
                bounded(limit, conn.query_drop("ROLLBACK")).await?;
                Err(Problem::Failed(why))
            }
            Err(p) => Err(p),
        }
    }
}

#[async_trait]
impl LockClient for ForUpdateClient {
    async fn acquire(&mut self, key: &str, opts: &AcquireOptions) -> Outcome<Guard> {
        let token = self.s.new_token();
        let limit = self.s.op_timeout;
        let started = Instant::now();
        // Reentrant: the transaction that holds the row locks it again at
        // once.
        if let Some(held) = self.held.map.get_mut(key) {
            let Some(conn) = held.conn.as_mut() else {
                return Outcome::Fail("held, but its connection is gone".into());
            };
            let locked = select_for_update(conn, key, Duration::ZERO, limit).await;
            let fence = match locked {
                Ok(RowLock::Locked) => auto_increment_fence(conn, limit).await,
                Ok(_) => Err(Problem::Failed(
                    "the holding transaction lost its row".into(),
                )),
                Err(p) => Err(p),
            };
            return match fence {
                Ok(fence) => {
                    held.tokens.push(token.clone());
                    held.fence_ids.push(fence);
                    Outcome::Ok(Guard {
                        key: key.to_string(),
                        token,
                        fence: Some(fence),
                        lease: None,
                        acquired_at: started,
                    })
                }
                Err(p) => {
                    if matches!(p, Problem::Lost(_)) {
                        // The transaction goes with its connection.
                        self.held.map.remove(key);
                    }
                    p.outcome()
                }
            };
        }
        // A key held already uses the idle connection's slot: take it, or
        // open another for this key's transaction.
        let mut conn = match self.s.conn.take() {
            Some(c) => c,
            None => match open(&self.s.opts, limit).await {
                Ok(c) => c,
                Err(why) => return Outcome::Fail(why),
            },
        };
        let out = self
            .for_update_on(&mut conn, key, opts.timeout, &token, started)
            .await;
        match out {
            Ok(Some(guard)) => {
                self.held.map.insert(
                    key.to_string(),
                    Held {
                        tokens: vec![token],
                        conn: Some(conn),
                        fence_ids: guard.fence.into_iter().collect(),
                    },
                );
                Outcome::Ok(guard)
            }
            Ok(None) => {
                self.park(conn);
                Outcome::Fail(format!(
                    "busy: row still locked by another transaction after {:?}",
                    wait_clause(opts.timeout).1
                ))
            }
            // The transaction was ended (rolled back) before returning.
            Err(Problem::Failed(why)) => {
                self.park(conn);
                Outcome::Fail(why)
            }
            // Dropping the connection rolls back whatever it took.
            Err(Problem::Lost(why)) => Outcome::Info(why),
        }
    }

    async fn release(&mut self, guard: &Guard) -> Outcome<Released> {
        if !self.held.holds(guard) {
            return Outcome::Ok(Released { was_held: false });
        }
        let Some(mut held) = self.held.map.remove(&guard.key) else {
            return Outcome::Ok(Released { was_held: false });
        };
        if held.tokens.len() > 1 {
            // An inner reentrant hold: the row stays locked by the outer.
            held.tokens.retain(|t| *t != guard.token);
            self.held.map.insert(guard.key.clone(), held);
            return Outcome::Ok(Released { was_held: true });
        }
        let Some(mut conn) = held.conn.take() else {
            return Outcome::Ok(Released { was_held: false });
        };
        let ids: Vec<String> = held.fence_ids.iter().map(u64::to_string).collect();
        let mut sql = String::new();
        if !ids.is_empty() {
            sql = format!("DELETE FROM fence_ids WHERE id IN ({}); ", ids.join(","));
        }
        sql.push_str("COMMIT");
        match bounded(self.s.op_timeout, conn.query_drop(sql)).await {
            Ok(()) => {
                self.park(conn);
                Outcome::Ok(Released { was_held: true })
            }
            // Whatever failed, the connection is dropped, which rolls the
            // transaction back and frees the row: we no longer hold it,
            // but cannot tell whether the server has seen that yet.
            Err(p) => Outcome::Info(format!("commit: {p:?}")),
        }
    }

    async fn renew(&mut self, guard: &mut Guard, _lease: Duration) -> Outcome<()> {
        if !self.held.holds(guard) {
            return Outcome::Fail("not held by this client".into());
        }
        let limit = self.s.op_timeout;
        let Some(conn) = self
            .held
            .map
            .get_mut(&guard.key)
            .and_then(|h| h.conn.as_mut())
        else {
            return Outcome::Fail("not held by this client".into());
        };
        // No lease to extend: the transaction lives while its connection
        // does, so check the connection.
        match bounded(limit, conn.query_drop("SELECT 1")).await {
            Ok(()) => Outcome::Ok(()),
            Err(p) => {
                if matches!(p, Problem::Lost(_)) {
                    self.held.map.remove(&guard.key);
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
    fn for_update_waits_whole_seconds_rounded_up() {
        assert_eq!(wait_clause(Duration::ZERO).0, "NOWAIT");
        assert_eq!(wait_clause(Duration::from_millis(300)).0, "WAIT 1");
        assert_eq!(wait_clause(Duration::from_secs(2)).0, "WAIT 2");
        assert_eq!(wait_clause(Duration::from_millis(2001)).0, "WAIT 3");
    }
}
