#!/usr/bin/env bash
# scripts/bench embed: what a service embedding migsafe builds. Builds
# examples/embedding-service cold, in release, in a fresh target directory,
# and prints its crate count (unique packages, build dependencies included),
# the number of compilations (a crate built for the build script and for the
# service counts twice), the wall time and the stripped binary size; then the
# same crate count for a service using sqlx with its `migrate` feature
# (resolved only, not built: sqlx is never a dependency).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
count_crates() {
  cargo tree -e normal,build --prefix none 2>/dev/null |
    sed 's/ (\*)//; s/ (proc-macro)//' | sort -u | wc -l
}
cd "$root/examples/embedding-service"
crates=$(count_crates)
started=$(date +%s)
cargo build --release --target-dir "$work/target" 2>"$work/build.log"
seconds=$(( $(date +%s) - started ))
compiled=$(grep -c '^ *Compiling ' "$work/build.log" || true)
bytes=$(stat -c %s "$work/target/release/embedding-service")
twice=$(grep '^ *Compiling ' "$work/build.log" | awk '{print $2}' | sort | uniq -d | tr '\n' ' ')
mkdir -p "$work/sqlx/src"
cat > "$work/sqlx/Cargo.toml" <<'TOML'
[package]
name = "sqlx-service"
version = "0.1.0"
edition = "2021"
[dependencies]
sqlx = { version = "0.8", default-features = false, features = ["runtime-tokio", "tls-rustls", "postgres", "migrate", "macros"] }
tokio = { version = "1", features = ["rt", "macros"] }
[workspace]
TOML
echo 'fn main() {}' > "$work/sqlx/src/main.rs"
sqlx_crates=$( (cd "$work/sqlx" && count_crates) || echo "?")
printf 'embedding-service (migsafe engine + migsafe-build), cold release build on %s core(s):\n' "$(nproc)"
printf '  crates (unique packages):        %5s   sqlx 0.8 with migrate: %s\n' "$crates" "$sqlx_crates"
printf '  compilations:                    %5s   (built twice: %s)\n' "$compiled" "${twice:-none}"
printf '  build time:                      %5s s\n' "$seconds"
printf '  stripped binary:                 %5s MB (%s bytes)\n' "$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')" "$bytes"
