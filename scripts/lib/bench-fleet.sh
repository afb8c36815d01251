# Sourced by scripts/bench (inside its sandbox: DATABASE_URL, $bin, $psql,
# $work, url_for, now_ns, ms are set). `scripts/bench fleet [N]`:
#   1. N databases (default 60) x the bundled example's migrations (two
#      namespaces, five migrations, one index built CONCURRENTLY), the full
#      guarded apply (preflight, pg_dump backup, migrate, postflight) on each:
#      `migsafe fleet apply --parallel 8` vs a shell loop of `migsafe apply`
#      over N other, identical databases, same server, same run, in two
#      rounds on fresh databases (loop first, then fleet first); the ratio.
#   2. Peak memory (max RSS, GNU time) of `fleet apply --parallel 8` over the
#      N databases and over BENCH_FLEET_BIG databases (default 600): bounded
#      by --parallel, not by the size of the fleet.

# Creates databases PREFIX_1..PREFIX_N in one psql session and writes their
# URLs, one per line, to FILE.
fleet_databases() {
  local prefix=$1 n=$2 file=$3 i
  : > "$file"
  for i in $(seq 1 "$n"); do
    echo "CREATE DATABASE ${prefix}_$i;"
    url_for "${prefix}_$i" >> "$file"
  done | "$psql" -X -q -v ON_ERROR_STOP=1 -d "$DATABASE_URL" >/dev/null
}

# Peak RSS in kB of a command (GNU time -v), or "?" without GNU time.
peak_rss() {
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -v "$@" 2> "$work/time.txt" >/dev/null || true
    awk -F: '/Maximum resident set size/ { gsub(/ /, "", $2); print $2 }' "$work/time.txt"
  else
    "$@" >/dev/null 2>&1 || true
    echo "?"
  fi
}

bench_fleet() {
  local n=${count:-60} big=${BENCH_FLEET_BIG:-600} parallel=${BENCH_FLEET_PARALLEL:-8}
  local project="$work/fleet" t0 t1 loop_ms fleet_ms url failed=0
  mkdir -p "$project"
  cp -r "$root/examples/migsafe.toml" "$root/examples/migrations" "$project/"
  echo "bench fleet: creating $((4 * n + 1)) databases…" >&2
  local r
  for r in 1 2; do
    fleet_databases "fleet_loop$r" "$n" "$work/loop$r.txt"
    fleet_databases "fleet_par$r" "$n" "$work/par$r.txt"
  done
  fleet_databases fleet_warm 1 "$work/warm.txt"
  cd "$project"
  # Warm-up, not counted: the first DDL and pg_dump after initdb pay for
  # WAL segments, catalog files and the page cache.
  "$bin" -q apply --database-url "$(cat "$work/warm.txt")" >/dev/null

  # Two rounds on fresh databases, the loop first and then the fleet first,
  # so neither side always meets a warmer (or busier) machine.
  local loops=() fleets=() rss_small
  run_loop() {
    echo "bench fleet: shell loop of migsafe apply over $n databases…" >&2
    t0=$(now_ns)
    while read -r url; do
      "$bin" -q --log-dir "$work/loop-logs" apply --database-url "$url" >/dev/null || failed=$((failed + 1))
    done < "$work/loop$1.txt"
    t1=$(now_ns); loops+=($(ms "$t0" "$t1"))
  }
  run_fleet() {
    echo "bench fleet: migsafe fleet apply --parallel $parallel over $n databases…" >&2
    t0=$(now_ns)
    rss_small=$(peak_rss "$bin" -q --log-dir "$work/fleet-logs" fleet apply --databases "$work/par$1.txt" --parallel "$parallel")
    t1=$(now_ns); fleets+=($(ms "$t0" "$t1"))
  }
  run_loop 1; run_fleet 1
  run_fleet 2; run_loop 2
  loop_ms=$(( loops[0] + loops[1] )); fleet_ms=$(( fleets[0] + fleets[1] ))
  local fleet_ok=0 loop_ok=0
  for r in 1 2; do
    fleet_ok=$(( fleet_ok + $("$bin" fleet status --databases "$work/par$r.txt" --format json 2>/dev/null | grep -c '"outcome": "up_to_date"' || true) ))
    loop_ok=$(( loop_ok + $("$bin" fleet status --databases "$work/loop$r.txt" --format json 2>/dev/null | grep -c '"outcome": "up_to_date"' || true) ))
  done

  echo "bench fleet: $big databases for the memory bound…" >&2
  fleet_databases fleet_big "$big" "$work/big.txt"
  local rss_big big_ms
  t0=$(now_ns)
  rss_big=$(peak_rss "$bin" -q --log-dir "$work/big-logs" fleet apply --databases "$work/big.txt" --parallel "$parallel")
  t1=$(now_ns); big_ms=$(ms "$t0" "$t1")
  local big_ok
  big_ok=$("$bin" fleet status --databases "$work/big.txt" --parallel 16 --format json 2>/dev/null | grep -c '"outcome": "up_to_date"' || true)

  echo "bench fleet: $n databases x the example's 5 migrations (2 namespaces), full guarded apply each (preflight, pg_dump, migrate, postflight), same server, same run, 2 alternating rounds, $(nproc) core(s), load average $(cut -d' ' -f1-3 /proc/loadavg)"
  printf '  shell loop of migsafe apply:          %7d ms  (rounds: %s; %s of %s up to date after)\n' "$loop_ms" "${loops[*]}" "$loop_ok" "$((2 * n))"
  printf '  migsafe fleet apply --parallel %-2s:    %7d ms  (rounds: %s; %s of %s up to date after)\n' "$parallel" "$fleet_ms" "${fleets[*]}" "$fleet_ok" "$((2 * n))"
  awk -v a="$fleet_ms" -v b="$loop_ms" 'BEGIN { printf "  ratio fleet / loop:                   %7.2f  (target <= 0.50)\n", a / b }'
  printf '  peak RSS, fleet of %4s databases:    %7s kB\n' "$n" "$rss_small"
  printf '  peak RSS, fleet of %4s databases:    %7s kB  (%d ms, %s of %s up to date after)\n' "$big" "$rss_big" "$big_ms" "$big_ok" "$big"
}
