//! The lock libraries lockbench ships drivers for (drivers/), as the
//! registry knows them: each a backend like lockbench's own recipes, run by
//! its driver process (drivers/PROTOCOL.md), its interpreter and
//! dependencies installed by `scripts/install-backends.sh`.

use std::path::PathBuf;
use std::time::Duration;

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
    let command = vec![
        python().display().to_string(),
        dir.join(file).display().to_string(),
    ];
    shipped(name, command, dir.clone(), options, server, servers, recipe)
        .requires(python(), PYTHON_HINT)
        .requires(
            dir.join(file),
            "the drivers/ folder of lockbench's checkout",
        )
}

/// The Go drivers' binary, built by the install script.
pub fn go_driver_binary() -> PathBuf {
    drivers_dir().join("go/bin/lockbench-go-driver")
}

const GO_HINT: &str = "run scripts/install-backends.sh (it builds drivers/go/bin/lockbench-go-driver with the modules pinned in drivers/go/go.sum)";

/// The Go driver for `library` (the binary's argument) as backend `name`.
fn go_driver(
    name: &str,
    library: &str,
    options: serde_json::Value,
    server: ServerKind,
    servers: usize,
    recipe: &str,
) -> BackendInfo {
    let command = vec![
        go_driver_binary().display().to_string(),
        library.to_string(),
    ];
    shipped(
        name,
        command,
        drivers_dir().join("go"),
        options,
        server,
        servers,
        recipe,
    )
    .requires(go_driver_binary(), GO_HINT)
}

/// Node.js: the first `node` in `LOCKBENCH_BIN_DIRS`, then on PATH.
pub fn node() -> PathBuf {
    on_path("node", "/usr/bin/node")
}

const NODE_HINT: &str = "run scripts/install-backends.sh (it runs npm ci in drivers/node, with the versions of its package-lock.json; Node.js 18 or later must be on PATH)";

/// The Node.js driver `file`, using the npm `package`, as backend `name`.
fn node_driver(
    name: &str,
    file: &str,
    package: &str,
    options: serde_json::Value,
    server: ServerKind,
    servers: usize,
    recipe: &str,
) -> BackendInfo {
    let dir = drivers_dir().join("node");
    let command = vec![
        node().display().to_string(),
        dir.join(file).display().to_string(),
    ];
    shipped(name, command, dir.clone(), options, server, servers, recipe)
        .requires(
            node(),
            "install Node.js 18 or later (Debian: apt-get install nodejs)",
        )
        .requires(
            dir.join("node_modules").join(package).join("package.json"),
            NODE_HINT,
        )
}

/// A drivers' runtime, found as lockbench finds them
/// ([`crate::cluster::find_runtime`]), else `fallback`.
fn on_path(name: &str, fallback: &str) -> PathBuf {
    crate::cluster::find_runtime(name).unwrap_or_else(|| PathBuf::from(fallback))
}

/// Java: the first `java` in `LOCKBENCH_BIN_DIRS`, then on PATH.
pub fn java() -> PathBuf {
    on_path("java", "/usr/bin/java")
}

/// The JVM drivers' jar, built by the install script.
pub fn java_driver_jar() -> PathBuf {
    drivers_dir().join("java/target/lockbench-java-driver.jar")
}

const JAVA_HINT: &str = "run scripts/install-backends.sh (it builds drivers/java/target/lockbench-java-driver.jar with Maven, the versions pinned in drivers/java/pom.xml)";

/// The JVM driver for `library` (the jar's argument) as backend `name`.
fn java_driver(
    name: &str,
    library: &str,
    options: serde_json::Value,
    server: ServerKind,
    servers: usize,
    recipe: &str,
) -> BackendInfo {
    let command = vec![
        java().display().to_string(),
        // A small heap and quick start: a driver is a client, not a server.
        "-Xmx256m".to_string(),
        "-XX:+UseSerialGC".to_string(),
        "-XX:TieredStopAtLevel=1".to_string(),
        "-jar".to_string(),
        java_driver_jar().display().to_string(),
        library.to_string(),
    ];
    shipped(
        name,
        command,
        drivers_dir().join("java"),
        options,
        server,
        servers,
        recipe,
    )
    .requires(
        java(),
        "install Java 17 or later (apt-get install default-jre-headless)",
    )
    .requires(java_driver_jar(), JAVA_HINT)
}

/// A shipped driver run by `command` in `dir`.
fn shipped(
    name: &str,
    command: Vec<String>,
    dir: PathBuf,
    options: serde_json::Value,
    server: ServerKind,
    servers: usize,
    recipe: &str,
) -> BackendInfo {
    let spec = DriverSpec {
        name: name.to_string(),
        command,
        dir,
        options,
    };
    BackendInfo::driver(spec, server, servers, recipe)
}

/// Every shipped lock library, in the order the tables list them.
pub(super) fn backends() -> Vec<BackendInfo> {
    [
        python_libraries(),
        go_libraries(),
        node_libraries(),
        jvm_libraries(),
    ]
    .concat()
}

/// The Python libraries (drivers/python).
fn python_libraries() -> Vec<BackendInfo> {
    vec![
        python_driver(
            "redis-py",
            "redis_py.py",
            json!({}),
            ServerKind::Redis,
            1,
            "redis-py's Lock: SET NX PX with a token, Lua compare-and-delete; waiters poll every 0.1 s; no fencing token",
        )
        .clustered(super::redis::CLUSTER),
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
        .replicated(Shape::Ensemble(3, ServerKind::ZooKeeper))
        .notified("watch on the next-lower node")
        .session(Duration::from_millis(2000)),
    ]
}

/// The Go libraries (drivers/go).
fn go_libraries() -> Vec<BackendInfo> {
    vec![
        go_driver(
            "etcd-mutex",
            "etcd-mutex",
            json!({}),
            ServerKind::Etcd,
            1,
            "etcd's clientv3/concurrency Mutex: a key per client under the lock's prefix on its session's lease; the lowest create revision holds; fence = the revision it was taken at",
        )
        .replicated(Shape::EtcdCluster(3, ServerKind::Etcd))
        .notified("watch on the next-lower key's deletion"),
        go_driver(
            "redsync",
            "redsync",
            json!({}),
            ServerKind::Redis,
            5,
            "go-redsync's Mutex (Redlock) on 5 independent masters; random 50-250 ms retry delay; no fencing token",
        )
        .replicated(Shape::Masters(5))
        .clustered(super::redis::CLUSTER),
    ]
}

/// The Node.js libraries (drivers/node).
fn node_libraries() -> Vec<BackendInfo> {
    vec![
        node_driver(
            "node-redlock",
            "redlock.js",
            "redlock",
            json!({}),
            ServerKind::Redis,
            1,
            "node-redlock v5 (ioredis) on one Redis: SET NX PX with a random value, Lua compare-and-delete; waiters retry every 200 ms ± 100; no fencing token",
        )
        .clustered(super::redis::CLUSTER),
        node_driver(
            "node-redlock-5",
            "redlock.js",
            "redlock",
            json!({}),
            ServerKind::Redis,
            5,
            "node-redlock v5 (ioredis) on 5 independent masters (Redlock); waiters retry every 200 ms ± 100; no fencing token",
        )
        .replicated(Shape::Masters(5)),
        node_driver(
            "redis-semaphore",
            "redis_semaphore.js",
            "redis-semaphore",
            json!({}),
            ServerKind::Redis,
            1,
            "redis-semaphore's Mutex (ioredis): SET NX PX with a UUID, refreshed every 0.8 of the lease on a timer, onLockLost reported as lost; waiters retry every 10 ms",
        ),
    ]
}

/// The JVM libraries (drivers/java).
fn jvm_libraries() -> Vec<BackendInfo> {
    vec![
        java_driver(
            "curator",
            "curator",
            json!({"session_timeout_ms": 2000, "lost_on": ["LOST"]}),
            ServerKind::ZooKeeper,
            1,
            "Apache Curator's InterProcessMutex: ephemeral sequential node, watch the predecessor; a ConnectionStateListener reports LOST as lost",
        )
        .replicated(Shape::Ensemble(3, ServerKind::ZooKeeper))
        .notified("watch on the next-lower node")
        .session(Duration::from_millis(2000)),
        java_driver(
            "redisson",
            "redisson",
            json!({}),
            ServerKind::Redis,
            1,
            "Redisson's RLock: a hash field per owner (client id and thread), 30 s lockWatchdogTimeout renewed every 10 s by the watchdog; waiters subscribe to the unlock channel; no fencing token",
        )
        .replicated(Shape::Sentinel {
            replicas: 2,
            sentinels: 3,
        })
        .clustered(super::redis::CLUSTER)
        .notified("pub/sub message on unlock")
        .session(Duration::from_secs(30)),
        java_driver(
            "redisson-fenced",
            "redisson",
            json!({"fenced": true}),
            ServerKind::Redis,
            1,
            "Redisson's RFencedLock: RLock plus a token from a counter in Redis, incremented with every grant; the watchdog as RLock's",
        )
        .replicated(Shape::Sentinel {
            replicas: 2,
            sentinels: 3,
        })
        .notified("pub/sub message on unlock")
        .session(Duration::from_secs(30)),
        java_driver(
            "hazelcast-fencedlock",
            "hazelcast",
            json!({}),
            ServerKind::Hazelcast,
            crate::cluster::hazelcast::MEMBERS,
            "Hazelcast's FencedLock on the CP subsystem (3 members, Raft): the lock belongs to the client's CP session (heartbeats every 1 s, expiry after 5 s here); fence = tryLockAndGetFence's, growing with every holder",
        )
        .notified("the CP group answers the waiting tryLock")
        .session(Duration::from_secs(crate::cluster::hazelcast::SESSION_TTL_S)),
    ]
    .into_iter()
    .chain(spring_registries())
    .chain(shedlock_providers())
    .collect()
}

/// Spring Integration's lock registries (drivers/java SpringIntegrationDriver).
fn spring_registries() -> Vec<BackendInfo> {
    let jdbc = |database: &str, server| {
        java_driver(
            &format!("spring-jdbc-{database}"),
            "spring-integration",
            json!({"store": "jdbc", "database": database}),
            server,
            1,
            "Spring Integration's JdbcLockRegistry: a row in INT_LOCK inserted, or taken over once its EXPIRED_AFTER (the scenario's lease) has passed; waiters poll every 100 ms; no fencing token",
        )
    };
    vec![
        java_driver(
            "spring-redis",
            "spring-integration",
            json!({"store": "redis"}),
            ServerKind::Redis,
            1,
            "Spring Integration's RedisLockRegistry (Spring Data Redis, Jedis): SET NX PX by script with the registry's client id, expiring after the scenario's lease; waiters spin every 100 ms; no fencing token",
        ),
        jdbc("postgres", ServerKind::Postgres),
        jdbc("mariadb", ServerKind::MariaDb),
        java_driver(
            "spring-zookeeper",
            "spring-integration",
            json!({"store": "zookeeper", "session_timeout_ms": 2000}),
            ServerKind::ZooKeeper,
            1,
            "Spring Integration's ZookeeperLockRegistry: Curator's InterProcessMutex under /lockbench-spring; the lock is the ZooKeeper session's",
        )
        .replicated(Shape::Ensemble(3, ServerKind::ZooKeeper))
        .notified("watch on the next-lower node")
        .session(Duration::from_millis(2000)),
    ]
}

/// ShedLock's lock providers (drivers/java ShedLockDriver): a lock is held
/// for its lockAtMostFor (the scenario's lease) unless unlocked.
fn shedlock_providers() -> Vec<BackendInfo> {
    vec![
        java_driver(
            "shedlock-jdbc",
            "shedlock",
            json!({"provider": "jdbc", "database": "postgres"}),
            ServerKind::Postgres,
            1,
            "ShedLock's JdbcTemplateLockProvider: a row in shedlock inserted, or updated where lock_until <= now (the database's time); lock() tried every 20 ms until the timeout; no fencing token",
        ),
        java_driver(
            "shedlock-redis",
            "shedlock",
            json!({"provider": "redis"}),
            ServerKind::Redis,
            1,
            "ShedLock's RedisLockProvider (Spring Data Redis, Jedis): SET NX PX for lockAtMostFor; lock() tried every 20 ms until the timeout; no fencing token",
        ),
        java_driver(
            "shedlock-zookeeper",
            "shedlock",
            json!({"provider": "zookeeper", "session_timeout_ms": 2000}),
            ServerKind::ZooKeeper,
            1,
            "ShedLock's ZookeeperCuratorLockProvider: a persistent node holding lock_until, taken when that time has passed; lock() tried every 20 ms until the timeout; no fencing token",
        )
        .replicated(Shape::Ensemble(3, ServerKind::ZooKeeper)),
    ]
}
