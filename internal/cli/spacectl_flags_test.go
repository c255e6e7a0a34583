package cli

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// spacectl's flags that mean what a Gantry flag means are accepted.
func TestSpacectlFlags(t *testing.T) {
	finished := run("FINISHED")
	tests := []struct {
		name     string
		args     []string
		routes   map[string]route
		wantCode int
		wantReqs []string // in this order among the requests; nil: not checked
		wantOut  []string
		notOut   []string
		wantErr  []string
	}{
		{
			name: "deploy --tail prints the log to the end",
			args: []string{"stack", "deploy", "--id", "net", "--tail"},
			routes: map[string]route{
				"POST /api/v1/stacks/net/runs": status(201, queued),
				"GET /api/v1/runs/run-1/logs": seq(
					apiv1.LogChunk{Offset: 0, NextOffset: 5, Data: "plan\n"},
					apiv1.LogChunk{Offset: 5, NextOffset: 11, Data: "apply\n", Done: true},
					apiv1.LogChunk{Offset: 11, NextOffset: 11, Done: true},
				),
				"GET /api/v1/runs/run-1": ok(finished),
			},
			wantReqs: []string{`POST /api/v1/stacks/net/runs {"type":"TRACKED"}`, "GET /api/v1/runs/run-1/logs?offset=0&wait=20",
				"GET /api/v1/runs/run-1/logs?offset=5&wait=20", "GET /api/v1/runs/run-1/logs?offset=11", "GET /api/v1/runs/run-1"},
			wantOut: []string{"plan\napply\n"},
			notOut:  []string{"QUEUED"},
			wantErr: []string{"run-1 QUEUED", "run-1 FINISHED"},
		},
		{
			name: "task --tail fails when the run failed",
			args: []string{"stack", "task", "--id", "net", "--tail", "--", "false"},
			routes: map[string]route{
				"POST /api/v1/stacks/net/tasks": status(201, queued),
				"GET /api/v1/runs/run-1/logs":   ok(apiv1.LogChunk{Offset: 0, NextOffset: 0, Done: true}),
				"GET /api/v1/runs/run-1":        ok(run("FAILED")),
			},
			wantCode: 1,
			wantErr:  []string{"Error: run run-1 ended FAILED"},
		},
		{
			name: "run retry --tail",
			args: []string{"run", "retry", "--id", "run-0", "--tail"},
			routes: map[string]route{
				"POST /api/v1/runs/run-0/retry": status(201, queued),
				"GET /api/v1/runs/run-1/logs":   ok(apiv1.LogChunk{Offset: 0, NextOffset: 0, Done: true}),
				"GET /api/v1/runs/run-1":        ok(finished),
			},
			wantReqs: []string{"POST /api/v1/runs/run-0/retry", "GET /api/v1/runs/run-1"},
		},
		{
			name: "deploy --auto-confirm confirms the run and prints its log",
			args: []string{"stack", "deploy", "--id", "net", "--auto-confirm"},
			routes: map[string]route{
				"POST /api/v1/stacks/net/runs":    status(201, queued),
				"GET /api/v1/runs/run-1":          seq(run("PLANNING"), run("UNCONFIRMED"), finished),
				"POST /api/v1/runs/run-1/confirm": ok(run("CONFIRMED")),
				"GET /api/v1/runs/run-1/logs":     ok(apiv1.LogChunk{Offset: 0, NextOffset: 0, Done: true}),
			},
			wantReqs: []string{`POST /api/v1/stacks/net/runs {"type":"TRACKED"}`, "GET /api/v1/runs/run-1", "GET /api/v1/runs/run-1",
				"POST /api/v1/runs/run-1/confirm", "GET /api/v1/runs/run-1"},
			wantErr: []string{"run-1 confirmed (--auto-confirm)", "run-1 FINISHED"},
		},
		{
			name:     "--wait and --tail cannot be combined",
			args:     []string{"stack", "deploy", "--id", "net", "--wait", "--tail"},
			wantCode: 2,
			wantReqs: []string{},
			wantErr:  []string{"--wait and --tail cannot be combined"},
		},
		{
			name: "logs --run-latest",
			args: []string{"stack", "logs", "--id", "net", "--run-latest"},
			routes: map[string]route{
				"GET /api/v1/runs": ok(apiv1.List[apiv1.Run]{Items: []apiv1.Run{run("FINISHED")}}),
				"GET /api/v1/runs/run-1/logs": seq(
					apiv1.LogChunk{Offset: 0, NextOffset: 5, Data: "init\n"},
					apiv1.LogChunk{Offset: 5, NextOffset: 5},
				),
			},
			wantReqs: []string{"GET /api/v1/runs?limit=1&stack=net", "GET /api/v1/runs/run-1/logs?offset=0", "GET /api/v1/runs/run-1/logs?offset=5"},
			wantOut:  []string{"init\n"},
			wantErr:  []string{"Using the latest run, run-1"},
		},
		{
			name:     "logs --run-latest of a stack without runs",
			args:     []string{"stack", "logs", "--id", "net", "--run-latest"},
			routes:   map[string]route{"GET /api/v1/runs": ok(apiv1.List[apiv1.Run]{})},
			wantCode: 1,
			wantErr:  []string{`stack "net" has no runs`},
		},
		{
			name:     "logs needs --run or --run-latest",
			args:     []string{"stack", "logs", "--id", "net"},
			wantCode: 2,
			wantReqs: []string{},
			wantErr:  []string{"give the run: --run RUN, or --run-latest", "Usage:"},
		},
		{
			name:     "logs takes --run or --run-latest, not both",
			args:     []string{"stack", "logs", "--id", "net", "--run", "run-1", "--run-latest"},
			wantCode: 2,
			wantReqs: []string{},
			wantErr:  []string{"--run and --run-latest cannot be combined"},
		},
		{
			name:     "env set --write-only is --secret",
			args:     []string{"stack", "env", "set", "--id", "net", "TF_VAR_pw", "s3cret", "--write-only"},
			routes:   map[string]route{"PUT /api/v1/stacks/net/env/TF_VAR_pw": ok(secret)},
			wantReqs: []string{`PUT /api/v1/stacks/net/env/TF_VAR_pw {"value":"s3cret","secret":true}`},
			notOut:   []string{"s3cret"},
		},
		{
			name:     "outputs --output-id",
			args:     []string{"stack", "outputs", "--id", "net", "--output-id", "vpc_id", "-o", "json"},
			routes:   map[string]route{"GET /api/v1/stacks/net/outputs": ok(outputs)},
			wantReqs: []string{"GET /api/v1/stacks/net/outputs"},
			wantOut:  []string{`"vpc-123"`},
			notOut:   []string{"password", "subnets"},
		},
		{
			name:     "outputs --output-id of no output",
			args:     []string{"stack", "outputs", "--id", "net", "--output-id", "nope"},
			routes:   map[string]route{"GET /api/v1/stacks/net/outputs": ok(outputs)},
			wantCode: 1,
			wantErr:  []string{`stack "net" has no output "nope"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolate(t)
			api := newFake(t, tt.routes)
			code, out, errOut := runMain(append([]string{"--url", api.srv.URL, "--token", "tok"}, tt.args...)...)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, out, errOut)
			}
			if tt.wantReqs != nil {
				got := api.requests()
				if len(tt.wantReqs) == 0 && len(got) > 0 {
					t.Errorf("requests %q, want none", got)
				}
				rest := got
				for _, w := range tt.wantReqs {
					i := slices.Index(rest, w)
					if i < 0 {
						t.Errorf("requests %q lack %q (in order %q)", got, w, tt.wantReqs)
						break
					}
					rest = rest[i+1:]
				}
			}
			for _, s := range tt.wantOut {
				if !strings.Contains(out, s) {
					t.Errorf("stdout lacks %q:\n%s", s, out)
				}
			}
			for _, s := range tt.notOut {
				if strings.Contains(out, s) {
					t.Errorf("stdout has %q:\n%s", s, out)
				}
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(errOut, s) {
					t.Errorf("stderr lacks %q:\n%s", s, errOut)
				}
			}
		})
	}
}

// The JSON of outputs --output-id is the outputs' array, of the one output.
func TestOutputsOutputIDJSON(t *testing.T) {
	isolate(t)
	api := newFake(t, map[string]route{"GET /api/v1/stacks/net/outputs": ok(outputs)})
	code, out, errOut := runMain("--url", api.srv.URL, "--token", "tok", "stack", "outputs", "--id", "net", "--output-id", "vpc_id", "-o", "json")
	var got []apiv1.Output
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil || len(got) != 1 || got[0].Name != "vpc_id" {
		t.Errorf("exit %d, %q: %v\n%s", code, out, got, errOut)
	}
}
