// Package e2e holds Gantry's end-to-end tests: they build the real gantry
// binary, start `gantry server` processes with built-in workers running the
// real OpenTofu, and drive them through the CLI against real local git
// repositories, on SQLite and on PostgreSQL.
//
// OpenTofu comes from GANTRY_TEST_TOFU (a path to the binary) or else from
// scripts/ensure-tofu.sh, which builds and caches it on first use. PostgreSQL
// comes from internal/db/dbtest (a throwaway cluster, or GANTRY_TEST_PG_URL).
// `go test -short` skips these tests.
package e2e
