package api_test

import (
	"testing"

	"github.com/gantry-iac/gantry/internal/db/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }
