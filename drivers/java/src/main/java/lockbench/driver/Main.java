package lockbench.driver;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.Arrays;
import java.util.Map;
import java.util.function.Supplier;

/**
 * lockbench's JVM lock-library drivers, one jar:
 *
 * <pre>
 *   java -jar lockbench-java-driver.jar curator|redisson      (drivers/PROTOCOL.md on stdin)
 *   java -jar lockbench-java-driver.jar bench LIBRARY SERVERS_JSON OPTIONS_JSON CYCLES
 * </pre>
 *
 * The second form is the library looping on its own, through the same driver code without the
 * protocol (benches/driver_overhead.rs compares the two); it prints one JSON line: {"cycles": n,
 * "median_us": m, "mean_us": a}.
 */
public final class Main {
  private Main() {}

  static final Map<String, Supplier<Driver>> LIBRARIES =
      Map.of(
          "curator", CuratorDriver::new,
          "redisson", RedissonDriver::new,
          "hazelcast", HazelcastDriver::new);

  public static void main(String[] args) throws Exception {
    String usage =
        "usage: lockbench-java-driver curator|redisson|hazelcast (then drivers/PROTOCOL.md on"
            + " stdin)\n"
            + "       lockbench-java-driver bench curator|redisson|hazelcast SERVERS_JSON"
            + " OPTIONS_JSON CYCLES";
    if (args.length == 5 && args[0].equals("bench") && LIBRARIES.containsKey(args[1])) {
      bench(LIBRARIES.get(args[1]).get(), args[2], args[3], Integer.parseInt(args[4]));
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

  static void bench(Driver driver, String servers, String options, int cycles) throws Exception {
    driver.start(Driver.servers(Driver.JSON.readTree(servers)), Driver.JSON.readTree(options));
    double[] times = new double[cycles];
    double sum = 0;
    for (int i = 0; i < cycles; i++) {
      long t0 = System.nanoTime();
      ObjectNode got = driver.acquire(0, "bench", 10000, 1000);
      if (got == null) {
        throw new IllegalStateException("acquire: busy");
      }
      driver.release(0, "bench", got.path("token").asText());
      times[i] = (System.nanoTime() - t0) / 1e3;
      sum += times[i];
    }
    Arrays.sort(times);
    ObjectNode out = Driver.JSON.createObjectNode();
    out.put("cycles", cycles).put("median_us", times[cycles / 2]).put("mean_us", sum / cycles);
    System.out.println(Driver.JSON.writeValueAsString(out));
  }
}
