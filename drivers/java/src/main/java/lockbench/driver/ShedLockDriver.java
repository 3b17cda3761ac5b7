package lockbench.driver;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicLong;
import net.javacrumbs.shedlock.core.ClockProvider;
import net.javacrumbs.shedlock.core.LockConfiguration;
import net.javacrumbs.shedlock.core.LockProvider;
import net.javacrumbs.shedlock.core.SimpleLock;
import net.javacrumbs.shedlock.provider.jdbctemplate.JdbcTemplateLockProvider;
import net.javacrumbs.shedlock.provider.redis.spring.RedisLockProvider;
import net.javacrumbs.shedlock.provider.zookeeper.curator.ZookeeperCuratorLockProvider;
import org.springframework.jdbc.core.JdbcTemplate;

/**
 * ShedLock's lock providers (github.com/lukas-krecan/ShedLock, "Using ShedLock without Spring"),
 * one per driver process, on the provider option {@code provider} names: {@code jdbc}
 * (JdbcTemplateLockProvider on PostgreSQL, its {@code shedlock} table created as the README
 * gives it, the database's time), {@code redis} (RedisLockProvider on Spring Data Redis over
 * Jedis) or {@code zookeeper} (ZookeeperCuratorLockProvider).
 *
 * <pre>
 *   Optional&lt;SimpleLock&gt; lock = provider.lock(
 *       new LockConfiguration(now, "job", lockAtMostFor, lockAtLeastFor));
 *   lock.ifPresent(l -&gt; { try { ... } finally { l.unlock(); } });
 * </pre>
 *
 * ShedLock never waits: a job that finds its lock taken is skipped. An acquire here is {@code
 * lock()} tried again every {@code retry_ms} (option, 20 ms by default) until the acquire timeout;
 * the scenario's lease is {@code lockAtMostFor} (the lock is held that long whether or not the job
 * still runs), {@code lockAtLeastFor} is zero; a release is {@code unlock()}, a renew {@code
 * extend()} where the provider can. Every lock a process takes is "locked by" that process (option
 * {@code locked_by}, else {@code lockbench-<pid>}), as an instance of an application. No fencing
 * token.
 */
final class ShedLockDriver extends Driver {
  private LockProvider provider;
  private long retryMs;
  private final Held<SimpleLock> held = new Held<>();
  private final AtomicLong grants = new AtomicLong();

  @Override
  public String library() {
    return "shedlock";
  }

  @Override
  public String version() {
    return pinned("net.javacrumbs.shedlock", "shedlock-core");
  }

  @Override
  public void start(List<Server> servers, JsonNode options) throws Exception {
    retryMs = Math.max(1, options.path("retry_ms").asLong(20));
    String lockedBy =
        options.path("locked_by").asText("lockbench-" + ProcessHandle.current().pid());
    String name = options.path("provider").asText("");
    provider =
        switch (name) {
          case "jdbc" ->
              new JdbcTemplateLockProvider(
                  JdbcTemplateLockProvider.Configuration.builder()
                      .withJdbcTemplate(
                          new JdbcTemplate(
                              Stores.database(
                                  servers.get(0),
                                  options,
                                  List.of(
                                      "CREATE TABLE IF NOT EXISTS shedlock (name VARCHAR(64) NOT"
                                          + " NULL, lock_until TIMESTAMP NOT NULL, locked_at"
                                          + " TIMESTAMP NOT NULL, locked_by VARCHAR(255) NOT NULL,"
                                          + " PRIMARY KEY (name))"))))
                      .withLockedByValue(lockedBy)
                      .usingDbTime()
                      .build());
          case "redis" -> new RedisLockProvider(Stores.redis(servers.get(0), options), "lockbench");
          case "zookeeper" ->
              new ZookeeperCuratorLockProvider(
                  Stores.curator(servers, options), "/lockbench-shedlock");
          default ->
              throw new IllegalArgumentException(
                  "option provider: \"" + name + "\" is not jdbc, redis or zookeeper");
        };
  }

  @Override
  public ObjectNode acquire(long client, String key, long leaseMs, long timeoutMs)
      throws Exception {
    Duration atMost = Duration.ofMillis(Math.max(leaseMs, 1));
    long deadline = System.nanoTime() + timeoutMs * 1_000_000;
    while (true) {
      Optional<SimpleLock> lock =
          provider.lock(new LockConfiguration(ClockProvider.now(), key, atMost, Duration.ZERO));
      if (lock.isPresent()) {
        held.put(client, key, lock.get());
        return body()
            .put("token", "c" + client + "-" + grants.incrementAndGet())
            .put("lease_ms", leaseMs);
      }
      long left = deadline - System.nanoTime();
      if (left <= 0) {
        return null;
      }
      Thread.sleep(Math.min(retryMs, left / 1_000_000 + 1));
    }
  }

  @Override
  public ObjectNode release(long client, String key, String token) throws Exception {
    held.take(client, key).unlock();
    return body();
  }

  @Override
  public ObjectNode renew(long client, String key, String token, long leaseMs) throws Exception {
    SimpleLock lock = held.get(client, key);
    Optional<SimpleLock> extended;
    try {
      extended = lock.extend(Duration.ofMillis(Math.max(leaseMs, 1)), Duration.ZERO);
    } catch (UnsupportedOperationException e) {
      throw new Fail("this provider cannot extend a lock");
    }
    if (extended.isEmpty()) {
      held.drop(client, key);
      throw new Fail("not extended: the lock is no longer ours");
    }
    held.put(client, key, extended.get());
    return body().put("lease_ms", leaseMs);
  }
}
