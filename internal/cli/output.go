package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// print writes v as indented JSON with -o json, else the table that table
// writes through a tabwriter.
func (a *app) print(v any, table func(w io.Writer)) error {
	if a.output == "json" {
		return a.printJSON(v)
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// row writes one tab-separated table row.
func row(w io.Writer, cells ...any) {
	for i, c := range cells {
		if i > 0 {
			io.WriteString(w, "\t")
		}
		fmt.Fprint(w, c)
	}
	io.WriteString(w, "\n")
}

// field writes one "Name: value" line of a detail view; empty values are skipped.
func field(w io.Writer, name string, value any) {
	if s, ok := value.(string); ok && s == "" {
		return
	}
	fmt.Fprintf(w, "%s:\t%v\n", name, value)
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func joinOrDash(items []string) string { return orDash(strings.Join(items, ",")) }

// nonEmpty drops empty strings, so that `--label ""` means "no labels".
func nonEmpty(items []string) []string {
	out := []string{}
	for _, s := range items {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// orEmpty makes nil slices print as [] in JSON.
func orEmpty[T any](items []T) []T {
	if items == nil {
		return []T{}
	}
	return items
}

func shortSHA(sha string) string {
	if len(sha) > 8 {
		return sha[:8]
	}
	return orDash(sha)
}
