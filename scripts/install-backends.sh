#!/usr/bin/env bash
# Installs what lockbench needs on a bare Debian 12 / Ubuntu 22.04+ machine
# (the servers it starts, protoc and its .proto includes for the etcd
# client's build, a C compiler for the clock library, Chromium for the
# browser test), then checks that every piece really runs.
#
#   scripts/install-backends.sh           install what is missing, then check
#   scripts/install-backends.sh --check   only check; exit 1 if anything is missing
#
# The check prints one line per missing piece with the fix. Servers are
# looked up as lockbench looks them up: on PATH and in Debian's locations,
# or only in LOCKBENCH_BIN_DIRS (directories separated by ':') when it is
# set.
#
# lockbench starts its own servers on free 127.0.0.1 ports, so the
# packages' system services are not needed: by default this script keeps
# apt from starting them (set LOCKBENCH_KEEP_SERVICES=1 to let them start).
set -euo pipefail

packages=(
  redis-server redis-tools     # redis, redlock, Sentinel; redis-cli forms a Redis Cluster; redis-benchmark for scripts/
  memcached                    # memcached recipes
  zookeeper                    # ZooKeeper recipes (Java; jars under /usr/share/java)
  default-jre-headless         # runs ZooKeeper (zookeeper only recommends a JRE)
  etcd-server                  # etcd lease locks
  mariadb-server               # MySQL-family recipes
  postgresql                   # advisory locks
  protobuf-compiler            # etcd-client's build runs protoc...
  libprotobuf-dev              # ...which needs the well-known .proto files
  gcc libc6-dev                # the clock library (`src/net/skew.c`)
  iproute2                     # ss -K: cutting ZooKeeper's direct election links
  ca-certificates              # cargo's downloads over TLS
  python3 python3-venv         # the Python lock-library drivers (drivers/python)
)

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi

# The checkout this script belongs to (the drivers live in it).
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/drivers/python/.venv"

# ---------------------------------------------------------------- the check

# Where lockbench would find `$1` (cluster::find_binary), or nothing.
find_binary() {
  local name=$1 dir
  if [ -n "${LOCKBENCH_BIN_DIRS+x}" ]; then
    local IFS=:
    for dir in $LOCKBENCH_BIN_DIRS; do
      if [ -f "$dir/$name" ]; then echo "$dir/$name"; return 0; fi
    done
    return 1
  fi
  local dirs=()
  IFS=: read -r -a dirs <<<"${PATH:-}"
  dirs+=(/usr/sbin /usr/local/sbin /usr/bin)
  if [ -d /usr/lib/postgresql ]; then
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -r); do dirs+=("$dir"); done
  fi
  for dir in "${dirs[@]}"; do
    if [ -n "$dir" ] && [ -f "$dir/$name" ]; then echo "$dir/$name"; return 0; fi
  done
  return 1
}

missing_count=0
ok() { printf 'check: ok       %-16s %s\n' "$1" "$2"; }
missing() {
  printf 'check: MISSING  %-16s %s\n' "$1" "$2"
  missing_count=$((missing_count + 1))
}

# `check_version NAME PACKAGE BINARY ARGS...`: the binary exists and prints
# its version (its first line) when asked.
check_version() {
  local name=$1 package=$2 binary=$3 path out
  shift 3
  if ! path=$(find_binary "$binary"); then
    missing "$name" "$binary not found$(where_hint): apt-get install $package (or run scripts/install-backends.sh)"
    return
  fi
  if out=$(timeout 20 "$path" "$@" 2>&1 </dev/null) && [ -n "$out" ]; then
    ok "$name" "$(printf '%s\n' "$out" | grep -v '^\s*$' | head -n 1)"
  else
    missing "$name" "$path $* failed: $(printf '%s' "$out" | tail -n 1); reinstall with apt-get install --reinstall $package"
  fi
}

# `check_exists NAME PACKAGE BINARY`: the binary exists and is executable
# (for helpers that cannot print a version without doing something).
check_exists() {
  local name=$1 package=$2 binary=$3 path
  if ! path=$(find_binary "$binary"); then
    missing "$name" "$binary not found$(where_hint): apt-get install $package (or run scripts/install-backends.sh)"
  elif [ ! -x "$path" ]; then
    missing "$name" "$path is not executable: apt-get install --reinstall $package"
  else
    ok "$name" "$path"
  fi
}

where_hint() {
  if [ -n "${LOCKBENCH_BIN_DIRS+x}" ]; then
    printf ' in LOCKBENCH_BIN_DIRS (%s)' "$LOCKBENCH_BIN_DIRS"
  else
    printf ' on PATH or in /usr/sbin, /usr/bin'
  fi
}

check_zookeeper() {
  local java jar=/usr/share/java/zookeeper.jar out
  if ! java=$(find_binary java); then
    missing zookeeper "java not found$(where_hint): apt-get install default-jre-headless"
    return
  fi
  if [ ! -f "$jar" ] && [ -z "${ZOOKEEPER_HOME:-}" ]; then
    missing zookeeper "$jar not found: apt-get install zookeeper"
    return
  fi
  local cp=$jar
  if [ ! -f "$jar" ]; then cp="$ZOOKEEPER_HOME/lib/*"; fi
  if out=$(timeout 30 "$java" -cp "$cp" org.apache.zookeeper.version.VersionInfoMain 2>&1 </dev/null); then
    ok zookeeper "$(printf '%s\n' "$out" | head -n 1)"
  else
    missing zookeeper "ZooKeeper's jar does not run: $(printf '%s' "$out" | tail -n 1); apt-get install --reinstall zookeeper"
  fi
}

# protoc must compile a file that imports a well-known type: that needs the
# includes of libprotobuf-dev, which protobuf-compiler alone leaves out.
check_protoc() {
  local protoc=${PROTOC:-} dir out
  if [ -z "$protoc" ] && ! protoc=$(find_binary protoc); then
    missing protoc "protoc not found$(where_hint): apt-get install protobuf-compiler libprotobuf-dev"
    return
  fi
  dir=$(mktemp -d)
  printf 'syntax = "proto3";\nimport "google/protobuf/descriptor.proto";\nmessage M { google.protobuf.FileDescriptorProto f = 1; }\n' >"$dir/check.proto"
  if out=$(cd "$dir" && timeout 20 "$protoc" --proto_path=. --descriptor_set_out=check.pb check.proto 2>&1); then
    ok protoc "$("$protoc" --version 2>&1), with google/protobuf/descriptor.proto"
  else
    missing protoc "$protoc cannot compile an import of google/protobuf/descriptor.proto ($(printf '%s' "$out" | head -n 1)): apt-get install libprotobuf-dev"
  fi
  rm -rf "$dir"
}

check_cc() {
  local cc=${CC:-cc} dir
  dir=$(mktemp -d)
  printf '#include <time.h>\nint f(void) { struct timespec t; return clock_gettime(CLOCK_MONOTONIC, &t); }\n' >"$dir/c.c"
  if command -v "$cc" >/dev/null 2>&1 && "$cc" -shared -fPIC -o "$dir/c.so" "$dir/c.c" 2>/dev/null; then
    ok cc "$("$cc" --version 2>&1 | head -n 1)"
  else
    missing cc "$cc cannot build a shared library (the clock library needs one): apt-get install gcc libc6-dev"
  fi
  rm -rf "$dir"
}

# The browser test renders a page in headless Chromium.
check_chromium() {
  local chromium profile out
  if ! chromium=$(find_binary chromium); then
    missing chromium "chromium not found$(where_hint): apt-get install chromium"
    return
  fi
  profile=$(mktemp -d)
  if out=$(timeout 60 "$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --dump-dom 'data:text/html,<p>lockbench-check</p>' 2>/dev/null </dev/null) &&
    printf '%s' "$out" | grep -q lockbench-check; then
    ok chromium "$("$chromium" --version 2>/dev/null | head -n 1), renders headless"
  else
    missing chromium "$chromium does not render a page headless: apt-get install --reinstall chromium"
  fi
  rm -rf "$profile"
}

# Whether the Python drivers' virtual environment is complete: every pin of
# requirements.txt installed at its version, and every driver file
# (drivers/python/*.py but the protocol and the bench loop) importing. Prints
# the pins on success and what is wrong otherwise.
python_drivers_status() {
  (cd "$root/drivers/python" && "$venv/bin/python" - 2>&1 <<'PY'
import importlib, importlib.metadata as md, pathlib, re, sys
pins = {}
for line in pathlib.Path("requirements.txt").read_text().splitlines():
    m = re.match(r"([A-Za-z0-9_.-]+)==([^ \\;]+)", line)
    if m:
        pins[m.group(1)] = m.group(2)
wrong = []
for name, pinned in sorted(pins.items()):
    try:
        have = md.version(name)
    except md.PackageNotFoundError:
        have = None
    if have != pinned:
        wrong.append(f"{name} {have or 'missing'} (pinned {pinned})")
drivers = sorted(p.stem for p in pathlib.Path(".").glob("*.py")
                 if p.stem not in ("lockbench_driver", "bench_loop"))
if not wrong:
    for d in drivers:
        try:
            importlib.import_module(d)
        except Exception as e:
            wrong.append(f"{d}.py does not import: {type(e).__name__}: {e}")
if wrong:
    print("; ".join(wrong))
    sys.exit(1)
print(", ".join(f"{n} {v}" for n, v in sorted(pins.items()))
      + "; drivers " + ", ".join(drivers))
PY
  )
}

# The Python drivers' virtual environment has every pinned library.
check_python_drivers() {
  local out
  if [ ! -x "$venv/bin/python" ]; then
    missing python-drivers "$venv is missing: run scripts/install-backends.sh (python3 -m venv, then pip install --require-hashes -r drivers/python/requirements.txt)"
    return
  fi
  if ! out=$(python_drivers_status); then
    missing python-drivers "$(printf '%s' "$out" | tail -n 1): $venv/bin/pip install --require-hashes -r drivers/python/requirements.txt"
    return
  fi
  ok python-drivers "$out"
}

# The Go drivers' binary runs and names its drivers.
check_go_drivers() {
  local bin="$root/drivers/go/bin/lockbench-go-driver" out
  if [ ! -x "$bin" ]; then
    missing go-drivers "$bin is missing: run scripts/install-backends.sh (it builds it with go, 1.26 or later, from the modules pinned in drivers/go/go.sum)"
    return
  fi
  # It names its drivers (a JSON array); which ones lockbench expects is
  # src/backend/libraries.rs's to say (tests/drivers.rs compares them).
  out=$("$bin" --list 2>&1 </dev/null || true)
  if printf '%s' "$out" | grep -q '^\["'; then
    ok go-drivers "$bin: $out"
  else
    missing go-drivers "$bin does not run ($(printf '%s' "$out" | tail -n 1)): run scripts/install-backends.sh to build it again"
  fi
}

# The offline Kubernetes manifest check runs.
check_k8s_check() {
  local bin="$root/tools/k8s-check/bin/k8s-check" out
  if [ ! -x "$bin" ]; then
    missing k8s-check "$bin is missing: run scripts/install-backends.sh (it builds it with go from tools/k8s-check/go.sum)"
    return
  fi
  if out=$("$bin" "$root/examples/kubernetes/isolate.yaml" 2>&1 </dev/null); then
    ok k8s-check "$bin: $(printf '%s' "$out" | tail -n 1 | sed 's/.*: //')"
  else
    missing k8s-check "$bin does not run ($(printf '%s' "$out" | tail -n 1)): run scripts/install-backends.sh to build it again"
  fi
}

# Toxiproxy's server runs.
check_toxiproxy() {
  local bin="$root/tools/toxiproxy/bin/toxiproxy-server" out
  if [ ! -x "$bin" ]; then
    missing toxiproxy "$bin is missing: run scripts/install-backends.sh (it builds it with go from tools/toxiproxy/go.sum)"
    return
  fi
  if out=$("$bin" -version 2>&1 </dev/null); then
    # A plain go build leaves the version string empty ("git"): go.mod has it.
    ok toxiproxy "$bin: $(grep -o 'Shopify/toxiproxy/v2 v[0-9.]*' "$root/tools/toxiproxy/go.mod" | head -n 1)"
  else
    missing toxiproxy "$bin does not run ($(printf '%s' "$out" | tail -n 1)): run scripts/install-backends.sh to build it again"
  fi
}

# etcd 3.6, built from its Go modules, runs (the etcd-3.6 backend).
check_etcd36() {
  local bin="$root/tools/etcd36/bin/etcd" out
  if [ ! -x "$bin" ]; then
    missing etcd-3.6 "$bin is missing: run scripts/install-backends.sh (it builds it with go from tools/etcd36/go.sum)"
    return
  fi
  if out=$("$bin" --version 2>&1 </dev/null); then
    ok etcd-3.6 "$bin: $(printf '%s' "$out" | head -n 1)"
  else
    missing etcd-3.6 "$bin does not run ($(printf '%s' "$out" | tail -n 1)): run scripts/install-backends.sh to build it again"
  fi
}

# ZooKeeper 3.9, its jars fetched from Maven Central, runs (the
# zookeeper-3.9 backend).
check_zookeeper39() {
  local lib="$root/tools/zookeeper39/target/lib" java out
  if ! java=$(find_binary java); then
    missing zookeeper-3.9 "java not found$(where_hint): apt-get install default-jre-headless"
    return
  fi
  if ! compgen -G "$lib/zookeeper-3*.jar" >/dev/null; then
    missing zookeeper-3.9 "$lib has no ZooKeeper jar: run scripts/install-backends.sh (it fetches it with Maven from tools/zookeeper39/pom.xml)"
    return
  fi
  if out=$(timeout 30 "$java" -cp "$lib/*" org.apache.zookeeper.version.VersionInfoMain 2>&1 </dev/null); then
    ok zookeeper-3.9 "$(printf '%s\n' "$out" | head -n 1)"
  else
    missing zookeeper-3.9 "ZooKeeper 3.9 does not run ($(printf '%s' "$out" | tail -n 1)): run scripts/install-backends.sh to fetch it again"
  fi
}

# The Node drivers' packages are installed, at their locked versions.
check_node_drivers() {
  local node dir="$root/drivers/node" out
  if ! node=$(command -v node); then
    missing node-drivers "node not found on PATH: install Node.js 18 or later (apt-get install nodejs npm)"
    return
  fi
  if ! out=$(cd "$dir" && "$node" -e '
    const fs = require("fs");
    const lock = JSON.parse(fs.readFileSync("package-lock.json", "utf8"));
    const names = Object.keys(JSON.parse(fs.readFileSync("package.json", "utf8")).dependencies);
    const seen = names.map((n) => {
      const want = lock.packages["node_modules/" + n].version;
      const have = JSON.parse(fs.readFileSync("node_modules/" + n + "/package.json", "utf8")).version.replace(/^v/, "");
      if (want !== have) throw new Error(n + " is " + have + ", package-lock.json says " + want);
      return n + " " + have;
    });
    console.log(seen.join(", "));' 2>&1); then
    missing node-drivers "drivers/node/node_modules is missing or not at package-lock.json's versions ($(printf '%s' "$out" | grep -m1 '^Error')): cd drivers/node && npm ci --omit=dev"
    return
  fi
  ok node-drivers "$out (node $("$node" --version))"
}

# The JVM drivers' jar runs and names its drivers.
check_java_drivers() {
  local jar="$root/drivers/java/target/lockbench-java-driver.jar" java out
  if ! java=$(command -v java); then
    missing java-drivers "java not found on PATH: apt-get install default-jre-headless"
    return
  fi
  if [ ! -f "$jar" ]; then
    missing java-drivers "$jar is missing: run scripts/install-backends.sh (it builds it with Maven from drivers/java/pom.xml)"
    return
  fi
  out=$(timeout 60 "$java" -jar "$jar" --list 2>&1 </dev/null || true)
  if ! printf '%s' "$out" | grep -q '^\["'; then
    missing java-drivers "$jar does not run ($(printf '%s' "$out" | tail -n 1)): run scripts/install-backends.sh to build it again"
  elif [ ! -f "$root/drivers/java/target/hazelcast/hazelcast.jar" ]; then
    missing java-drivers "drivers/java/target/hazelcast/hazelcast.jar is missing (lockbench starts Hazelcast members from it): run scripts/install-backends.sh"
  else
    ok java-drivers "$jar: $out, Hazelcast $(cat "$root/drivers/java/target/hazelcast/VERSION" 2>/dev/null)"
  fi
}

run_check() {
  echo "install-backends: checking what lockbench needs"
  check_version redis redis-server redis-server --version
  check_version redis-cli redis-tools redis-cli --version
  check_version memcached memcached memcached -V
  check_zookeeper
  check_version etcd etcd-server etcd --version
  check_version mariadb mariadb-server mariadbd --version
  check_exists mariadb-install mariadb-server mariadb-install-db
  check_version postgres postgresql postgres --version
  check_version initdb postgresql initdb --version
  check_version ss iproute2 ss --version
  check_protoc
  check_cc
  check_chromium
  check_python_drivers
  check_go_drivers
  check_k8s_check
  check_toxiproxy
  check_etcd36
  check_zookeeper39
  check_node_drivers
  check_java_drivers
  if [ "$missing_count" -ne 0 ]; then
    echo "install-backends: $missing_count piece(s) missing; run scripts/install-backends.sh (as root or with sudo)" >&2
    return 1
  fi
  echo "install-backends: everything lockbench needs is here"
}

if [ "${1:-}" = "--check" ]; then
  run_check
  exit $?
elif [ $# -gt 0 ]; then
  echo "usage: scripts/install-backends.sh [--check]" >&2
  exit 2
fi

# -------------------------------------------------------------- the install

# The lock libraries' drivers, each with its ecosystem's own tool, at the
# versions the checkout pins; nothing is installed system-wide.
install_drivers() {
  # Python: pinned with hashes, in a virtual environment of the checkout.
  if [ ! -x "$venv/bin/python" ] || ! python_drivers_status >/dev/null; then
    echo "install-backends: installing the Python drivers' libraries into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check --require-hashes -r "$root/drivers/python/requirements.txt"
  fi
  # Go: go.sum pins every module; go build is incremental (about a second
  # when nothing changed).
  if command -v go >/dev/null 2>&1; then
    echo "install-backends: building the Go drivers (drivers/go)"
    (cd "$root/drivers/go" && GOFLAGS=-mod=readonly go build -o bin/lockbench-go-driver .)
    # The offline Kubernetes manifest check (tests/kubernetes.rs).
    echo "install-backends: building the Kubernetes manifest check (tools/k8s-check)"
    (cd "$root/tools/k8s-check" && GOFLAGS=-mod=readonly go build -o bin/k8s-check .)
    # Toxiproxy's server, at the version tools/toxiproxy/go.mod pins
    # (tests/toxiproxy.rs starts it).
    echo "install-backends: building Toxiproxy's server (tools/toxiproxy)"
    (cd "$root/tools/toxiproxy" && GOFLAGS=-mod=readonly go build -o bin/toxiproxy-server github.com/Shopify/toxiproxy/v2/cmd/server)
    # etcd 3.6, its own server package around a three-line main, at the
    # version tools/etcd36/go.mod pins: the etcd-3.6 backend, beside
    # Debian's etcd 3.4.
    echo "install-backends: building etcd 3.6 (tools/etcd36)"
    (cd "$root/tools/etcd36" && GOFLAGS=-mod=readonly go build -o bin/etcd .)
  else
    echo "install-backends: go not found: the Go drivers are not built (install Go 1.26 or later)" >&2
  fi
  # Java: Maven, with every version pinned in the pom; a jar with its
  # dependencies. Maven's offline resolution is enough once its local
  # repository has them.
  if command -v mvn >/dev/null 2>&1; then
    local jar="$root/drivers/java/target/lockbench-java-driver.jar"
    if [ ! -f "$jar" ] || [ -n "$(find "$root/drivers/java/pom.xml" "$root/drivers/java/src" -newer "$jar" -print -quit)" ]; then
      echo "install-backends: building the JVM drivers (drivers/java)"
      (cd "$root/drivers/java" && mvn -q -B -Dstyle.color=never package -DskipTests)
    fi
    # ZooKeeper 3.9's jars, at the version tools/zookeeper39/pom.xml pins:
    # the zookeeper-3.9 backend, beside Debian's 3.8.
    local zk39="$root/tools/zookeeper39"
    if [ ! -f "$zk39/target/lib/VERSION" ] || [ "$zk39/pom.xml" -nt "$zk39/target/lib/VERSION" ]; then
      echo "install-backends: fetching ZooKeeper 3.9 (tools/zookeeper39)"
      rm -rf "$zk39/target/lib"
      (cd "$zk39" && mvn -q -B -Dstyle.color=never package)
    fi
  else
    echo "install-backends: mvn not found: the JVM drivers are not built (apt-get install maven)" >&2
  fi
  # Node: npm ci installs exactly package-lock.json.
  if command -v npm >/dev/null 2>&1; then
    local installed="$root/drivers/node/node_modules/.package-lock.json"
    if [ ! -f "$installed" ] || [ "$root/drivers/node/package-lock.json" -nt "$installed" ]; then
      echo "install-backends: installing the Node drivers' packages (drivers/node)"
      (cd "$root/drivers/node" && npm ci --omit=dev --no-audit --no-fund --loglevel=error)
    fi
  else
    echo "install-backends: npm not found: the Node drivers are not installed (install Node.js 18 or later)" >&2
  fi
}

# The drivers' toolchains: this machine kind has them (newer than
# Debian's); elsewhere Debian's packages do for Maven and Node.js. Go must
# be 1.26 or later (go.dev/dl), newer than Debian 12's.
if ! command -v mvn >/dev/null 2>&1; then packages+=(maven); fi
if ! command -v npm >/dev/null 2>&1; then packages+=(nodejs npm); fi

# Some systems (GitHub's Ubuntu runners) ship a Chromium outside apt: keep it.
if ! find_binary chromium >/dev/null; then
  packages+=(chromium)
fi

missing_packages=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing_packages+=("$p")
  fi
done

if [ "${#missing_packages[@]}" -eq 0 ]; then
  echo "install-backends: all packages already installed"
else
  policy=/usr/sbin/policy-rc.d
  made_policy=0
  if [ "${LOCKBENCH_KEEP_SERVICES:-0}" != "1" ] && [ ! -e "$policy" ]; then
    # "exit 101" tells invoke-rc.d not to start services during the install.
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod +x "$policy"
    made_policy=1
  fi
  cleanup() {
    if [ "$made_policy" = 1 ]; then $sudo rm -f "$policy"; fi
  }
  trap cleanup EXIT

  echo "install-backends: installing ${missing_packages[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing_packages[@]}" >/dev/null
  echo "install-backends: packages installed"
fi

install_drivers
run_check
