package engine_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/gantry-iac/gantry/internal/policy/engine"
)

// bombPolicy builds a string 16 times longer at each rule: s7 would be
// 8 GiB.
func bombPolicy() string {
	var b strings.Builder
	b.WriteString("package spacelift\n\ns0 := \"" + strings.Repeat("x", 32) + "\"\n")
	for i := 1; i <= 7; i++ {
		prev := fmt.Sprintf("s%d", i-1)
		fmt.Fprintf(&b, "s%d := concat(\"\", [%s])\n", i, strings.TrimSuffix(strings.Repeat(prev+", ", 16), ", "))
	}
	b.WriteString("deny contains \"bomb\" if count(s7) > 0\n")
	return b.String()
}

const bombEnv = "GANTRY_TEST_POLICY_BOMB"

// A policy building a value of gigabytes fails with a clear error, denying,
// long before the process runs out of memory. The evaluation runs in a
// child process whose address space is limited to 3 GiB: without the
// limits of the engine it dies there ("fatal error: out of memory"), not
// on the test machine.
func TestMemoryBombFailsClosed(t *testing.T) {
	if os.Getenv(bombEnv) == "1" {
		evalBomb(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestMemoryBombFailsClosed$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), bombEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestMemoryBombFailsClosed") {
		t.Fatalf("the evaluating process: %v\n%.3000s", err, out)
	}
}

func evalBomb(t *testing.T) {
	limit := uint64(3 << 30)
	if err := syscall.Setrlimit(syscall.RLIMIT_AS, &syscall.Rlimit{Cur: limit, Max: limit}); err != nil {
		t.Skipf("cannot limit the address space: %v", err)
	}
	p, err := engine.Compile(engine.Source{Name: "bomb.rego", Type: engine.TypePlan, Body: bombPolicy()})
	if err != nil {
		t.Fatal(err)
	}
	in, err := engine.NewInput(map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	res, err := p.Eval(context.Background(), in)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, engine.ErrTooLarge) ||
		!strings.Contains(err.Error(), "bomb.rego:8: eval_builtin_error: concat: result over 16 MiB (the most one built-in call may return)") {
		t.Fatalf("err = %v, decision %+v", err, res.Decision)
	}
	if res.Values != nil {
		t.Errorf("values kept: %d", len(res.Values))
	}
	// s4 (2 MiB) was built, s5 (32 MiB) was refused before it was.
	if n := after.TotalAlloc - before.TotalAlloc; n > 64<<20 {
		t.Errorf("the evaluation allocated %d MiB", n>>20)
	}
}
