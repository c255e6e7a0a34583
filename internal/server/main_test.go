package server_test

import (
	"testing"

	"github.com/gantry-iac/gantry/internal/db/dbtest"
)

// TestMain stops the PostgreSQL cluster that tests using dbtest start.
func TestMain(m *testing.M) { dbtest.Main(m) }
