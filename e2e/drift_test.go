package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"mime/quotedprintable"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/notify/smtptest"
)

// The test provider (e2e/testprovider): registry.opentofu.org/gantry-test/files,
// built once per test binary into a filesystem mirror.
var (
	providerOnce   sync.Once
	providerMirror string
	providerErr    error
)

// testProviderConfig builds the test provider and returns a CLI
// configuration file that installs it from a filesystem mirror (for the
// stack's TF_CLI_CONFIG_FILE).
func testProviderConfig(t *testing.T) string {
	t.Helper()
	providerOnce.Do(func() {
		// In the test binary's own directory, removed when it exits.
		dir := filepath.Join(filepath.Dir(gantryBin), "provider")
		pkg := filepath.Join(dir, "mirror", "registry.opentofu.org", "gantry-test", "files", "0.1.0", runtime.GOOS+"_"+runtime.GOARCH)
		if err := os.MkdirAll(pkg, 0o755); err != nil {
			providerErr = err
			return
		}
		start := time.Now()
		build := exec.Command("go", "build", "-o", filepath.Join(pkg, "terraform-provider-files_v0.1.0"), ".")
		build.Dir = filepath.Join(moduleDir, "e2e", "testprovider")
		if out, err := build.CombinedOutput(); err != nil {
			providerErr = fmt.Errorf("building the test provider: %v\n%s", err, out)
			return
		}
		fmt.Fprintf(os.Stderr, "e2e: built the test provider in %s\n", time.Since(start).Round(time.Millisecond))
		providerMirror = filepath.Join(dir, "provider.tfrc")
		cfg := fmt.Sprintf(`provider_installation {
  filesystem_mirror {
    path    = %q
    include = ["registry.opentofu.org/gantry-test/*"]
  }
  direct {
    exclude = ["registry.opentofu.org/gantry-test/*"]
  }
}
`, filepath.Join(dir, "mirror"))
		providerErr = os.WriteFile(providerMirror, []byte(cfg), 0o644)
	})
	if providerErr != nil {
		t.Fatal(providerErr)
	}
	return providerMirror
}

// bucketsConfig manages two buckets (three with extra) and a firewall rule
// of the test provider in var.dir.
func bucketsConfig(logsEnv string, extra bool) string {
	more := ""
	if extra {
		more = `
resource "files_bucket" "extra" {
  name   = "extra"
  public = true
}
`
	}
	return `terraform {
  required_providers {
    files = { source = "gantry-test/files" }
  }
}

variable "dir" { type = string }

provider "files" { dir = var.dir }

resource "files_bucket" "data" {
  name   = "data"
  public = false
  tags   = { team = "data" }
}

resource "files_bucket" "logs" {
  name   = "logs"
  public = false
  tags   = { env = "` + logsEnv + `" }
}

resource "files_firewall_rule" "ssh" {
  name   = "ssh"
  port   = 22
  cidr   = "10.0.0.0/8"
  action = "allow"
}
` + more
}

type bucketFile struct {
	Public bool              `json:"public"`
	Tags   map[string]string `json:"tags"`
}

func readBucket(t *testing.T, dir, name string) (bucketFile, bool) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, name+".json"))
	if os.IsNotExist(err) {
		return bucketFile{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	var b bucketFile
	if err := json.Unmarshal(data, &b); err != nil {
		t.Fatal(err)
	}
	return b, true
}

func writeBucket(t *testing.T, dir, name string, b bucketFile) {
	t.Helper()
	data, _ := json.Marshal(b)
	if err := os.WriteFile(filepath.Join(dir, name+".json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// driftStack creates an autodeploy stack of bucketsConfig whose buckets live
// in a directory of the test, and deploys it.
func driftStack(t *testing.T, s *Server, id string, repo *Repo) string {
	t.Helper()
	bucketDir := t.TempDir()
	s.CreateStack(t, id, repo.URL, "--autodeploy")
	s.MustGantry(t, "stack", "env", "set", "--id", id, "TF_CLI_CONFIG_FILE", testProviderConfig(t))
	s.MustGantry(t, "stack", "env", "set", "--id", id, "TF_VAR_dir", bucketDir)
	r := s.WaitRun(t, s.Deploy(t, id).ID, "FINISHED")
	if r.State != "FINISHED" {
		t.Fatalf("deploy: %s", s.Describe(t, r))
	}
	if b, ok := readBucket(t, bucketDir, "data"); !ok || b.Public {
		t.Fatalf("after the deploy the data bucket is %+v (exists %v)", b, ok)
	}
	return bucketDir
}

// nextDriftRun waits for the first drift detection run of the stack newer
// than after to end, and returns it (not a later one that may have started
// meanwhile: the list is newest first).
func (s *Server) nextDriftRun(t *testing.T, stack, after string) apiv1.Run {
	t.Helper()
	var found apiv1.Run
	if !poll(2*waitTimeout, 200*time.Millisecond, func() bool {
		var runs []apiv1.Run
		s.MustJSON(t, &runs, "run", "list", "--stack", stack)
		next := false
		for _, r := range runs {
			if r.DriftDetection && r.ID > after {
				found, next = r, true
			}
		}
		return next && isTerminal(found.State)
	}) {
		t.Fatalf("no drift detection run of %s after %s ended (last seen %+v)", stack, after, found)
	}
	return found
}

func (s *Server) driftShow(t *testing.T, stack string) apiv1.StackDriftDetail {
	t.Helper()
	var d apiv1.StackDriftDetail
	s.MustJSON(t, &d, "drift", "show", "--stack", stack)
	return d
}

// Real drift end to end: a scheduled drift detection run finds exactly the
// attribute changed behind Gantry's back (and a bucket deleted), not the
// configuration's pending change; Slack-style notification on drift;
// metrics; targeted reconcile; reconcile by the schedule; the next drift
// run is clean and the history keeps when each drift appeared and went.
func TestDriftDetection(t *testing.T) {
	t.Parallel()
	requireSetup(t)
	testProviderConfig(t)
	slack := make(chan map[string]any, 20)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &m); err != nil || r.Method != http.MethodPost {
			http.Error(w, "bad slack message", http.StatusBadRequest)
			return
		}
		slack <- m
	}))
	defer recv.Close()
	smtpSrv := smtptest.Start(t, smtptest.Options{Username: "drift", Password: "drift-smtp-pw-77"})
	s := StartServer(t, ServerConfig{Args: []string{"--schedule-jitter", "0", "--scheduler-interval", "200ms"}})
	// Spacelift's "Slack on drift", from the policy library as it is.
	s.MustGantry(t, "webhook", "create", "--id", "infra-drift", "--slack", "--webhook-url", recv.URL+"/services/T0/B0/X")
	s.MustGantry(t, "policy", "library", "import", "--name", "notify-slack-on-drift", "--space", "root")
	passFile := filepath.Join(t.TempDir(), "smtp-password")
	if err := os.WriteFile(passFile, []byte("drift-smtp-pw-77"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.MustGantry(t, "webhook", "create", "--id", "drift-mail", "--smtp-host", smtpSrv.Host, "--smtp-port", strconv.Itoa(smtpSrv.Port),
		"--smtp-username", "drift", "--smtp-password-file", passFile, "--smtp-ca-file", smtpSrv.CAFile,
		"--from", "gantry@example.com", "--to", "platform@example.com")
	s.createPolicy(t, "mail-on-drift", "NOTIFICATION", `package spacelift

email contains {"endpoint_id": "drift-mail", "subject": sprintf("[drift] %s", [input.run_updated.stack.id]), "body": body} if {
	input.run_updated.run.drift_detection
	input.run_updated.state == "FINISHED"
	count(input.run_updated.run.changes) > 0
	lines := [sprintf("%s %s: %s", [c.entity.address, c.action, concat(",", c.attributes)]) | some c in input.run_updated.run.changes]
	body := concat("\n", sort(lines))
}
`)
	repo := NewRepo(t, map[string]string{"main.tf": bucketsConfig("prod", false)})
	dir := driftStack(t, s, "buckets", repo)

	// A drift check of an untouched stack is clean.
	s.MustGantry(t, "stack", "drift-detection", "set", "--id", "buckets", "--schedule", "*/2 * * * * *")
	var dd apiv1.DriftDetection
	s.MustJSON(t, &dd, "stack", "drift-detection", "show", "--id", "buckets")
	if len(dd.Schedule) != 1 || dd.NextRunAt == nil || dd.Reconcile {
		t.Fatalf("drift-detection show: %+v", dd)
	}
	first := s.nextDriftRun(t, "buckets", "")
	if first.State != "FINISHED" || first.Type != "PROPOSED" || first.TriggeredBy != "gantry/schedules/drift" {
		t.Fatalf("first drift run: %s", s.Describe(t, first))
	}
	// (On a slow machine the next check, due every 2 s, may be done too:
	// run ids sort by time.)
	if d := s.driftShow(t, "buckets"); d.Status != "clean" || d.Drifted != 0 || len(d.Resources) != 0 || d.LastRun < first.ID {
		t.Fatalf("after a clean check by %s: %+v", first.ID, d)
	}

	// Behind Gantry's back: the data bucket goes public, the logs bucket
	// is deleted; and the configuration changes (pending, not drift): the
	// logs bucket's tag, and a new bucket.
	writeBucket(t, dir, "data", bucketFile{Public: true, Tags: map[string]string{"team": "data"}})
	if err := os.Remove(filepath.Join(dir, "logs.json")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rule-ssh.json"), []byte(`{"port": 22, "cidr": "0.0.0.0/0", "action": "allow"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	repo.Commit(t, "logs: staging", map[string]string{"main.tf": bucketsConfig("staging", true)})
	var drifted apiv1.Run
	var d apiv1.StackDriftDetail
	last := first.ID
	if !poll(2*waitTimeout, 0, func() bool {
		drifted = s.nextDriftRun(t, "buckets", last)
		last = drifted.ID
		d = s.driftShow(t, "buckets")
		return d.Drifted == 3
	}) {
		t.Fatalf("no drift found: %+v", d)
	}
	if d.Status != "drifted" || !d.PendingChanges || d.Since == nil || len(d.Resources) != 3 {
		t.Fatalf("drift show: %+v", d)
	}
	data, logs, ssh := d.Resources[0], d.Resources[1], d.Resources[2]
	if ssh.Address != "files_firewall_rule.ssh" || ssh.Action != "changed" || len(ssh.Attributes) != 1 || ssh.Attributes[0].Name != "cidr" ||
		string(ssh.Attributes[0].Before) != `"10.0.0.0/8"` || string(ssh.Attributes[0].After) != `"0.0.0.0/0"` {
		t.Fatalf("firewall rule drift: %+v", ssh)
	}
	if data.Address != "files_bucket.data" || data.Action != "changed" || data.Cloud != "files" || data.Type != "files_bucket" ||
		!strings.HasSuffix(data.Provider, "gantry-test/files") {
		t.Fatalf("data drift: %+v", data)
	}
	if len(data.Attributes) != 1 || data.Attributes[0].Name != "public" || string(data.Attributes[0].Before) != "false" || string(data.Attributes[0].After) != "true" {
		t.Fatalf("data drift attributes (want exactly public false -> true): %+v", data.Attributes)
	}
	if logs.Address != "files_bucket.logs" || logs.Action != "deleted" {
		t.Fatalf("logs drift: %+v", logs)
	}
	for _, r := range d.Resources {
		if strings.Contains(fmt.Sprint(r.Attributes), "staging") {
			t.Fatalf("the configuration change is reported as drift: %+v", r)
		}
	}
	out := s.MustGantry(t, "drift", "show", "--stack", "buckets")
	if !strings.Contains(out, "public: false -> true") || !strings.Contains(out, "files_bucket.logs") {
		t.Errorf("drift show table:\n%s", out)
	}
	var list []apiv1.StackDrift
	s.MustJSON(t, &list, "drift", "list", "--cloud", "files")
	if len(list) != 1 || list[0].Stack != "buckets" || list[0].Status != "drifted" || list[0].Drifted != 3 || list[0].LastCheckedAt == nil {
		t.Fatalf("drift list --cloud files: %+v", list)
	}
	s.MustJSON(t, &list, "drift", "list", "--cloud", "aws")
	if len(list) != 0 {
		t.Fatalf("drift list --cloud aws: %+v", list)
	}
	select {
	case m := <-slack:
		if txt, _ := m["text"].(string); txt != fmt.Sprintf("Drift detected on stack buckets: 3 resource changes (run %s)", drifted.ID) {
			t.Fatalf("slack message %v", m)
		}
	case <-time.After(waitTimeout):
		t.Fatal("no Slack message on drift")
	}
	msgs := smtpSrv.WaitMessages(t, 1, waitTimeout)
	pm, err := mail.ReadMessage(strings.NewReader(msgs[0].Raw))
	if err != nil {
		t.Fatalf("the drift email does not parse: %v\n%s", err, msgs[0].Raw)
	}
	mailBody, _ := io.ReadAll(quotedprintable.NewReader(pm.Body))
	if pm.Header.Get("Subject") != "[drift] buckets" || len(msgs[0].To) != 1 || msgs[0].To[0] != "platform@example.com" || !msgs[0].Secure ||
		!strings.Contains(string(mailBody), "files_bucket.data changed: public") ||
		!strings.Contains(string(mailBody), "files_firewall_rule.ssh changed: cidr") ||
		!strings.Contains(string(mailBody), "files_bucket.logs deleted") {
		t.Fatalf("drift email: %+v\n%s", msgs[0], mailBody)
	}
	metrics := s.metrics(t)
	if !strings.Contains(metrics, `gantry_drifted_resources{cloud="files",space="root",stack="buckets"} 3`) ||
		!strings.Contains(metrics, `gantry_drift_check_age_seconds{space="root",stack="buckets"}`) {
		t.Fatalf("metrics lack the drift:\n%s", grepLines(metrics, "drift"))
	}

	// Reconcile only the logs bucket: a targeted tracked run.
	var rec apiv1.Run
	s.MustJSON(t, &rec, "drift", "reconcile", "--stack", "buckets", "--resource", "files_bucket.logs")
	if rec.Type != "TRACKED" || len(rec.Targets) != 1 || rec.Targets[0] != "files_bucket.logs" {
		t.Fatalf("reconcile run: %+v", rec)
	}
	if rec = s.WaitRun(t, rec.ID, "FINISHED"); rec.State != "FINISHED" {
		t.Fatalf("targeted reconcile: %s", s.Describe(t, rec))
	}
	if b, ok := readBucket(t, dir, "logs"); !ok || b.Tags["env"] != "staging" {
		t.Fatalf("the logs bucket after the targeted reconcile: %+v (exists %v)", b, ok)
	}
	if b, _ := readBucket(t, dir, "data"); !b.Public {
		t.Fatal("the targeted reconcile touched the data bucket")
	}
	if res := s.Gantry(t, "drift", "reconcile", "--stack", "buckets", "--resource", "files_bucket.nope"); res.Code == 0 || !strings.Contains(res.Stderr, "no open drift") {
		t.Fatalf("reconcile of a resource without drift: %s", res)
	}
	if !poll(2*waitTimeout, 0, func() bool {
		last = s.nextDriftRun(t, "buckets", last).ID
		d = s.driftShow(t, "buckets")
		return d.Drifted == 2
	}) {
		t.Fatalf("after the targeted reconcile: %+v", d)
	}
	if d.Resources[0].Address != "files_bucket.data" || !d.PendingChanges || len(d.History) != 1 || d.History[0].Address != "files_bucket.logs" ||
		d.History[0].ResolvedAt == nil || d.History[0].ResolvedRun != last {
		t.Fatalf("after the targeted reconcile: %+v", d)
	}

	// The schedule reconciles: a tracked run puts the data bucket back,
	// and the next drift run is clean.
	s.MustGantry(t, "stack", "drift-detection", "set", "--id", "buckets", "--schedule", "*/2 * * * * *", "--reconcile")
	var reconcile apiv1.Run
	if !poll(2*waitTimeout, 200*time.Millisecond, func() bool {
		var runs []apiv1.Run
		s.MustJSON(t, &runs, "run", "list", "--stack", "buckets", "--type", "TRACKED")
		for _, r := range runs {
			if r.TriggeredBy == "gantry/schedules/drift" {
				reconcile = r
				return true
			}
		}
		return false
	}) {
		t.Fatal("no reconciliation run")
	}
	if reconcile = s.WaitRun(t, reconcile.ID, "FINISHED"); reconcile.State != "FINISHED" {
		t.Fatalf("reconciliation run: %s", s.Describe(t, reconcile))
	}
	if b, _ := readBucket(t, dir, "data"); b.Public {
		t.Fatal("the reconciliation run did not put the data bucket back")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "rule-ssh.json")); !strings.Contains(string(b), "10.0.0.0/8") {
		t.Fatalf("the reconciliation run did not put the firewall rule back: %s", b)
	}
	if _, ok := readBucket(t, dir, "extra"); !ok {
		t.Fatal("the reconciliation run did not apply the configuration")
	}
	if !poll(2*waitTimeout, 0, func() bool {
		r := s.nextDriftRun(t, "buckets", reconcile.ID)
		last = r.ID
		d = s.driftShow(t, "buckets")
		return r.State == "FINISHED" && d.LastRun == r.ID
	}) {
		t.Fatalf("no drift run after the reconciliation: %+v", d)
	}
	if d.Status != "clean" || d.Drifted != 0 || len(d.History) != 3 || d.Since != nil || d.PendingChanges {
		t.Fatalf("after the reconciliation: %+v", d)
	}
	metrics = s.metrics(t)
	if !strings.Contains(metrics, `gantry_drifted_resources{cloud="files",space="root",stack="buckets"} 0`) {
		t.Fatalf("metrics after the reconciliation:\n%s", grepLines(metrics, "drift"))
	}
	// Changing the schedule is audited.
	var events []apiv1.AuditEvent
	s.MustJSON(t, &events, "audit", "list", "--action", "stack.drift_detection.set")
	if len(events) < 2 {
		t.Fatalf("audit events of drift detection changes: %+v", events)
	}
}

func (s *Server) metrics(t *testing.T) string {
	t.Helper()
	resp, err := http.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// Drift detection skips a stack whose last tracked run failed, with a
// note, unless ignore-state; it never queues a second drift run while one
// has not ended.
func TestDriftSkipsFailedStack(t *testing.T) {
	t.Parallel()
	requireSetup(t)
	s := StartServer(t, ServerConfig{Args: []string{"--schedule-jitter", "0", "--scheduler-interval", "200ms"}})
	repo := NewRepo(t, map[string]string{"main.tf": `resource "terraform_data" "x" { input = 1 }
resource "terraform_data" "fail" {
  provisioner "local-exec" { command = "exit 3" }
}
`})
	s.CreateStack(t, "broken", repo.URL, "--autodeploy")
	if r := s.WaitRun(t, s.Deploy(t, "broken").ID, "FAILED"); r.State != "FAILED" {
		t.Fatalf("deploy: %s", s.Describe(t, r))
	}
	s.MustGantry(t, "stack", "drift-detection", "set", "--id", "broken", "--schedule", "* * * * * *")
	var dd apiv1.DriftDetection
	if !poll(waitTimeout, 200*time.Millisecond, func() bool {
		s.MustJSON(t, &dd, "stack", "drift-detection", "show", "--id", "broken")
		return dd.LastDue != nil
	}) {
		t.Fatal("the schedule never came due")
	}
	if !strings.Contains(dd.LastNote, "FAILED") || dd.LastRun != "" {
		t.Fatalf("drift detection on a failed stack: %+v", dd)
	}
	var runs []apiv1.Run
	s.MustJSON(t, &runs, "run", "list", "--stack", "broken")
	for _, r := range runs {
		if r.DriftDetection {
			t.Fatalf("a drift run was queued on a failed stack: %+v", r)
		}
	}
	s.MustGantry(t, "stack", "drift-detection", "set", "--id", "broken", "--schedule", "* * * * * *", "--ignore-state")
	r := s.nextDriftRun(t, "broken", "")
	if r.State != "FINISHED" {
		t.Fatalf("drift run with ignore-state: %s", s.Describe(t, r))
	}
	// The plan shows the failed resource still to create: pending
	// changes, no drift.
	if d := s.driftShow(t, "broken"); d.Status != "clean" || !d.PendingChanges {
		t.Fatalf("drift show: %+v", d)
	}
}

// Two servers on one PostgreSQL database queue one run per due time, and
// a due time missed while no server ran is run once after a restart.
func TestSchedulerSingleOnPostgres(t *testing.T) {
	t.Parallel()
	requireSetup(t)
	dbURL := dbtest.PostgresURL(t)
	token := randomHex(t, 24)
	key := randomHex(t, 32)
	cfg := ServerConfig{DBURL: dbURL, Token: token, Args: []string{"--builtin-workers", "0", "--schedule-jitter", "0",
		"--scheduler-interval", "100ms"}, Env: []string{"GANTRY_ENCRYPTION_KEY=" + key}}
	a := StartServer(t, cfg)
	b := StartServer(t, cfg)
	repo := NewRepo(t, map[string]string{"main.tf": staticConfig("v1")})
	a.CreateStack(t, "sched", repo.URL)
	// A scheduled tracked run every 2 seconds: runs queue behind each
	// other (no worker), so every due time shows.
	a.MustGantry(t, "stack", "schedule", "run", "--id", "sched", "--cron", "*/2 * * * * *")
	time.Sleep(9 * time.Second)
	var runs []apiv1.Run
	b.MustJSON(t, &runs, "run", "list", "--stack", "sched")
	seen := map[string]string{}
	for _, r := range runs {
		full := b.ShowRun(t, r.ID)
		reason := full.Transitions[0].Reason
		if other, dup := seen[reason]; dup {
			t.Fatalf("runs %s and %s for one due time (%s)", other, r.ID, reason)
		}
		seen[reason] = r.ID
		if r.TriggeredBy != "gantry/schedules/run" {
			t.Fatalf("run %+v", r)
		}
	}
	if len(runs) < 3 || len(runs) > 5 {
		t.Fatalf("%d runs in 9 s of a schedule every 2 s, want 4 or 5: %v", len(runs), seen)
	}
	// One server leads.
	leads := strings.Count(a.Log(), "this server schedules") + strings.Count(b.Log(), "this server schedules")
	if leads != 1 {
		t.Fatalf("%d servers say they schedule", leads)
	}
	// One drift detection run for one due time, whichever server fires it.
	a.CreateStack(t, "sched-drift", repo.URL)
	driftDue := time.Now().UTC().Add(3 * time.Second).Truncate(time.Second)
	a.MustGantry(t, "stack", "drift-detection", "set", "--id", "sched-drift", "--ignore-state",
		"--schedule", fmt.Sprintf("%d %d %d * * *", driftDue.Second(), driftDue.Minute(), driftDue.Hour()))
	time.Sleep(time.Until(driftDue.Add(2 * time.Second)))
	var driftRuns []apiv1.Run
	b.MustJSON(t, &driftRuns, "run", "list", "--stack", "sched-drift")
	if len(driftRuns) != 1 || !driftRuns[0].DriftDetection || driftRuns[0].TriggeredBy != "gantry/schedules/drift" {
		t.Fatalf("drift runs for one due time on two servers: %+v", driftRuns)
	}

	// A due time while both are down runs once at restart.
	var sc apiv1.Schedule
	due := time.Now().UTC().Add(6 * time.Second).Truncate(time.Second)
	cron := fmt.Sprintf("%d %d %d * * *", due.Second(), due.Minute(), due.Hour())
	a.MustJSON(t, &sc, "stack", "schedule", "task", "--id", "sched", "--cron", cron, "--", "echo", "once")
	a.Stop(t)
	b.Stop(t)
	time.Sleep(time.Until(due.Add(2 * time.Second)))
	c := StartServer(t, cfg)
	var tasks []apiv1.Run
	if !poll(waitTimeout, 200*time.Millisecond, func() bool {
		c.MustJSON(t, &tasks, "run", "list", "--stack", "sched", "--type", "TASK")
		return len(tasks) > 0
	}) {
		t.Fatal("the missed due time was not run after the restart")
	}
	time.Sleep(2 * time.Second)
	c.MustJSON(t, &tasks, "run", "list", "--stack", "sched", "--type", "TASK")
	if len(tasks) != 1 || tasks[0].Command != "echo once" || tasks[0].TriggeredBy != "gantry/schedules/task" {
		t.Fatalf("after the restart: %+v", tasks)
	}
	var list []apiv1.Schedule
	c.MustJSON(t, &list, "stack", "schedule", "list", "--id", "sched")
	for _, x := range list {
		if x.ID == sc.ID && (x.LastRun != tasks[0].ID || x.NextRunAt == nil || !x.NextRunAt.After(due.Add(23*time.Hour))) {
			t.Fatalf("the task schedule after the restart: %+v", x)
		}
	}
}

// A scheduled delete destroys the stack's resources (confirming the
// destroy run itself) and then deletes the stack.
func TestScheduledDelete(t *testing.T) {
	t.Parallel()
	requireSetup(t)
	s := StartServer(t, ServerConfig{Args: []string{"--scheduler-interval", "200ms"}})
	repo := NewRepo(t, map[string]string{"main.tf": staticConfig("v1")})
	s.CreateStack(t, "doomed", repo.URL)
	r := s.Deploy(t, "doomed")
	s.WaitRun(t, r.ID, "UNCONFIRMED")
	s.MustGantry(t, "stack", "confirm", "--id", "doomed", "--run", r.ID)
	if r = s.WaitRun(t, r.ID, "FINISHED"); r.State != "FINISHED" {
		t.Fatalf("deploy: %s", s.Describe(t, r))
	}
	if res := s.Gantry(t, "stack", "schedule", "delete", "--id", "doomed", "--at", "tomorrow"); res.Code == 0 {
		t.Fatalf("a delete at %q was accepted: %s", "tomorrow", res)
	}
	at := time.Now().UTC().Add(2 * time.Second).Format(time.RFC3339)
	var sc apiv1.Schedule
	s.MustJSON(t, &sc, "stack", "schedule", "delete", "--id", "doomed", "--at", at)
	if sc.Kind != "delete" || !sc.DeleteResources || sc.Status != "active" {
		t.Fatalf("scheduled delete: %+v", sc)
	}
	if res := s.Gantry(t, "stack", "schedule", "delete", "--id", "doomed", "--at", at); res.Code == 0 || !strings.Contains(res.Stderr, "already has a scheduled delete") {
		t.Fatalf("a second scheduled delete: %s", res)
	}
	// The destroy run, seen while the stack exists (a fast machine may
	// destroy and delete between two looks: the trail names it then).
	var destroy apiv1.Run
	if !poll(waitTimeout, 200*time.Millisecond, func() bool {
		var runs []apiv1.Run
		if res := s.GantryJSON(t, &runs, "run", "list", "--stack", "doomed", "--type", "DESTROY"); res.Code == 0 && len(runs) == 1 {
			destroy = runs[0]
			return true
		}
		return s.Gantry(t, "stack", "show", "--id", "doomed").Code != 0
	}) {
		t.Fatal("no destroy run")
	}
	if destroy.ID != "" && destroy.TriggeredBy != "gantry/schedules/delete" {
		t.Fatalf("destroy run: %+v", destroy)
	}
	if !poll(waitTimeout, 200*time.Millisecond, func() bool {
		return s.Gantry(t, "stack", "show", "--id", "doomed").Code != 0
	}) {
		t.Fatalf("the stack was not deleted; destroy run %s", s.Describe(t, s.GetRun(t, destroy.ID)))
	}
	var triggers []apiv1.AuditEvent
	s.MustJSON(t, &triggers, "audit", "list", "--action", "run.trigger")
	destroyID := ""
	for _, e := range triggers {
		if c := string(e.Change); strings.Contains(c, `"DESTROY"`) && strings.Contains(c, `"gantry/schedules/delete"`) {
			destroyID = e.SubjectID
		}
	}
	if destroyID == "" || (destroy.ID != "" && destroyID != destroy.ID) {
		t.Fatalf("the trail's destroy run %q, seen %q: %+v", destroyID, destroy.ID, triggers)
	}
	destroy.ID = destroyID
	var events []apiv1.AuditEvent
	s.MustJSON(t, &events, "audit", "list", "--action", "stack.delete")
	if len(events) != 1 || events[0].Actor != "gantry/schedules" || events[0].SubjectID != "doomed" {
		t.Fatalf("audit of the scheduled delete: %+v", events)
	}
	events = nil
	s.MustJSON(t, &events, "audit", "list", "--action", "run.confirm")
	found := false
	for _, e := range events {
		found = found || e.SubjectID == destroy.ID
	}
	if !found {
		t.Fatalf("the destroy run's confirmation is not audited: %+v", events)
	}
}
