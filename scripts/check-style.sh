#!/usr/bin/env bash
# Checks the code's form in every language of the project, without changing
# anything: rustfmt and clippy for the Rust, and each driver language's own
# formatter or linter in check mode (ruff for drivers/python, prettier for
# drivers/node, gofmt and go vet for drivers/go, javac's lint with warnings
# as errors for drivers/java). Exit 0 when everything is clean, 1 when
# something is not (each problem is printed by its tool), 2 when a tool is
# missing (scripts/install-backends.sh installs what the drivers need; the
# linters come from the drivers' pinned development dependencies).
#
#   scripts/check-style.sh          everything
#   scripts/check-style.sh rust     only the Rust (also: python, node, go, java)
#
# .ci/run and the GitHub workflow run it. To fix rather than check:
# `cargo fmt`, `drivers/python/.venv-dev/bin/ruff format drivers/python`,
# `cd drivers/node && npx prettier --write .`, `gofmt -w drivers/go`.
set -uo pipefail
cd "$(dirname "$0")/.."

wanted=("$@")
if [ ${#wanted[@]} -eq 0 ]; then wanted=(rust python node go java); fi
failed=0
step() { echo "check-style: $*"; }
bad() { echo "check-style: FAILED: $*" >&2; failed=1; }
need() {
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "check-style: $1 not found: $2" >&2
    exit 2
  fi
}

for what in "${wanted[@]}"; do
  case "$what" in
    rust)
      need cargo "install Rust (rustup)"
      step "cargo fmt --check"
      cargo fmt --check || bad "cargo fmt --check (run cargo fmt)"
      step "cargo clippy --all-targets -- -D warnings"
      cargo clippy --quiet --locked --all-targets -- -D warnings || bad "clippy"
      ;;
    python)
      # ruff, pinned with its hash, in a virtual environment of its own
      # beside the drivers' (which holds only what the drivers import).
      dev=drivers/python/.venv-dev
      if [ ! -x "$dev/bin/ruff" ]; then
        need python3 "install Python 3 (apt-get install python3 python3-venv)"
        step "installing ruff into $dev"
        python3 -m venv "$dev" &&
          "$dev/bin/pip" install -q --disable-pip-version-check --require-hashes \
            -r drivers/python/requirements-dev.txt || { bad "installing ruff"; continue; }
      fi
      step "ruff format --check, ruff check (drivers/python, tests/data/drivers)"
      "$dev/bin/ruff" format --check drivers/python tests/data/drivers || bad "ruff format (run it without --check)"
      "$dev/bin/ruff" check drivers/python tests/data/drivers || bad "ruff check"
      ;;
    node)
      need npm "install Node.js 18 or later with npm"
      # prettier is a pinned development dependency (package-lock.json);
      # install-backends.sh installs only what the drivers run.
      if [ ! -x drivers/node/node_modules/.bin/prettier ]; then
        step "installing the Node drivers' development dependencies (npm ci)"
        (cd drivers/node && npm ci --no-audit --no-fund --loglevel=error) || { bad "npm ci"; continue; }
      fi
      step "prettier --check (drivers/node)"
      (cd drivers/node && node_modules/.bin/prettier --check .) || bad "prettier (run npx prettier --write . in drivers/node)"
      ;;
    go)
      need go "install Go 1.26 or later from go.dev"
      step "gofmt -l, go vet (drivers/go, tools/k8s-check, tools/etcd36)"
      unformatted=$(gofmt -l drivers/go tools/k8s-check tools/etcd36)
      if [ -n "$unformatted" ]; then bad "gofmt: not formatted: $unformatted (run gofmt -w drivers/go tools/k8s-check tools/etcd36)"; fi
      (cd drivers/go && GOFLAGS=-mod=readonly go vet ./...) || bad "go vet (drivers/go)"
      (cd tools/k8s-check && GOFLAGS=-mod=readonly go vet ./...) || bad "go vet (tools/k8s-check)"
      (cd tools/etcd36 && GOFLAGS=-mod=readonly go vet ./...) || bad "go vet (tools/etcd36)"
      ;;
    java)
      need mvn "apt-get install maven"
      step "javac -Xlint:all -Werror (drivers/java, Maven profile lint)"
      (cd drivers/java && mvn -q -B -Dstyle.color=never -P lint compile) || bad "javac lint"
      ;;
    *)
      echo "check-style: unknown part '$what' (rust, python, node, go, java)" >&2
      exit 2
      ;;
  esac
done
if [ "$failed" -ne 0 ]; then
  echo "check-style: something is not clean (above)" >&2
  exit 1
fi
echo "check-style: clean"
