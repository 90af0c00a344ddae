#!/usr/bin/env bash
# Builds the project with Vercel's own builder, offline, into .vercel/output/ (docs/vercel.md).
# No account, no token, no network: a hand-written .vercel/project.json with a `settings` object
# keeps the CLI from asking Vercel's API for the project, and VERCEL_INSTALL_COMPLETED=1 keeps it
# from running its own `npm install`. Fails on a non-zero exit and on any `error TS` in the log
# (tsconfig's noEmitOnError already makes @vercel/node fail; the grep is the second lock).
set -euo pipefail
cd "$(dirname "$0")/.."

cli=node_modules/.bin/vercel
if [ ! -x "$cli" ]; then
  echo "vercel-build: $cli is missing: run \`npm ci\` first (vercel is a pinned devDependency)" >&2
  exit 1
fi

# Throwaway project link. nodeVersion 24.x: Vercel no longer builds for Node 20 (discontinued
# 2026-10-01), whatever Node runs this script.
rm -rf .vercel/output
mkdir -p .vercel
cat > .vercel/project.json <<'EOF'
{"projectId":"prj_local_build","orgId":"team_local_build","settings":{"framework":null,"buildCommand":null,"outputDirectory":null,"installCommand":null,"devCommand":null,"rootDirectory":null,"nodeVersion":"24.x"}}
EOF

log=.vercel/build.log
started=$(date +%s%N)
set +e
# NO_UPDATE_NOTIFIER: no registry look-up for a newer CLI (the pin is deliberate, see docs/vercel.md)
VERCEL_TELEMETRY_DISABLED=1 VERCEL_INSTALL_COMPLETED=1 NO_UPDATE_NOTIFIER=1 "$cli" build --yes 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
elapsed_ms=$(( ($(date +%s%N) - started) / 1000000 ))

if [ "$rc" -ne 0 ]; then
  echo "vercel-build: FAILED, vercel build exited with $rc after ${elapsed_ms} ms (log: $log)" >&2
  exit "$rc"
fi
if grep -q 'error TS[0-9]' "$log"; then
  echo "vercel-build: FAILED, the build log has TypeScript errors:" >&2
  grep 'error TS[0-9]' "$log" >&2
  exit 1
fi
if [ ! -f .vercel/output/config.json ]; then
  echo "vercel-build: FAILED, no .vercel/output/config.json was written" >&2
  exit 1
fi
echo "vercel-build: OK in ${elapsed_ms} ms ($(find .vercel/output/functions -name '*.func' -type d | wc -l) functions in .vercel/output/)"
