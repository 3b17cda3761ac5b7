package lockbench.driver;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.time.Duration;
import java.util.ConcurrentModificationException;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.Lock;
import org.apache.curator.framework.CuratorFramework;
import org.springframework.integration.jdbc.lock.DefaultLockRepository;
import org.springframework.integration.jdbc.lock.JdbcLockRegistry;
import org.springframework.integration.redis.util.RedisLockRegistry;
import org.springframework.integration.support.locks.DistributedLock;
import org.springframework.integration.support.locks.ExpirableLockRegistry;
import org.springframework.integration.support.locks.RenewableLockRegistry;
import org.springframework.integration.zookeeper.lock.ZookeeperLockRegistry;
import org.springframework.jdbc.datasource.DataSourceTransactionManager;

/**
 * Spring Integration's lock registries (docs.spring.io, "Distributed Locks"), one per driver
 * process as an application has one, on the store option {@code store} names:
 *
 * <pre>
 *   Lock lock = registry.obtain("key");
 *   if (lock.tryLock(wait, TimeUnit.MILLISECONDS)) { try { ... } finally { lock.unlock(); } }
 * </pre>
 *
 * <ul>
 *   <li>{@code redis}: {@code RedisLockRegistry} on Spring Data Redis over Jedis. The key expires
 *       after its time to live; the scenario's lease is passed as that time to live ({@code
 *       DistributedLock.tryLock(wait, ttl)}), and a renew is {@code renewLock(key, ttl)}.
 *   <li>{@code jdbc}: {@code JdbcLockRegistry} on a {@code DefaultLockRepository}, on PostgreSQL or
 *       MariaDB (option {@code database}), its {@code INT_LOCK} table created as the registry's
 *       schema scripts create it. A row's {@code EXPIRED_AFTER} is its lease, as for Redis.
 *   <li>{@code zookeeper}: {@code ZookeeperLockRegistry}, Curator's {@code InterProcessMutex}
 *       underneath: the lock is the ZooKeeper session's, with no time to live of its own.
 * </ul>
 *
 * Each lock object also holds a {@code ReentrantLock} of the registry, so two clients of one host
 * queue inside the process before they ask the store, and a lock is released by the thread that
 * took it. No fencing token.
 */
final class SpringIntegrationDriver extends Driver {
  /** {@code INT_LOCK}, as the registry's schema scripts make it (schema-postgresql.sql). */
  private static final String TABLE =
      "CREATE TABLE IF NOT EXISTS INT_LOCK (LOCK_KEY CHAR(36) NOT NULL, REGION VARCHAR(100) NOT"
          + " NULL, CLIENT_ID CHAR(36), CREATED_DATE TIMESTAMP%s NOT NULL, EXPIRED_AFTER"
          + " TIMESTAMP%s NOT NULL, CONSTRAINT INT_LOCK_PK PRIMARY KEY (LOCK_KEY, REGION))";

  private ExpirableLockRegistry<? extends Lock> registry;
  private boolean ttl;
  private final Held<Lock> held = new Held<>();
  private final AtomicLong grants = new AtomicLong();

  @Override
  public String library() {
    return "spring-integration";
  }

  @Override
  public String version() {
    return pinnedProperty("spring-integration");
  }

  @Override
  public void start(List<Server> servers, JsonNode options) throws Exception {
    String store = options.path("store").asText("");
    switch (store) {
      case "redis" -> {
        registry = new RedisLockRegistry(Stores.redis(servers.get(0), options), "lockbench");
        ttl = true;
      }
      case "jdbc" -> {
        // MariaDB's TIMESTAMP keeps whole seconds unless told (6); the script says DATETIME(6).
        String precision = options.path("database").asText("").equals("mariadb") ? "(6)" : "";
        var database =
            Stores.database(
                servers.get(0), options, List.of(String.format(TABLE, precision, precision)));
        DefaultLockRepository repository = new DefaultLockRepository(database);
        repository.setTransactionManager(new DataSourceTransactionManager(database));
        repository.afterPropertiesSet();
        repository.afterSingletonsInstantiated();
        repository.start();
        registry = new JdbcLockRegistry(repository);
        ttl = true;
      }
      case "zookeeper" -> {
        CuratorFramework zk = Stores.curator(servers, options);
        registry = new ZookeeperLockRegistry(zk, "/lockbench-spring");
        ttl = false;
      }
      default ->
          throw new IllegalArgumentException(
              "option store: \"" + store + "\" is not redis, jdbc or zookeeper");
    }
  }

  @Override
  public ObjectNode acquire(long client, String key, long leaseMs, long timeoutMs)
      throws Exception {
    Lock lock = registry.obtain(key);
    boolean got;
    if (ttl) {
      got =
          ((DistributedLock) lock)
              .tryLock(Duration.ofMillis(timeoutMs), Duration.ofMillis(Math.max(leaseMs, 1)));
    } else if (timeoutMs == 0) {
      // ZookeeperLockRegistry's lock first waits, up to the same time, for Curator to be
      // connected, then tries for what is left: with no time at all a free lock is refused. Its
      // own one-attempt form, tryLock(), gives both steps 1 s in all.
      got = lock.tryLock();
    } else {
      got = lock.tryLock(timeoutMs, TimeUnit.MILLISECONDS);
    }
    if (!got) {
      return null;
    }
    held.put(client, key, lock);
    ObjectNode out = body().put("token", "c" + client + "-" + grants.incrementAndGet());
    if (ttl) {
      out.put("lease_ms", leaseMs);
    }
    return out;
  }

  @Override
  public ObjectNode release(long client, String key, String token) throws Exception {
    Lock lock = held.take(client, key);
    try {
      lock.unlock();
    } catch (ConcurrentModificationException | IllegalStateException e) {
      // The registry says the store no longer had the lock as ours: it expired, and another
      // process may have taken it ("Lock was released in the store due to expiration").
      log("unlock " + key + ": " + e);
      return body().put("was_held", false);
    }
    return body();
  }

  @Override
  public ObjectNode renew(long client, String key, String token, long leaseMs) throws Exception {
    held.get(client, key);
    if (!(registry instanceof RenewableLockRegistry<?> renewable)) {
      // ZooKeeper: the session is the lease, and Curator keeps it alive.
      return body();
    }
    try {
      renewable.renewLock(key, Duration.ofMillis(Math.max(leaseMs, 1)));
    } catch (IllegalStateException e) {
      throw new Fail("renew: " + e.getMessage());
    }
    return body().put("lease_ms", leaseMs);
  }
}
