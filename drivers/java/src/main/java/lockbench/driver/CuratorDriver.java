package lockbench.driver;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.state.ConnectionState;

/**
 * Apache Curator's {@code InterProcessMutex} (curator.apache.org, "Shared Reentrant Lock"), with a
 * {@code ConnectionStateListener} as Curator's docs require of every lock user ("Error Handling: It
 * is strongly recommended that you add a ConnectionStateListener and watch for SUSPENDED and LOST
 * state changes"):
 *
 * <pre>
 *   InterProcessMutex lock = new InterProcessMutex(client, lockPath);
 *   if (lock.acquire(maxWait, waitUnit)) {
 *     try { ... } finally { lock.release(); }
 *   }
 * </pre>
 *
 * One CuratorFramework (one ZooKeeper session) per host, shared by its clients' threads, as an
 * application shares it. The listener tells lockbench ({@code lost}) for every lock the host's
 * clients hold when the connection state is one the {@code lost_on} option lists: LOST by default
 * (Curator posts it once the session timeout has passed since the connection was lost, or when the
 * server says the session expired), SUSPENDED too for an application that stops acting as soon as
 * the connection drops. A thread that holds the lock is not interrupted when its session expires:
 * it still thinks it holds the lock while another client takes it (CURATOR-206).
 */
final class CuratorDriver extends Driver {
  private CuratorFramework zk;
  private Set<String> report;
  private final Held<InterProcessMutex> held = new Held<>();
  private final AtomicLong grants = new AtomicLong();

  @Override
  public String library() {
    return "curator";
  }

  @Override
  public String version() {
    return pinned("org.apache.curator", "curator-recipes");
  }

  @Override
  public void start(List<Server> servers, JsonNode options) throws Exception {
    report = new HashSet<>();
    if (options.has("lost_on")) {
      options.path("lost_on").forEach(s -> report.add(s.asText()));
    } else {
      report.add("LOST");
    }
    zk = Stores.unstartedCurator(servers, options);
    // Runs on Curator's event thread: never block here.
    zk.getConnectionStateListenable()
        .addListener(
            (client, state) -> {
              if (!report.contains(state.name())) {
                return;
              }
              for (Held.Entry e : held.entries()) {
                lost(e.client(), e.key(), "connection state " + state);
              }
            });
    Stores.start(zk);
  }

  @Override
  public ObjectNode acquire(long client, String key, long leaseMs, long timeoutMs)
      throws Exception {
    InterProcessMutex lock = new InterProcessMutex(zk, "/lockbench/" + key);
    if (!lock.acquire(timeoutMs, TimeUnit.MILLISECONDS)) {
      return null;
    }
    held.put(client, key, lock);
    return body().put("token", "c" + client + "-" + grants.incrementAndGet());
  }

  @Override
  public ObjectNode release(long client, String key, String token) throws Exception {
    InterProcessMutex lock = held.get(client, key);
    try {
      lock.release();
    } catch (IllegalMonitorStateException e) {
      throw new Fail(e.getMessage());
    } finally {
      // Held (for the listener) until the release has run its course.
      held.drop(client, key);
    }
    return body();
  }

  @Override
  public ObjectNode renew(long client, String key, String token, long leaseMs) throws Exception {
    // The session is the lease; Curator keeps it alive on its own.
    held.get(client, key);
    if (zk.getState() == null || !zk.getZookeeperClient().isConnected()) {
      throw new Fail("not connected (" + ConnectionState.SUSPENDED + ")");
    }
    return body();
  }
}
