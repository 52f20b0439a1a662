#!/usr/bin/env bash
# Regenerates the typed client from the service's OpenAPI document:
#   openapi.json       the document, as `memlayer openapi` prints it
#   src/schema.d.ts    its TypeScript types (openapi-typescript)
# With --check, changes nothing and fails if either is out of date.
set -euo pipefail
client="$(cd "$(dirname "$0")/.." && pwd)"
root="$(cd "$client/../.." && pwd)"
fresh=$(mktemp -d)
trap 'rm -rf "$fresh"' EXIT

(cd "$root" && cargo run -q --locked -p memlayer-server -- openapi) > "$fresh/openapi.json"
(cd "$client" && npx --no-install openapi-typescript "$fresh/openapi.json" -o "$fresh/schema.d.ts" --alphabetize >/dev/null)

if [ "${1:-}" = "--check" ]; then
    if diff -u "$client/openapi.json" "$fresh/openapi.json" && diff -u "$client/src/schema.d.ts" "$fresh/schema.d.ts"; then
        echo "The typed client is up to date with the service's OpenAPI document."
    else
        echo "The typed client is out of date: run 'npm run generate' in clients/typescript and commit." >&2
        exit 1
    fi
else
    cp "$fresh/openapi.json" "$client/openapi.json"
    cp "$fresh/schema.d.ts" "$client/src/schema.d.ts"
    echo "Wrote clients/typescript/openapi.json and clients/typescript/src/schema.d.ts"
fi
