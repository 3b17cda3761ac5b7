//! The lock libraries lockbench ships drivers for (drivers/), as the
//! registry knows them: each a backend like lockbench's own recipes, run by
//! its driver process (drivers/PROTOCOL.md), its interpreter and
//! dependencies installed by `scripts/install-backends.sh`.

use std::path::PathBuf;

use serde_json::json;

use super::BackendInfo;
use super::driver::DriverSpec;
use crate::cluster::ServerKind;
use crate::cluster::topology::Shape;

/// Where the shipped drivers are: `LOCKBENCH_DRIVERS_DIR`, else this
/// checkout's `drivers/`.
pub fn drivers_dir() -> PathBuf {
    std::env::var_os("LOCKBENCH_DRIVERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/drivers")))
}

/// The Python drivers' interpreter: the virtual environment the install
/// script makes, with the pinned libraries.
pub fn python() -> PathBuf {
    drivers_dir().join("python/.venv/bin/python")
}

const PYTHON_HINT: &str =
    "run scripts/install-backends.sh (it makes drivers/python/.venv with the pinned libraries)";

/// A Python driver `file` as backend `name`.
fn python_driver(
    name: &str,
    file: &str,
    options: serde_json::Value,
    server: ServerKind,
    servers: usize,
    recipe: &str,
) -> BackendInfo {
    let dir = drivers_dir().join("python");
    let spec = DriverSpec {
        name: name.to_string(),
        command: vec![
            python().display().to_string(),
            dir.join(file).display().to_string(),
        ],
        dir: dir.clone(),
        options,
    };
    BackendInfo::driver(spec, server, servers, recipe)
        .requires(python(), PYTHON_HINT)
        .requires(
            dir.join(file),
            "the drivers/ folder of lockbench's checkout",
        )
}

/// Every shipped lock library.
pub(super) fn backends() -> Vec<BackendInfo> {
    vec![
        python_driver(
            "redis-py",
            "redis_py.py",
            json!({}),
            ServerKind::Redis,
            1,
            "redis-py's Lock: SET NX PX with a token, Lua compare-and-delete; waiters poll every 0.1 s; no fencing token",
        ),
        python_driver(
            "python-redis-lock",
            "python_redis_lock.py",
            json!({}),
            ServerKind::Redis,
            1,
            "python-redis-lock's Lock: SET NX EX with an id, waiters block on a signal list (BLPOP); no fencing token",
        )
        .notified("BLPOP on the lock's signal list"),
        python_driver(
            "python-redis-lock-renewal",
            "python_redis_lock.py",
            json!({"auto_renewal": true}),
            ServerKind::Redis,
            1,
            "python-redis-lock's Lock with auto_renewal=True: a thread extends the key every 2/3 of its expiry",
        )
        .notified("BLPOP on the lock's signal list"),
        python_driver(
            "pottery-redlock",
            "pottery_redlock.py",
            json!({}),
            ServerKind::Redis,
            5,
            "pottery's Redlock on 5 independent masters; no fencing token",
        )
        .replicated(Shape::Masters(5)),
        python_driver(
            "kazoo",
            "kazoo_lock.py",
            json!({"session_timeout_ms": 2000, "lost_on": ["LOST"]}),
            ServerKind::ZooKeeper,
            1,
            "kazoo's Lock recipe: ephemeral sequential node, watch the predecessor; a LOST session reported as lost",
        )
        .replicated(Shape::Ensemble(3))
        .notified("watch on the next-lower node"),
    ]
}
