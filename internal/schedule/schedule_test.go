package schedule

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/id"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func TestParse(t *testing.T) {
	from := utc("2025-01-15T10:20:30Z") // a Wednesday
	for _, tc := range []struct {
		crons []string
		tz    string
		next  string // the first due time after from, UTC
	}{
		{[]string{"0 * * * *"}, "", "2025-01-15T11:00:00Z"},
		{[]string{"*/15 * * * *"}, "UTC", "2025-01-15T10:30:00Z"},
		{[]string{"0 9 * * 1-5"}, "", "2025-01-16T09:00:00Z"},
		{[]string{"  0 9 * * 1-5  "}, "", "2025-01-16T09:00:00Z"},
		// Six fields: seconds first.
		{[]string{"*/20 * * * * *"}, "", "2025-01-15T10:20:40Z"},
		{[]string{"15 30 10 * * *"}, "", "2025-01-15T10:30:15Z"},
		{[]string{"@hourly"}, "", "2025-01-15T11:00:00Z"},
		{[]string{"@daily"}, "", "2025-01-16T00:00:00Z"},
		{[]string{"@midnight"}, "", "2025-01-16T00:00:00Z"},
		{[]string{"@weekly"}, "", "2025-01-19T00:00:00Z"}, // Sunday
		{[]string{"@monthly"}, "", "2025-02-01T00:00:00Z"},
		{[]string{"@yearly"}, "", "2026-01-01T00:00:00Z"},
		{[]string{"@annually"}, "", "2026-01-01T00:00:00Z"},
		// In a time zone: 09:00 in Tokyo (UTC+9, no DST) is 00:00 UTC.
		{[]string{"0 9 * * *"}, "Asia/Tokyo", "2025-01-16T00:00:00Z"},
		{[]string{"@daily"}, "America/New_York", "2025-01-16T05:00:00Z"},
		// Several expressions: the earliest wins, whatever the order.
		{[]string{"0 12 * * *", "45 10 * * *", "0 0 1 1 *"}, "", "2025-01-15T10:45:00Z"},
		{[]string{"0 0 1 1 *", "0 11 * * *"}, "", "2025-01-15T11:00:00Z"},
		{[]string{"0 9 * * 5", "0 9 * * 4"}, "", "2025-01-16T09:00:00Z"},
	} {
		t.Run(strings.Join(tc.crons, "|")+" "+tc.tz, func(t *testing.T) {
			sp, err := Parse(tc.crons, tc.tz)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got := sp.Next(from)
			if want := utc(tc.next); !got.Equal(want) {
				t.Fatalf("Next(%s) = %s, want %s", from, got, want)
			}
			if got.Location() != time.UTC {
				t.Errorf("Next returned a time in %s, want UTC", got.Location())
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	many := make([]string, MaxCrons+1)
	for i := range many {
		many[i] = fmt.Sprintf("%d * * * *", i)
	}
	for _, tc := range []struct {
		name  string
		crons []string
		tz    string
		want  string // in the message
	}{
		{"none", nil, "", "at least one"},
		{"empty list", []string{}, "", "at least one"},
		{"more than 20", many, "", "at most 20"},
		{"@every", []string{"@every 5m"}, "", "@every"},
		{"@every in a list", []string{"0 * * * *", "@every 1h"}, "", "@every"},
		// The message names every form Parse takes.
		{"@every: six fields", []string{"@every 1m"}, "", "six fields with seconds first"},
		{"@every: @midnight", []string{"@every 1m"}, "", "@daily, @midnight,"},
		{"CRON_TZ", []string{"CRON_TZ=Europe/Berlin 0 2 * * *"}, "", "--timezone"},
		{"TZ", []string{"TZ=UTC 0 2 * * *"}, "", "--timezone"},
		{"empty expression", []string{""}, "", "cron expression"},
		{"too few fields", []string{"* * *"}, "", "cron expression"},
		{"seven fields", []string{"0 0 0 * * * *"}, "", "cron expression"},
		{"minute 60", []string{"60 * * * *"}, "", "cron expression"},
		{"hour 24", []string{"0 24 * * *"}, "", "cron expression"},
		{"words", []string{"every day at noon"}, "", "cron expression"},
		{"bad descriptor", []string{"@fortnightly"}, "", "cron expression"},
		{"unknown zone", []string{"0 * * * *"}, "Mars/Olympus_Mons", "unknown time zone"},
		{"path zone", []string{"0 * * * *"}, "/etc/localtime", "unknown time zone"},
		{"dot-dot zone", []string{"0 * * * *"}, "../../etc/passwd", "unknown time zone"},
		{"30 February", []string{"0 0 30 2 *"}, "", "matches no date"},
		{"31 April in a list", []string{"0 * * * *", "0 0 31 4 *"}, "", "matches no date"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp, err := Parse(tc.crons, tc.tz)
			if err == nil {
				t.Fatalf("Parse(%q, %q) = %v, want an error", tc.crons, tc.tz, sp)
			}
			if !errs.Is(err, errs.Invalid) {
				t.Errorf("error kind %s, want %s: %v", errs.KindOf(err), errs.Invalid, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}
	if _, err := Parse(many[:MaxCrons], ""); err != nil {
		t.Errorf("Parse of %d expressions: %v, want it accepted", MaxCrons, err)
	}
}

// berlin2am is a daily schedule at 02:00 in Berlin: 01:00 UTC in winter
// (CET), 00:00 UTC in summer (CEST). In 2025 summer time starts on Sunday
// 30 March (02:00 CET becomes 03:00 CEST, so 02:00 does not exist that
// day) and ends on Sunday 26 October (03:00 CEST becomes 02:00 CET, so
// 02:00 happens twice).
func berlin2am(t *testing.T) *Spec {
	t.Helper()
	sp, err := Parse([]string{"0 2 * * *"}, "Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

// dues lists the due times of sp after from, up to and including until.
func dues(sp *Spec, from, until time.Time) []time.Time {
	var out []time.Time
	for t := sp.Next(from); !t.IsZero() && !t.After(until); t = sp.Next(t) {
		out = append(out, t)
	}
	return out
}

// A leap day is rare but comes: it is due, not refused.
func TestLeapDayIsDue(t *testing.T) {
	sp, err := Parse([]string{"0 6 29 2 *"}, "UTC")
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	due, run := sp.Due("s", from, time.Minute)
	if want := time.Date(2028, 2, 29, 6, 0, 0, 0, time.UTC); !due.Equal(want) {
		t.Errorf("due = %v, want %v", due, want)
	}
	if run.Before(due) || run.Sub(due) >= time.Minute {
		t.Errorf("run = %v, want within a minute after %v", run, due)
	}
}

func TestNextFollowsTheTimeZoneAcrossDST(t *testing.T) {
	sp := berlin2am(t)
	for _, tc := range []struct{ from, want string }{
		{"2025-03-28T12:00:00Z", "2025-03-29T01:00:00Z"}, // Saturday before: CET
		{"2025-03-30T12:00:00Z", "2025-03-31T00:00:00Z"}, // Monday after: CEST
		{"2025-07-01T00:30:00Z", "2025-07-02T00:00:00Z"}, // summer, just after the due time
		{"2025-10-24T12:00:00Z", "2025-10-25T00:00:00Z"}, // Saturday before: CEST
		{"2025-10-26T12:00:00Z", "2025-10-27T01:00:00Z"}, // Monday after: CET
		{"2025-12-31T23:00:00Z", "2026-01-01T01:00:00Z"}, // winter, across the year
	} {
		if got := sp.Next(utc(tc.from)); !got.Equal(utc(tc.want)) {
			t.Errorf("Next(%s) = %s, want %s", tc.from, got, tc.want)
		}
	}
	// Every due time is 02:00 on the Berlin clock, whatever the offset,
	// but on the day 02:00 does not exist: then 03:00, right after the
	// clocks went forward.
	loc, _ := time.LoadLocation("Europe/Berlin")
	for _, d := range dues(sp, utc("2025-01-01T00:00:00Z"), utc("2026-01-01T00:00:00Z")) {
		l := d.In(loc)
		if l.Format("2006-01-02") == "2025-03-30" {
			if l.Hour() != 3 || l.Minute() != 0 {
				t.Errorf("due time %s is %s in Berlin, want 03:00 CEST on the day the clocks go forward", d, l.Format("15:04 MST"))
			}
			continue
		}
		if l.Hour() != 2 || l.Minute() != 0 {
			t.Errorf("due time %s is %s in Berlin, want 02:00", d, l.Format("15:04 MST"))
		}
	}
}

// A daily schedule is due once on each day of the year, the days the
// clocks change included (as cron(8) does: a time the clocks skip runs
// right after the change, a time they repeat runs once).
func TestNextDailyOnceOnDSTDays(t *testing.T) {
	sp := berlin2am(t)
	loc, _ := time.LoadLocation("Europe/Berlin")
	for _, day := range []string{"2025-03-30", "2025-10-26"} {
		start, _ := time.ParseInLocation("2006-01-02", day, loc)
		end := start.AddDate(0, 0, 1)
		got := dues(sp, start.Add(-time.Nanosecond), end.Add(-time.Nanosecond))
		if len(got) != 1 {
			t.Errorf("%s: due %d times (%v), want once", day, len(got), got)
		}
	}
	all := dues(sp, utc("2024-12-31T23:00:00Z"), utc("2025-12-31T22:59:59Z"))
	if len(all) != 365 {
		t.Errorf("due %d times in 2025 (Berlin), want 365", len(all))
	}
}

func TestJitterNoWindow(t *testing.T) {
	due := utc("2025-01-15T11:00:00Z")
	for _, w := range []time.Duration{0, -time.Minute} {
		if j := jitter("sch-1", due, due.Add(time.Hour), w); j != 0 {
			t.Errorf("jitter with window %s = %s, want 0", w, j)
		}
	}
	// A following due time at the due time (or before) leaves no room.
	if j := jitter("sch-1", due, due, time.Minute); j != 0 {
		t.Errorf("jitter with no time to the following due time = %s, want 0", j)
	}
}

// spread checks that offsets fall in [0, window) and that each tenth of the
// window gets between 8% and 12% of them.
func spread(t *testing.T, offsets []time.Duration, window time.Duration) {
	t.Helper()
	var tenths [10]int
	for _, j := range offsets {
		if j < 0 || j >= window {
			t.Fatalf("offset %s outside [0, %s)", j, window)
		}
		tenths[int(int64(j)*10/int64(window))]++
	}
	n := len(offsets)
	for i, c := range tenths {
		if c*100 < 8*n || c*100 > 12*n {
			t.Errorf("tenth %d of the window got %d of %d offsets (%.1f%%), want 8%%..12%%; all: %v", i, c, n, 100*float64(c)/float64(n), tenths)
		}
	}
}

func TestJitterSpreadsEvenly(t *testing.T) {
	due := utc("2025-01-15T11:00:00Z")
	following := due.Add(time.Hour)
	ids := make([]string, 10000)
	for i := range ids {
		ids[i] = id.New("sch") // made in a burst: nearly sequential, as a bulk import makes them
	}
	for _, window := range []time.Duration{time.Second, 2 * time.Minute, 5 * time.Minute, 30 * time.Minute} {
		t.Run(window.String(), func(t *testing.T) {
			offsets := make([]time.Duration, len(ids))
			for i, sid := range ids {
				offsets[i] = jitter(sid, due, following, window)
			}
			spread(t, offsets, window)
		})
	}
	// Short, human-made ids spread too.
	offsets := make([]time.Duration, 10000)
	for i := range offsets {
		offsets[i] = jitter(fmt.Sprintf("sch-%d", i), due, following, 5*time.Minute)
	}
	t.Run("short ids", func(t *testing.T) { spread(t, offsets, 5*time.Minute) })
}

func TestJitterCappedAtHalfTheInterval(t *testing.T) {
	due := utc("2025-01-15T11:00:00Z")
	for _, tc := range []struct {
		interval, window, limit time.Duration
	}{
		{4 * time.Minute, 5 * time.Minute, 2 * time.Minute},
		{time.Minute, time.Hour, 30 * time.Second},
		{time.Second, 5 * time.Minute, 500 * time.Millisecond}, // a six-field, every-second expression
		{time.Hour, 5 * time.Minute, 5 * time.Minute},          // the window is smaller: not capped
	} {
		offsets := make([]time.Duration, 10000)
		var most time.Duration
		for i := range offsets {
			offsets[i] = jitter(fmt.Sprintf("sch-%d", i), due, due.Add(tc.interval), tc.window)
			most = max(most, offsets[i])
		}
		if most >= tc.limit {
			t.Errorf("interval %s, window %s: offset up to %s, want below %s", tc.interval, tc.window, most, tc.limit)
		}
		// Spread evenly over the capped window.
		spread(t, offsets, tc.limit)
	}
	// With no following due time (none left), the whole window is used.
	if j := jitter("sch-x", due, time.Time{}, time.Minute); j < 0 || j >= time.Minute {
		t.Errorf("jitter with no following due time = %s", j)
	}
}

func TestJitterStable(t *testing.T) {
	due := utc("2025-01-15T11:00:00Z")
	following := due.Add(time.Hour)
	differs := 0
	for i := range 1000 {
		sid := fmt.Sprintf("sch-%d", i)
		a := jitter(sid, due, following, 5*time.Minute)
		// The same schedule and due time: the same offset, in any time zone
		// the due time is expressed in.
		if b := jitter(sid, due.In(time.FixedZone("X", 3600)), following, 5*time.Minute); a != b {
			t.Fatalf("jitter(%s, %s) = %s then %s", sid, due, a, b)
		}
		// Another due time: another offset (almost always).
		if jitter(sid, due.Add(time.Hour), following.Add(time.Hour), 5*time.Minute) != a {
			differs++
		}
	}
	if differs < 990 {
		t.Errorf("only %d of 1000 schedules got another offset at the next due time", differs)
	}
}

// An expression due every hour follows real time across the clock changes:
// the hour the clocks repeat is run in both of its passes.
func TestNextHourlyFollowsRealTimeAcrossDST(t *testing.T) {
	sp, err := Parse([]string{"0 * * * *"}, "Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	got := dues(sp, utc("2025-10-25T23:30:00Z"), utc("2025-10-26T02:30:00Z"))
	want := []time.Time{utc("2025-10-26T00:00:00Z"), utc("2025-10-26T01:00:00Z"), utc("2025-10-26T02:00:00Z")}
	if len(got) != len(want) {
		t.Fatalf("hourly across the fall-back: %v, want %v", got, want)
	}
	for i := range want {
		if !got[i].Equal(want[i]) {
			t.Fatalf("hourly across the fall-back: %v, want %v", got, want)
		}
	}
}
