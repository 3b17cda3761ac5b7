package lockbench.driver;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.EOFException;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;

/**
 * lockbench's JVM lock-library drivers, one jar:
 *
 * <pre>
 *   java -jar lockbench-java-driver.jar curator|redisson      (drivers/PROTOCOL.md on stdin)
 *   java -jar lockbench-java-driver.jar bench LIBRARY SERVERS_JSON OPTIONS_JSON CYCLES [paced]
 * </pre>
 *
 * The second form is the library looping on its own, through the same driver code without the
 * protocol (benches/driver_overhead.rs compares the two); it prints one JSON line: {"cycles": n,
 * "median_us": m, "mean_us": a}, a cycle's time being its two calls'. {@code paced}: before each
 * call the loop waits, as a driver waits for its next request: it writes "." on stdout and blocks
 * until one byte comes back on stdin. The environment's WARMUP cycles (default 0) run first,
 * untimed.
 */
public final class Main {
  private Main() {}

  /** Every driver in this package, by its library's name. */
  static final Map<String, Supplier<Driver>> LIBRARIES = Drivers.find();

  public static void main(String[] args) throws Exception {
    List<String> names = new ArrayList<>(LIBRARIES.keySet());
    Collections.sort(names);
    if (args.length == 1 && args[0].equals("--list")) {
      System.out.println(Driver.JSON.writeValueAsString(names));
      System.exit(0);
    }
    String which = String.join("|", names);
    String usage =
        "usage: lockbench-java-driver "
            + which
            + " (then drivers/PROTOCOL.md on stdin)\n"
            + "       lockbench-java-driver bench "
            + which
            + " SERVERS_JSON OPTIONS_JSON CYCLES [paced]\n"
            + "       lockbench-java-driver --list";
    boolean paced = args.length == 6 && args[5].equals("paced");
    if ((args.length == 5 || paced) && args[0].equals("bench") && LIBRARIES.containsKey(args[1])) {
      bench(LIBRARIES.get(args[1]).get(), args[2], args[3], Integer.parseInt(args[4]), paced);
      System.exit(0);
    }
    if (args.length != 1 || !LIBRARIES.containsKey(args[0])) {
      System.err.println(usage);
      System.exit(2);
    }
    LIBRARIES.get(args[0]).get().run();
    // The libraries' own threads (Curator's, Netty's) would keep the JVM up.
    System.exit(0);
  }

  /** One round trip to the bench process, as a driver waits for its next request. */
  private static void waitForTheBench() throws IOException {
    System.out.write('.');
    System.out.flush();
    if (System.in.read() < 0) {
      throw new EOFException("paced: the bench closed stdin");
    }
  }

  static void bench(Driver driver, String servers, String options, int cycles, boolean paced)
      throws Exception {
    driver.start(Driver.servers(Driver.JSON.readTree(servers)), Driver.JSON.readTree(options));
    String w = System.getenv("WARMUP");
    int warmup = w == null || w.isEmpty() ? 0 : Integer.parseInt(w);
    double[] times = new double[cycles];
    double sum = 0;
    for (int i = -warmup; i < cycles; i++) {
      if (paced) {
        waitForTheBench();
      }
      long t0 = System.nanoTime();
      ObjectNode got = driver.acquire(0, "bench", 10000, 1000);
      long took = System.nanoTime() - t0;
      if (got == null) {
        throw new IllegalStateException("acquire: busy");
      }
      if (paced) {
        waitForTheBench();
      }
      long t2 = System.nanoTime();
      driver.release(0, "bench", got.path("token").asText());
      if (i >= 0) {
        times[i] = (took + System.nanoTime() - t2) / 1e3;
        sum += times[i];
      }
    }
    Arrays.sort(times);
    ObjectNode out = Driver.JSON.createObjectNode();
    out.put("cycles", cycles).put("median_us", times[cycles / 2]).put("mean_us", sum / cycles);
    System.out.println(Driver.JSON.writeValueAsString(out));
  }
}
