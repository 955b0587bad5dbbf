#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 600), one after another, on the kept
# corpus in fuzz/corpus/<target>, and prints one line per target. A crash stops the
# script with libFuzzer's report and the input saved under fuzz/artifacts/.
#   fuzz/run.sh            # ten minutes each
#   fuzz/run.sh 10         # the CI smoke run
#   TARGETS="jwt pkce" fuzz/run.sh   # some of them
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_EACH="${1:-600}"
TOOLCHAIN=+nightly
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    # cargo fuzz needs nightly-only flags; a stable compiler accepts them with this.
    TOOLCHAIN=""
    export RUSTC_BOOTSTRAP=1
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cargo $TOOLCHAIN fuzz build -O
for target in ${TARGETS:-$(cargo $TOOLCHAIN fuzz list)}; do
    mkdir -p "corpus/$target" "seeds/$target"
    log="$(mktemp)"
    if ! cargo $TOOLCHAIN fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
        tail -n 60 "$log"
        echo "fuzz: $target FAILED (see above)"
        exit 1
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    echo "fuzz: $target clean: $runs inputs in ${SECONDS_EACH}s, corpus $(ls "corpus/$target" | wc -l) files"
    rm -f "$log"
done
