#!/usr/bin/env bash
# Lays out the agent's cycle functions (packaging/agent-functions.txt)
# together in a release binary, so that a collection cycle touches a few of
# the 64 KiB windows the kernel maps code in instead of dozens (the
# daemon's RSS; see BENCHMARKS.md). lld, Rust's linker on x86-64 Linux,
# takes the order as a symbol ordering file.
#
#   order-functions.sh --relink PROFILE   relinks target/PROFILE/carbyne
#                                         with its functions so ordered
#                                         (build-deb.sh, benches/agent.sh)
#   order-functions.sh BINARY             prints the ordering file: the
#                                         mangled names of BINARY's
#                                         functions the list names
#   order-functions.sh --names < SYMBOLS  the list's names of mangled ones
#
# A name in the list is the demangled path without the v0 scheme's crate
# hashes and thin LTO's `.llvm.N` suffixes, so it matches from one build to
# the next. The standard library's functions, mangled the older way, keep
# their `::h...` hash, which changes with the Rust toolchain: rerun
# packaging/agent-functions.sh after a toolchain update, or when a build
# finds fewer than about nine in ten of the names.
set -euo pipefail
cd "$(dirname "$0")/.."

need() {
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || {
            echo "order-functions.sh: $tool is needed (Debian's binutils)" >&2
            exit 1
        }
    done
}
symbols=$(mktemp)
order=$(mktemp --suffix=.order)
trap 'rm -f "$symbols" "$order"' EXIT

normalize() {
    sed 's/\.llvm\.[0-9]*$//' | c++filt | sed 's/\[[0-9a-f]*\]//g'
}

order_file() {
    nm --defined-only "$1" | awk '$2 ~ /^[tTwW]$/ {print $3}' > "$symbols"
    normalize < "$symbols" | paste -d '\t' - "$symbols" \
        | awk -F '\t' 'NR == FNR { want[$0] = 1; n++; next }
                       ($1 in want) { print $2; if (!($1 in seen)) { seen[$1] = 1; found++ } }
                       END { printf "%d of %d listed agent functions found (the others are inlined or named otherwise by this build, and keep their place)\n", found, n > "/dev/stderr" }' \
            packaging/agent-functions.txt -
}

case "${1:-}" in
    --names)
        need c++filt
        normalize
        ;;
    --relink)
        need nm c++filt readelf
        profile=${2:?usage: order-functions.sh --relink PROFILE}
        binary=${CARGO_TARGET_DIR:-target}/$profile/carbyne
        if ! readelf -p .comment "$binary" | grep -q 'Linker: LLD'; then
            echo "$binary was not linked by lld: its functions keep the default order" >&2
            exit 0
        fi
        order_file "$binary" > "$order"
        # A new file name each time: cargo relinks when the arguments change.
        cargo rustc --profile "$profile" --locked --quiet --bin carbyne -- \
            -C link-arg=-Wl,--symbol-ordering-file="$order" \
            -C link-arg=-Wl,--no-warn-symbol-ordering
        ;;
    "")
        echo "usage: order-functions.sh --relink PROFILE | BINARY | --names" >&2
        exit 2
        ;;
    *)
        need nm c++filt
        order_file "$1"
        ;;
esac
