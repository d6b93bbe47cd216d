#!/usr/bin/env bash
# The nightly-sized run of the property tests (tests/properties.rs): every reader of outside
# bytes gets PROPTEST_CASES random mutations of a valid file (10,000 by default; a plain
# `cargo test` runs 48). It must never crash or hang, and either load or name the file.
#
#   scripts/properties.sh                    # 10,000 cases per reader (test profile)
#   PROPTEST_CASES=100000 scripts/properties.sh csv_loader
set -euo pipefail
cd "$(dirname "$0")/.."
export PROPTEST_CASES="${PROPTEST_CASES:-10000}"
start=$(date +%s)
cargo test --test properties -- --test-threads "${THREADS:-2}" "$@"
echo "properties: ${PROPTEST_CASES} cases per reader, $(( $(date +%s) - start )) s"
