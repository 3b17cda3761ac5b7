package lockbench.driver;

import java.io.IOException;
import java.lang.reflect.Modifier;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Supplier;
import java.util.jar.JarFile;
import java.util.stream.Stream;

/**
 * Finds the drivers: every concrete {@link Driver} in this package, in the jar (or the classes
 * directory) Main was loaded from. A driver joins by being here; nothing lists it by hand.
 */
final class Drivers {
  private Drivers() {}

  private static final String PACKAGE = Drivers.class.getPackageName().replace('.', '/') + "/";

  static Map<String, Supplier<Driver>> find() {
    Map<String, Supplier<Driver>> found = new TreeMap<>();
    for (String name : classNames()) {
      Class<?> c;
      try {
        c = Class.forName(name, false, Drivers.class.getClassLoader());
      } catch (ClassNotFoundException | LinkageError e) {
        continue;
      }
      if (!Driver.class.isAssignableFrom(c) || Modifier.isAbstract(c.getModifiers())) {
        continue;
      }
      Supplier<Driver> make =
          () -> {
            try {
              var ctor = c.getDeclaredConstructor();
              ctor.setAccessible(true);
              return (Driver) ctor.newInstance();
            } catch (ReflectiveOperationException e) {
              throw new IllegalStateException("cannot make " + c.getName() + ": " + e, e);
            }
          };
      String library = make.get().library();
      if (found.put(library, make) != null) {
        throw new IllegalStateException("two drivers for " + library);
      }
    }
    return found;
  }

  /** The top-level classes of this package where Drivers was loaded from. */
  private static List<String> classNames() {
    List<String> names = new ArrayList<>();
    Path where;
    try {
      where = Path.of(Drivers.class.getProtectionDomain().getCodeSource().getLocation().toURI());
    } catch (URISyntaxException e) {
      throw new IllegalStateException("where the driver classes are: " + e, e);
    }
    try {
      if (Files.isDirectory(where)) {
        try (Stream<Path> files = Files.list(where.resolve(PACKAGE))) {
          files.forEach(f -> add(names, PACKAGE + f.getFileName()));
        }
      } else {
        try (JarFile jar = new JarFile(where.toFile())) {
          jar.stream().forEach(e -> add(names, e.getName()));
        }
      }
    } catch (IOException e) {
      throw new IllegalStateException("cannot list " + where + ": " + e, e);
    }
    return names;
  }

  private static void add(List<String> names, String entry) {
    String rest = entry.startsWith(PACKAGE) ? entry.substring(PACKAGE.length()) : "";
    if (rest.endsWith(".class") && !rest.contains("/") && !rest.contains("$")) {
      names.add((PACKAGE + rest.substring(0, rest.length() - ".class".length())).replace('/', '.'));
    }
  }
}
