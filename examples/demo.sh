#!/bin/sh
# The main job on the bundled examples, in a fresh temporary store (run it as often as you like):
# three revisions of one story and a folder of drafts become events; then their history, diffs,
# an old version, the categories, the feed of updated stories and the log's proof of integrity.
# Uses the `ledger` on PATH; run from anywhere: `sh examples/demo.sh`. With `--serve`, it then opens
# the web viewer on that store at http://127.0.0.1:8000/ until Ctrl-C.
set -eu

examples=$(cd "$(dirname "$0")" && pwd)
LEDGER_STORE=$(mktemp -d "${TMPDIR:-/tmp}/ledger-demo.XXXXXX")
export LEDGER_STORE
trap 'rm -rf "$LEDGER_STORE"' EXIT
# Ctrl-C (which stops `ledger serve`) still removes the store.
trap 'exit 130' INT TERM
cd "$examples/.."   # so the paths printed below read examples/...

# Print the command as a shell would read it (arguments with spaces quoted), then run it.
run() {
    line='+'
    for arg in "$@"; do
        case $arg in
            '' | *[!A-Za-z0-9_./:=+-]*) arg="'$(printf '%s' "$arg" | sed "s/'/'\\\\''/g")'" ;;
        esac
        line="$line $arg"
    done
    printf '\n%s\n' "$line"
    "$@"
}

run ledger init
run ledger ingest examples/revisions/harbour-bridge-closure/v1.txt --article harbour-bridge-closure \
    --at 2024-03-05T08:10:00Z --actor "Ana Ruiz" --reason "first report"
run ledger ingest examples/revisions/harbour-bridge-closure/v2.txt --article harbour-bridge-closure \
    --at 2024-03-05T11:25:00Z --actor "Ana Ruiz" --reason "third cable; ferry update"
run ledger ingest examples/revisions/harbour-bridge-closure/v3.txt --article harbour-bridge-closure \
    --at 2024-03-05T18:40:00Z --actor "Tom Berg" --reason "reopening date"
run ledger ingest examples/drafts --at 2024-05-04T08:00:00Z --actor "City desk"
run ledger history harbour-bridge-closure
run ledger diff harbour-bridge-closure
run ledger diff harbour-bridge-closure --words
run ledger show harbour-bridge-closure 1
run ledger categories
run ledger updated --since 2024-03-05T12:00:00Z
run ledger verify
if [ "${1:-}" = "--serve" ]; then
    run ledger serve
else
    # Said with the folder of the ledger used here: the quick start puts it on PATH for one command.
    printf '\nTo see these in a web browser: PATH="%s:$PATH" sh examples/demo.sh --serve, then open http://127.0.0.1:8000/\n' "$(dirname "$(command -v ledger)")"
fi
