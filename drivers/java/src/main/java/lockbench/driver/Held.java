package lockbench.driver;

import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Each client's lock objects by key, from its acquire to its release: {@code put} at an acquire,
 * {@code get} at a renew, {@code take} at a release, each a {@link Driver.Fail} when the client
 * holds no such lock. Safe to read from a library's own threads (a listener that reports {@code
 * lost} for every held lock), so a driver keeps nothing else.
 */
public final class Held<T> {
  /** A client and one of its keys. */
  public record Entry(long client, String key) {}

  private final Map<Entry, T> by = new ConcurrentHashMap<>();

  public void put(long client, String key, T lock) {
    by.put(new Entry(client, key), lock);
  }

  /** The lock object, or Fail: lockbench asked for a lock not held. */
  public T get(long client, String key) throws Driver.Fail {
    T lock = by.get(new Entry(client, key));
    if (lock == null) {
      throw new Driver.Fail("no lock object for this key");
    }
    return lock;
  }

  /** {@link #get}, and forget it (a release). */
  public T take(long client, String key) throws Driver.Fail {
    T lock = by.remove(new Entry(client, key));
    if (lock == null) {
      throw new Driver.Fail("no lock object for this key");
    }
    return lock;
  }

  /** Forgets it, if held. */
  public void drop(long client, String key) {
    by.remove(new Entry(client, key));
  }

  /** Every client and key held now. */
  public List<Entry> entries() {
    return List.copyOf(by.keySet());
  }
}
