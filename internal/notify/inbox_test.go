package notify

import (
	"context"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/errs"
)

func TestInbox(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s, _ := newTestService(t, d)
		mustEnqueue(t, s,
			Message{Kind: KindInbox, SpaceID: "root", RunID: "run-1", Title: "first", Body: "b1", Severity: "error"},
			Message{Kind: KindInbox, SpaceID: "other", RunID: "run-2", Title: "second", Severity: "WARNING"},
			Message{Kind: KindInbox, SpaceID: "root", RunID: "run-1", Event: "run_updated:FINISHED"},
		)
		all, next, err := s.ListInbox(ctx, InboxFilter{})
		if err != nil || next != "" || len(all) != 3 {
			t.Fatalf("ListInbox = %+v, %q, %v", all, next, err)
		}
		// Newest first; defaults filled.
		if all[0].Title != "run_updated:FINISHED" || all[0].Severity != SeverityInfo || all[2].Title != "first" ||
			all[2].Severity != SeverityError || all[2].Body != "b1" || all[1].Severity != SeverityWarning || all[0].Read {
			t.Errorf("items = %+v", all)
		}
		page, next, err := s.ListInbox(ctx, InboxFilter{Limit: 2})
		if err != nil || len(page) != 2 || next != page[1].ID {
			t.Fatalf("page 1 = %+v %q %v", page, next, err)
		}
		page, next, err = s.ListInbox(ctx, InboxFilter{Limit: 2, Cursor: next})
		if err != nil || len(page) != 1 || next != "" || page[0].Title != "first" {
			t.Errorf("page 2 = %+v %q %v", page, next, err)
		}
		byRun, _, _ := s.ListInbox(ctx, InboxFilter{RunID: "run-2"})
		bySpace, _, _ := s.ListInbox(ctx, InboxFilter{SpaceIDs: []string{"root"}, RunID: "run-1"})
		if len(byRun) != 1 || byRun[0].Title != "second" || len(bySpace) != 2 {
			t.Errorf("filters: %+v %+v", byRun, bySpace)
		}
		if err := s.MarkRead(ctx, all[2].ID); err != nil {
			t.Fatal(err)
		}
		if err := s.MarkRead(ctx, all[2].ID); err != nil {
			t.Errorf("marking read twice: %v", err)
		}
		if it, err := s.GetInbox(ctx, all[2].ID); err != nil || !it.Read {
			t.Errorf("after MarkRead: %+v %v", it, err)
		}
		if err := s.MarkRead(ctx, "ntf-nope"); !errs.Is(err, errs.NotFound) {
			t.Errorf("MarkRead unknown: %v", err)
		}

		// An unknown severity, or a rule mistake found before, is not
		// stored as something else: a FAILED delivery says why.
		mustEnqueue(t, s,
			Message{Kind: KindInbox, SpaceID: "root", RunID: "run-3", Title: "loud", Severity: "CRITICAL"},
			Message{Kind: KindInbox, SpaceID: "root", RunID: "run-3", Title: "typed", Problem: "the inbox rule's severity must be a string, got 3"},
		)
		if items, _, _ := s.ListInbox(ctx, InboxFilter{RunID: "run-3"}); len(items) != 0 {
			t.Errorf("refused inbox messages stored: %+v", items)
		}
		ds, _, err := s.ListDeliveries(ctx, DeliveryFilter{RunID: "run-3"})
		if err != nil || len(ds) != 2 {
			t.Fatalf("deliveries of refused inbox messages: %+v, %v", ds, err)
		}
		for _, dl := range ds {
			if dl.Kind != KindInbox || dl.Status != StatusFailed || !strings.HasSuffix(dl.Error, "(the inbox item was not stored)") ||
				!strings.Contains(dl.Body, `"title":"`) {
				t.Errorf("delivery %+v; want a FAILED inbox delivery saying why", dl)
			}
		}
		if !strings.Contains(ds[0].Error+ds[1].Error, `inbox severity "CRITICAL" is not one of INFO, WARNING, ERROR`) {
			t.Errorf("errors %q, %q", ds[0].Error, ds[1].Error)
		}
	})
}
