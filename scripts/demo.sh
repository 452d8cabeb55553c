#!/usr/bin/env bash
# Builds libadudiffapi.so and the agent-faithful C harness, then applies a bundled delta the way
# the Device Update agent does (dlopen by bare name, create -> apply -> errors -> dlclose ->
# close_session) and checks the result against the expected target.
set -euo pipefail
cd "$(dirname "$0")/.."
case_dir="${1:-tests/vectors/swu_realistic_rootfs}"

cargo build --release -p adudiffapi --lib
cc -std=c99 -O2 -o target/release/agent_harness examples/agent_harness.c -ldl

out="$(mktemp -d)/target.swu"
echo "== applying $case_dir/delta ($(stat -c %s "$case_dir/delta") bytes) to $case_dir/source ($(stat -c %s "$case_dir/source") bytes)"
LD_LIBRARY_PATH=target/release target/release/agent_harness "$case_dir/source" "$case_dir/delta" "$out"
echo "== result: $(stat -c %s "$out") bytes, sha256 $(sha256sum "$out" | cut -d' ' -f1)"
if cmp -s "$out" "$case_dir/target"; then
    echo "== identical to the expected target made by Microsoft's library"
else
    echo "== MISMATCH with $case_dir/target" >&2
    exit 1
fi
