#!/usr/bin/env bash
# Regenerates the adudiff man pages (pkg/man/*.1) and shell completions (pkg/completions/) from
# the CLI definition, for the Debian package. `tests/cli.rs` fails when the committed files
# drift from what the binary prints, and names this script.
#
#   scripts/update-cli-docs.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet -p adudiff --bin adudiff
bin=${CARGO_TARGET_DIR:-target}/debug/adudiff
rm -rf pkg/man pkg/completions
mkdir -p pkg/man pkg/completions
"$bin" man --dir pkg/man
"$bin" completions bash > pkg/completions/adudiff.bash
"$bin" completions zsh > pkg/completions/_adudiff
"$bin" completions fish > pkg/completions/adudiff.fish
ls pkg/man pkg/completions
