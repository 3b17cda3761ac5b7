package lockbench.driver;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedReader;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.LinkedBlockingQueue;

/**
 * The protocol side of lockbench's JVM drivers (drivers/PROTOCOL.md): read JSON lines from stdin,
 * run each client's requests on a thread of that client's own (Curator's and Redisson's locks
 * belong to the thread that took them, as in an application), write each reply as one JSON line on
 * stdout. A library's class only says how it takes, gives back and extends a lock.
 */
public abstract class Driver {
  static final int PROTOCOL = 1;
  static final ObjectMapper JSON = new ObjectMapper();

  /** The operation definitely did not happen (reply {@code fail}). */
  public static final class Fail extends Exception {
    private static final long serialVersionUID = 1L;

    public Fail(String message) {
      super(message);
    }
  }

  /**
   * A server, as {@code init} names it; {@code announced} is the address its peers know it by
   * (null when the same).
   */
  public record Server(String name, String host, int port, String announced) {
    String addr() {
      return host + ":" + port;
    }
  }

  private final OutputStream out = new FileOutputStream(FileDescriptor.out);

  /** The library's name, as {@code init_ok} reports it. */
  public abstract String library();

  /** Its version. */
  public abstract String version();

  /** Connects to {@code servers} with the driver's {@code options}. */
  public abstract void start(List<Server> servers, JsonNode options) throws Exception;

  /**
   * Takes the lock, waiting up to {@code timeoutMs}: the {@code ok} body (with {@code token}), or
   * null when it stayed busy.
   */
  public abstract ObjectNode acquire(long client, String key, long leaseMs, long timeoutMs)
      throws Exception;

  public abstract ObjectNode release(long client, String key, String token) throws Exception;

  public abstract ObjectNode renew(long client, String key, String token, long leaseMs)
      throws Exception;

  /** Tells lockbench the library says a lock is gone. */
  protected void lost(long client, String key, String reason) {
    ObjectNode m = JSON.createObjectNode();
    m.put("type", "lost").put("client", client).put("key", key).put("reason", reason);
    send(m);
  }

  protected static ObjectNode body() {
    return JSON.createObjectNode();
  }

  protected static void log(String text) {
    System.err.println(text);
    System.err.flush();
  }

  /**
   * The version of the Maven artifact {@code group:artifact} this jar was built with, from the
   * metadata Maven packs beside its classes (the pin in pom.xml).
   */
  protected static String pinned(String group, String artifact) {
    String path = "/META-INF/maven/" + group + "/" + artifact + "/pom.properties";
    Properties p = new Properties();
    try (var in = Driver.class.getResourceAsStream(path)) {
      if (in != null) {
        p.load(in);
      }
    } catch (IOException e) {
      log("cannot read " + path + ": " + e);
    }
    return p.getProperty("version", "unknown");
  }

  /**
   * The version of a library whose jar carries no Maven metadata, as pom.xml pins it (the
   * property {@code name.version}, written into versions.properties at build).
   */
  protected static String pinnedProperty(String name) {
    Properties p = new Properties();
    try (var in = Driver.class.getResourceAsStream("versions.properties")) {
      if (in != null) {
        p.load(in);
      }
    } catch (IOException e) {
      log("cannot read versions.properties: " + e);
    }
    return p.getProperty(name, "unknown");
  }

  void send(ObjectNode msg) {
    byte[] line;
    try {
      line = (JSON.writeValueAsString(msg) + "\n").getBytes(StandardCharsets.UTF_8);
    } catch (IOException e) {
      log("cannot encode " + msg + ": " + e);
      return;
    }
    synchronized (out) {
      try {
        out.write(line);
        out.flush();
      } catch (IOException e) {
        // lockbench is gone: so is the reason to run.
        Runtime.getRuntime().halt(0);
      }
    }
  }

  static List<Server> servers(JsonNode list) {
    List<Server> servers = new ArrayList<>();
    for (JsonNode s : list) {
      String addr = s.path("addr").asText();
      int colon = addr.lastIndexOf(':');
      servers.add(
          new Server(
              s.path("name").asText(),
              addr.substring(0, colon),
              Integer.parseInt(addr.substring(colon + 1)),
              s.hasNonNull("announced") ? s.path("announced").asText() : null));
    }
    return servers;
  }

  private void serve(JsonNode msg) {
    long id = msg.path("id").asLong();
    String type = msg.path("type").asText();
    long client = msg.path("client").asLong();
    String key = msg.path("key").asText("");
    ObjectNode reply = JSON.createObjectNode();
    // The library's own time, on the machine's monotonic clock (PROTOCOL.md):
    // HotSpot's nanoTime reads CLOCK_MONOTONIC on Linux.
    long called = System.nanoTime();
    try {
      ObjectNode out;
      switch (type) {
        case "acquire" -> {
          out =
              acquire(
                  client, key, msg.path("lease_ms").asLong(0), msg.path("timeout_ms").asLong(0));
          if (out == null) {
            throw new Fail("busy: not acquired within the timeout");
          }
        }
        case "release" -> out = release(client, key, msg.path("token").asText(""));
        case "renew" ->
            out = renew(client, key, msg.path("token").asText(""), msg.path("lease_ms").asLong(0));
        default -> {
          log("unknown request type " + type);
          reply.put("type", "info").put("id", id).put("error", "unknown request type " + type);
          send(reply);
          return;
        }
      }
      reply.put("type", "ok").put("id", id);
      if (out != null) {
        reply.setAll(out);
      }
    } catch (Fail e) {
      reply.removeAll();
      reply.put("type", "fail").put("id", id).put("error", String.valueOf(e.getMessage()));
    } catch (Throwable e) { // when in doubt, info
      StringWriter trace = new StringWriter();
      e.printStackTrace(new PrintWriter(trace));
      log(trace.toString());
      reply.removeAll();
      reply
          .put("type", "info")
          .put("id", id)
          .put("error", e.getClass().getSimpleName() + ": " + e.getMessage());
    }
    reply.putArray("t").add(called).add(System.nanoTime());
    send(reply);
  }

  /** Serves lockbench until it closes stdin. */
  void run() throws IOException {
    BufferedReader in =
        new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8), 1 << 16);
    String first = in.readLine();
    if (first == null) {
      return;
    }
    try {
      JsonNode init = JSON.readTree(first);
      if (!"init".equals(init.path("type").asText()) || init.path("protocol").asInt() != PROTOCOL) {
        throw new IllegalArgumentException(
            "expected init of protocol " + PROTOCOL + ", got " + first);
      }
      start(servers(init.path("servers")), init.path("options"));
    } catch (Throwable e) {
      StringWriter trace = new StringWriter();
      e.printStackTrace(new PrintWriter(trace));
      log(trace.toString());
      ObjectNode err = JSON.createObjectNode();
      err.put("type", "error").put("error", e.getClass().getSimpleName() + ": " + e.getMessage());
      send(err);
      return;
    }
    ObjectNode ok = JSON.createObjectNode();
    ok.put("type", "init_ok").put("library", library()).put("version", version());
    send(ok);
    Map<Long, LinkedBlockingQueue<JsonNode>> inboxes = new HashMap<>();
    String line;
    while ((line = in.readLine()) != null) {
      if (line.isBlank()) {
        continue;
      }
      JsonNode msg;
      try {
        msg = JSON.readTree(line);
      } catch (IOException e) {
        log("not JSON (" + e.getMessage() + "): " + line);
        continue;
      }
      long client = msg.path("client").asLong();
      LinkedBlockingQueue<JsonNode> inbox = inboxes.get(client);
      if (inbox == null) {
        LinkedBlockingQueue<JsonNode> queue = new LinkedBlockingQueue<>();
        inbox = queue;
        inboxes.put(client, queue);
        Thread t =
            new Thread(
                () -> {
                  try {
                    while (true) {
                      serve(queue.take());
                    }
                  } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                  }
                },
                "client-" + client);
        t.setDaemon(true);
        t.start();
      }
      inbox.add(msg);
    }
  }
}
