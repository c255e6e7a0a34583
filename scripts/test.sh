#!/usr/bin/env bash
# test.sh: run every test of Gantry on a fresh machine (unit, store tests on
# SQLite and a throwaway PostgreSQL, protocol tests, end-to-end tests of the
# real binary with real OpenTofu).
set -euo pipefail
cd "$(dirname "$0")/.."

tofu="$(scripts/ensure-deps.sh)"
export GANTRY_TEST_TOFU="$tofu"
echo "Using OpenTofu at $tofu"

# The test OpenID Provider (the npm package oidc-provider) for the SSO tests.
npm ci --prefix e2e/oidcprovider --no-audit --no-fund --loglevel=error
# The test SMTP server (the npm package smtp-server) for the email tests.
npm ci --prefix e2e/smtpserver --no-audit --no-fund --loglevel=error

unformatted="$(gofmt -l cmd internal e2e examples)"
if [[ -n "$unformatted" ]]; then
	echo "gofmt needed on:"; echo "$unformatted"; exit 1
fi
go vet ./...
go test -count=1 -timeout 25m "$@" ./...
