# Sourced by scripts/demo, scripts/test and scripts/bench: makes sure a fresh
# Debian machine has what migsafe needs to build and to run its sandbox.
#   - PostgreSQL server binaries (initdb, pg_ctl, pg_dump, psql) for the sandbox
#   - libclang, which pg_query's build uses to read the PostgreSQL grammar's C headers
#   - a Rust toolchain (not installed here: see https://rustup.rs)

have_pg_server() {
  if [ -n "${MIGSAFE_PG_BIN:-}" ] && [ -x "$MIGSAFE_PG_BIN/initdb" ]; then return 0; fi
  command -v initdb >/dev/null 2>&1 && return 0
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
}

have_libclang() {
  [ -n "${LIBCLANG_PATH:-}" ] && return 0
  # libclang itself, not libclang-cpp (which bindgen cannot use)
  ls /usr/lib/llvm-*/lib/libclang.so* /usr/lib/*/libclang-[0-9]*.so* >/dev/null 2>&1
}

ensure_prereqs() {
  local need=()
  have_pg_server || need+=(postgresql postgresql-contrib)
  have_libclang || need+=(libclang-dev)
  command -v cc >/dev/null 2>&1 || need+=(build-essential)
  if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "migsafe: installing ${need[*]} (apt-get)" >&2
      apt-get update -qq >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
    else
      echo "migsafe: missing ${need[*]}. Install them first:" >&2
      echo "  sudo apt-get install -y --no-install-recommends ${need[*]}" >&2
      exit 1
    fi
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    echo "migsafe: no Rust toolchain (cargo). Install it from https://rustup.rs, then run this again." >&2
    exit 1
  fi
}

# Headless Chromium, which the HTML report tests render the report with
# (Debian's `chromium`; MIGSAFE_CHROMIUM names another binary).
have_chromium() {
  if [ -n "${MIGSAFE_CHROMIUM:-}" ] && [ -x "$MIGSAFE_CHROMIUM" ]; then return 0; fi
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1
}

ensure_chromium() {
  have_chromium && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "migsafe: installing chromium (apt-get)" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >&2
  else
    echo "migsafe: missing chromium (the HTML report tests render with it). Install it first:" >&2
    echo "  sudo apt-get install -y --no-install-recommends chromium" >&2
    exit 1
  fi
}
