package lockbench.driver;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.hazelcast.client.HazelcastClient;
import com.hazelcast.client.config.ClientConfig;
import com.hazelcast.core.HazelcastInstance;
import com.hazelcast.cp.lock.FencedLock;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Hazelcast's {@code FencedLock} on the CP subsystem (docs.hazelcast.com, "FencedLock"), through
 * the Java client:
 *
 * <pre>
 *   FencedLock lock = hazelcastInstance.getCPSubsystem().getLock("myLock");
 *   long fence = lock.tryLockAndGetFence(timeout, unit);   // FencedLock.INVALID_FENCE: not taken
 *   if (fence != FencedLock.INVALID_FENCE) { try { ... } finally { lock.unlock(); } }
 * </pre>
 *
 * The lock lives in a Raft group of the CP members; its fence grows with every new holder, so a
 * resource that remembers the largest fence it saw refuses a stale holder's writes (the only lock
 * here with fencing tokens built into the lock service). A lock belongs to a CP session (one per
 * client instance: one per host here) and a thread; the session lives while the client sends
 * heartbeats, and when it expires (session-time-to-live-seconds after its last heartbeat: 5 s on
 * the members lockbench starts, 300 s by default) the CP group frees its locks. The client is given
 * every member's address and routes through whichever it is connected to (unisocket), so
 * lockbench's proxies carry all its traffic. Jepsen's Hazelcast 4.0 analysis (jepsen.io, 2020) is
 * the reference: exclusion ends with the session, the fence keeps the resource safe.
 */
final class HazelcastDriver extends Driver {
  private HazelcastInstance hz;
  private final Held<FencedLock> held = new Held<>();

  @Override
  public String library() {
    return "hazelcast";
  }

  @Override
  public String version() {
    return pinned("com.hazelcast", "hazelcast");
  }

  @Override
  public void start(List<Server> servers, JsonNode options) throws Exception {
    ClientConfig config = new ClientConfig();
    config.setClusterName(options.path("cluster_name").asText("lockbench"));
    config.setProperty("hazelcast.logging.type", "jdk");
    config.setProperty("hazelcast.phone.home.enabled", "false");
    // A request without a reply is given up after this (the outcome is then unknown).
    config.setProperty(
        "hazelcast.client.invocation.timeout.seconds",
        String.valueOf(options.path("invocation_timeout_s").asInt(10)));
    config.getNetworkConfig().setSmartRouting(false);
    config.getNetworkConfig().setConnectionTimeout(options.path("connect_timeout_ms").asInt(2000));
    for (Server s : servers) {
      config.getNetworkConfig().addAddress(s.addr());
    }
    config
        .getConnectionStrategyConfig()
        .getConnectionRetryConfig()
        .setClusterConnectTimeoutMillis(20_000);
    hz = HazelcastClient.newHazelcastClient(config);
    // The CP subsystem may still be forming: the first lock waits for it.
    FencedLock warm = hz.getCPSubsystem().getLock("lockbench-driver-start");
    long fence = warm.tryLockAndGetFence(20, TimeUnit.SECONDS);
    if (fence == FencedLock.INVALID_FENCE) {
      throw new IllegalStateException("the CP subsystem did not grant a free lock within 20 s");
    }
    warm.unlock();
  }

  @Override
  public ObjectNode acquire(long client, String key, long leaseMs, long timeoutMs)
      throws Exception {
    FencedLock lock = hz.getCPSubsystem().getLock(key);
    long fence = lock.tryLockAndGetFence(timeoutMs, TimeUnit.MILLISECONDS);
    if (fence == FencedLock.INVALID_FENCE) {
      return null;
    }
    held.put(client, key, lock);
    return body().put("token", "c" + client + "-" + fence).put("fence", fence);
  }

  @Override
  public ObjectNode release(long client, String key, String token) throws Exception {
    FencedLock lock = held.take(client, key);
    try {
      lock.unlock();
    } catch (IllegalMonitorStateException e) {
      // LockOwnershipLostException among them: the session that held it expired.
      return body().put("was_held", false);
    }
    return body();
  }

  @Override
  public ObjectNode renew(long client, String key, String token, long leaseMs) throws Exception {
    // The CP session is the lease; the client's heartbeats keep it alive.
    FencedLock lock = held.get(client, key);
    if (!lock.isLockedByCurrentThread()) {
      throw new Fail("not held by this thread");
    }
    return body();
  }
}
