#!/usr/bin/env bash
# Run fuzz targets one after another (one fuzzer at a time), SECONDS each (default 600),
# from the already-built binaries: scripts/fuzz/run_all.sh [SECONDS] [TARGET...]
# Build first with `cargo +nightly fuzz build` (in the repository root).
# Logs go to fuzz/logs/<target>.log, crashes to fuzz/artifacts/<target>/.
set -u
cd "$(dirname "$0")/../.."
secs=${1:-600}
shift || true
targets=${*:-npy npz aedat4 aedat checkpoint idx image nmnist cifar}
bin=fuzz/target/x86_64-unknown-linux-gnu/release
mkdir -p fuzz/logs
for t in $targets; do
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    echo "== $t $(date +%T)"
    "$bin/$t" "fuzz/corpus/$t" -artifact_prefix="fuzz/artifacts/$t/" \
        -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 \
        -print_final_stats=1 >"fuzz/logs/$t.log" 2>&1
    echo "   exit $? $(date +%T): $(grep -E '^(stat::number_of_executed_units|Done)' "fuzz/logs/$t.log" | tr '\n' ' ')"
done
