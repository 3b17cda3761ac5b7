package lockbench.driver;

import com.fasterxml.jackson.databind.JsonNode;
import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import javax.sql.DataSource;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.springframework.data.redis.connection.RedisStandaloneConfiguration;
import org.springframework.data.redis.connection.jedis.JedisClientConfiguration;
import org.springframework.data.redis.connection.jedis.JedisConnectionFactory;

/**
 * The connections the registries and providers are built on, made as an application makes them:
 * one Jedis connection factory, one Hikari pool, or one Curator client per driver process (one
 * application instance per simulated host).
 */
final class Stores {
  private Stores() {}

  /** Spring Data Redis over Jedis, connected to {@code server}. */
  static JedisConnectionFactory redis(Driver.Server server, JsonNode options) {
    int timeout = options.path("socket_timeout_ms").asInt(1000);
    JedisClientConfiguration client =
        JedisClientConfiguration.builder()
            .connectTimeout(java.time.Duration.ofMillis(timeout))
            .readTimeout(java.time.Duration.ofMillis(timeout))
            .usePooling()
            .build();
    JedisConnectionFactory factory =
        new JedisConnectionFactory(
            new RedisStandaloneConfiguration(server.host(), server.port()), client);
    factory.afterPropertiesSet();
    factory.start();
    return factory;
  }

  /**
   * A pool on lockbench's PostgreSQL (user {@code postgres}, trusted on loopback) or MariaDB (user
   * {@code root}, no password, database {@code lockbench} made if missing), as option {@code
   * database} says. Each statement in {@code schema} is run once, its "already exists" ignored.
   */
  static DataSource database(Driver.Server server, JsonNode options, List<String> schema)
      throws Exception {
    String database = options.path("database").asText("postgres");
    String base;
    String user;
    switch (database) {
      case "postgres" -> {
        base = "jdbc:postgresql://" + server.addr() + "/postgres";
        user = "postgres";
      }
      case "mariadb" -> {
        try (Connection c =
                DriverManager.getConnection("jdbc:mariadb://" + server.addr() + "/", "root", "");
            Statement s = c.createStatement()) {
          s.execute("CREATE DATABASE IF NOT EXISTS lockbench");
        }
        base = "jdbc:mariadb://" + server.addr() + "/lockbench";
        user = "root";
      }
      default ->
          throw new IllegalArgumentException(
              "option database: " + database + " is neither postgres nor mariadb");
    }
    HikariConfig config = new HikariConfig();
    config.setJdbcUrl(base);
    config.setUsername(user);
    config.setPassword("");
    config.setMaximumPoolSize(options.path("pool_size").asInt(8));
    config.setConnectionTimeout(options.path("connection_timeout_ms").asLong(2000));
    config.setPoolName("lockbench");
    HikariDataSource pool = new HikariDataSource(config);
    for (String statement : schema) {
      create(pool, statement);
    }
    return pool;
  }

  /**
   * Runs a {@code CREATE ... IF NOT EXISTS}: every host's driver runs it at once, and PostgreSQL
   * can refuse all but one of two concurrent creations of one table (a duplicate key in its
   * catalog), so a refusal is tried again, three times at most.
   */
  private static void create(DataSource pool, String statement) throws SQLException {
    for (int attempt = 1; ; attempt++) {
      try (Connection c = pool.getConnection();
          Statement s = c.createStatement()) {
        s.execute(statement);
        return;
      } catch (SQLException e) {
        if (attempt == 3) {
          throw e;
        }
        Driver.log("schema: " + e.getMessage() + "; again");
      }
    }
  }

  /** A started Curator client on every server, with the session timeout of the options. */
  static CuratorFramework curator(List<Driver.Server> servers, JsonNode options)
      throws InterruptedException {
    return start(unstartedCurator(servers, options));
  }

  /**
   * The same client, not started yet: a driver adds its listeners first, so that it hears every
   * state change.
   */
  static CuratorFramework unstartedCurator(List<Driver.Server> servers, JsonNode options) {
    String hosts = servers.stream().map(Driver.Server::addr).collect(Collectors.joining(","));
    return CuratorFrameworkFactory.builder()
        .connectString(hosts)
        .sessionTimeoutMs(options.path("session_timeout_ms").asInt(2000))
        .connectionTimeoutMs(options.path("connection_timeout_ms").asInt(2000))
        .retryPolicy(new ExponentialBackoffRetry(100, 3))
        .build();
  }

  /** Starts {@code zk} and waits up to 10 s for its first connection. */
  static CuratorFramework start(CuratorFramework zk) throws InterruptedException {
    zk.start();
    if (!zk.blockUntilConnected(10, TimeUnit.SECONDS)) {
      throw new IllegalStateException(
          "ZooKeeper at "
              + zk.getZookeeperClient().getCurrentConnectionString()
              + ": not connected within 10 s");
    }
    return zk;
  }
}
