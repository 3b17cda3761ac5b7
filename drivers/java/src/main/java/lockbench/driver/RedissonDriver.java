package lockbench.driver;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.netty.resolver.DefaultAddressResolverGroup;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.redisson.Redisson;
import org.redisson.api.RFencedLock;
import org.redisson.api.RLock;
import org.redisson.api.RedissonClient;
import org.redisson.misc.RedisURI;
import org.redisson.config.ClusterServersConfig;
import org.redisson.config.Config;
import org.redisson.config.SentinelServersConfig;

/**
 * Redisson's {@code RLock} (redisson.org, "Distributed locks and synchronizers: Lock"):
 *
 * <pre>
 *   RLock lock = redisson.getLock("myLock");
 *   boolean res = lock.tryLock(100, TimeUnit.SECONDS);   // wait, no lease: the watchdog renews
 *   if (res) { try { ... } finally { lock.unlock(); } }
 * </pre>
 *
 * Taken without a lease time, as above, the key expires after {@code lockWatchdogTimeout} (30 s by
 * default, option {@code lock_watchdog_timeout_ms}) and Redisson's watchdog extends it every third
 * of that while the lock is held; with option {@code lease_from_scenario} the scenario's lease is
 * passed as {@code leaseTime} instead, and nothing renews it. The lock belongs to the thread that
 * took it (the key's field is the client's id and the thread's). No fencing token, unless option
 * {@code fenced} asks for {@code RFencedLock}, whose token grows with every grant. On a single
 * Redis, on Sentinel when lockbench gives sentinels ({@code topology = "replicated"}), or on a Redis
 * Cluster in Redisson's cluster mode when it gives cluster nodes ({@code topology = "cluster"}).
 */
final class RedissonDriver extends Driver {
  private RedissonClient redisson;
  private boolean leaseFromScenario;
  private boolean fenced;
  private final Held<RLock> held = new Held<>();

  @Override
  public String library() {
    return "redisson";
  }

  @Override
  public String version() {
    return pinned("org.redisson", "redisson");
  }

  @Override
  public void start(List<Server> servers, JsonNode options) throws Exception {
    int timeout = options.path("socket_timeout_ms").asInt(1000);
    leaseFromScenario = options.path("lease_from_scenario").asBoolean(false);
    fenced = options.path("fenced").asBoolean(false);
    Config config = new Config();
    // Every address lockbench gives is a literal 127.0.0.1: the JDK's
    // resolver reads it without a query, while Redisson's default (Netty's
    // DNS resolver) keeps UDP sockets bound on every interface for queries
    // it never needs to send (tests/loopback.rs).
    config.setAddressResolverGroupFactory(
        (datagram, socket, dns) -> DefaultAddressResolverGroup.INSTANCE);
    config.setLockWatchdogTimeout(options.path("lock_watchdog_timeout_ms").asLong(30_000));
    List<Server> sentinels = servers.stream().filter(s -> s.name().startsWith("sentinel")).toList();
    List<Server> nodes =
        servers.stream().filter(s -> s.name().startsWith("redis-cluster-")).toList();
    if (!nodes.isEmpty()) {
      // A Redis Cluster: the nodes know each other (and CLUSTER NODES names
      // them) by their announced addresses, which the NatMapper maps to
      // where they listen.
      Map<String, Server> real = new HashMap<>();
      for (Server n : nodes) {
        if (n.announced() != null) {
          real.put(n.announced(), n);
        }
      }
      ClusterServersConfig cluster =
          config
              .useClusterServers()
              .setNatMapper(
                  uri -> {
                    Server to = real.get(uri.getHost() + ":" + uri.getPort());
                    return to == null ? uri : new RedisURI(uri.getScheme(), to.host(), to.port());
                  })
              .setTimeout(timeout)
              .setConnectTimeout(timeout);
      for (Server n : nodes) {
        cluster.addNodeAddress("redis://" + n.addr());
      }
    } else if (sentinels.isEmpty()) {
      config
          .useSingleServer()
          .setAddress("redis://" + servers.get(0).addr())
          .setTimeout(timeout)
          .setConnectTimeout(timeout);
    } else {
      SentinelServersConfig sentinel =
          config
              .useSentinelServers()
              .setMasterName(options.path("master_name").asText("lockbench"))
              .setCheckSentinelsList(false)
              .setTimeout(timeout)
              .setConnectTimeout(timeout);
      for (Server s : sentinels) {
        sentinel.addSentinelAddress("redis://" + s.addr());
      }
    }
    redisson = Redisson.create(config);
  }

  @Override
  public ObjectNode acquire(long client, String key, long leaseMs, long timeoutMs)
      throws Exception {
    if (fenced) {
      return acquireFenced(client, key, leaseMs, timeoutMs);
    }
    RLock lock = redisson.getLock(key);
    boolean got =
        leaseFromScenario
            ? lock.tryLock(timeoutMs, Math.max(leaseMs, 1), TimeUnit.MILLISECONDS)
            : lock.tryLock(timeoutMs, TimeUnit.MILLISECONDS);
    if (!got) {
      return null;
    }
    held.put(client, key, lock);
    ObjectNode out = body().put("token", redisson.getId() + ":" + Thread.currentThread().getId());
    if (leaseFromScenario) {
      out.put("lease_ms", leaseMs);
    }
    return out;
  }

  /**
   * {@code RFencedLock} (option {@code fenced}): the same lock, plus a token from a counter the
   * lock keeps in Redis, incremented with every grant.
   */
  private ObjectNode acquireFenced(long client, String key, long leaseMs, long timeoutMs)
      throws Exception {
    RFencedLock lock = redisson.getFencedLock(key);
    Long token =
        leaseFromScenario
            ? lock.tryLockAndGetToken(timeoutMs, Math.max(leaseMs, 1), TimeUnit.MILLISECONDS)
            : lock.tryLockAndGetToken(timeoutMs, TimeUnit.MILLISECONDS);
    if (token == null) {
      return null;
    }
    held.put(client, key, lock);
    ObjectNode out = body().put("token", "c" + client + "-" + token).put("fence", token);
    if (leaseFromScenario) {
      out.put("lease_ms", leaseMs);
    }
    return out;
  }

  @Override
  public ObjectNode release(long client, String key, String token) throws Exception {
    RLock lock = held.take(client, key);
    try {
      lock.unlock();
    } catch (IllegalMonitorStateException e) {
      // Redisson says the lock was no longer this thread's.
      return body().put("was_held", false);
    }
    return body();
  }

  @Override
  public ObjectNode renew(long client, String key, String token, long leaseMs) throws Exception {
    RLock lock = held.get(client, key);
    // Without a lease time the watchdog renews; either way there is no call to extend an RLock.
    if (!lock.isHeldByCurrentThread()) {
      throw new Fail("not held by this thread");
    }
    return body();
  }
}
