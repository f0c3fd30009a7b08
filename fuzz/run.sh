#!/usr/bin/env bash
# Builds every fuzz target and runs each one in turn for SECONDS seconds (default 60).
# Every target runs even if an earlier one crashed; the script exits 1 if any target
# crashed (the input is kept in fuzz/artifacts/<target>/) and non-zero if the build
# fails. Needs cargo-fuzz (`cargo install cargo-fuzz --locked`) and a nightly toolchain,
# or the default (stable) one with FUZZ_TOOLCHAIN=default RUSTC_BOOTSTRAP=1 (as CI does).
#
#   fuzz/run.sh [SECONDS]
#
# Seeds: fuzz/seeds/<target>/ holds the test vectors of protocol-spec/ (valid signed
# objects, frames, plaintexts, delivery events) and valid prekeys and directory entries
# (real libsignal keys, a certificate of the spec's org), so the fuzzer starts past the
# signature checks.
#
# Environment:
#   FUZZ_TOOLCHAIN   toolchain for cargo (default: nightly; `default`: plain `cargo`,
#                    whichever toolchain rustup or PATH gives)
#   FUZZ_RSS_MB      libFuzzer -rss_limit_mb (default: 2048)
#   FUZZ_TARGETS     space-separated targets to run (default: all, from `cargo fuzz list`)
#   CARGO_BUILD_JOBS limits build parallelism, as for any cargo build
set -euo pipefail

secs="${1:-60}"
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -eq 0 ]; then
    echo "usage: $0 [SECONDS]   (a positive whole number, default 60)" >&2
    exit 2
fi
toolchain="${FUZZ_TOOLCHAIN:-nightly}"
rss_mb="${FUZZ_RSS_MB:-2048}"

cd "$(dirname "$0")"

cargo_fuzz() {
    if [ "$toolchain" = default ]; then
        cargo fuzz "$@"
    else
        cargo "+$toolchain" fuzz "$@"
    fi
}

targets="${FUZZ_TARGETS:-$(cargo_fuzz list)}"
if [ -z "$targets" ]; then
    echo "no fuzz targets found" >&2
    exit 2
fi

echo "== building fuzz targets"
start=$SECONDS
cargo_fuzz build
echo "== built in $((SECONDS - start))s"

failed=()
for target in $targets; do
    echo "== fuzzing $target for ${secs}s"
    mkdir -p "corpus/$target"
    # New inputs go to corpus/<target> (not in git); seeds/<target> (in git: the spec's
    # test vectors) is only read.
    dirs=("corpus/$target")
    [ -d "seeds/$target" ] && dirs+=("seeds/$target")
    start=$SECONDS
    if ! cargo_fuzz run "$target" "${dirs[@]}" -- \
        -max_total_time="$secs" -rss_limit_mb="$rss_mb" -print_final_stats=1; then
        echo "!! $target failed; reproducer(s) in fuzz/artifacts/$target/:" >&2
        ls -1 "artifacts/$target" >&2 2>/dev/null || true
        failed+=("$target")
    fi
    echo "== $target: $((SECONDS - start))s"
done

if [ "${#failed[@]}" -ne 0 ]; then
    echo "fuzzing found crashes in: ${failed[*]}" >&2
    exit 1
fi
echo "== all targets ran ${secs}s without a crash"
