package notify

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/id"
)

// InboxItem is a message of an inbox rule.
type InboxItem struct {
	ID        string
	SpaceID   string
	RunID     string
	StackID   string
	Event     string
	Title     string
	Body      string
	Severity  string
	Read      bool
	CreatedAt time.Time
}

// InboxFilter selects inbox items. Empty fields do not filter.
type InboxFilter struct {
	SpaceIDs []string
	RunID    string
	Limit    int    // default 50
	Cursor   string // the NextCursor of the previous page
}

// Inbox texts are bounded; longer ones are cut.
const (
	maxTitle     = 1024
	maxInboxBody = 64 << 10
)

// checkSeverity says why an inbox message's severity is refused ("" when
// it is INFO, WARNING or ERROR, in any case, or empty for INFO).
func checkSeverity(sev string) string {
	switch strings.ToUpper(sev) {
	case "", SeverityInfo, SeverityWarning, SeverityError:
		return ""
	}
	return fmt.Sprintf("inbox severity %q is not one of INFO, WARNING, ERROR", sev)
}

func (s *Service) addInbox(ctx context.Context, m Message, t int64) error {
	sev := strings.ToUpper(m.Severity)
	if sev == "" {
		sev = SeverityInfo
	}
	title := dbText(m.Title, maxTitle)
	if title == "" {
		title = dbText(m.Event, maxTitle)
	}
	_, err := s.db.Exec(ctx, `INSERT INTO notify_inbox (id, space_id, run_id, stack_id, event, title, body, severity, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		id.New("ntf"), dbText(m.SpaceID, maxShort), dbText(m.RunID, maxShort), dbText(m.StackID, maxShort),
		dbText(m.Event, maxShort), title, dbText(m.Body, maxInboxBody), sev, t)
	return err
}

// ListInbox returns inbox items newest first, and the cursor of the next
// page ("" on the last).
func (s *Service) ListInbox(ctx context.Context, f InboxFilter) ([]InboxItem, string, error) {
	limit := pageSize(f.Limit)
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if f.Cursor != "" {
		add("id < ?", f.Cursor)
	}
	if f.RunID != "" {
		add("run_id = ?", f.RunID)
	}
	if len(f.SpaceIDs) > 0 {
		q, a := db.InList(f.SpaceIDs, len(args))
		args = append(args, a...)
		where = append(where, "space_id IN ("+q+")")
	}
	q := `SELECT id, space_id, run_id, stack_id, event, title, body, severity, read_at, created_at FROM notify_inbox`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, limit+1)
	out, err := db.Collect(ctx, s.db, func(row db.Scanner) (InboxItem, error) {
		var it InboxItem
		var readAt, c int64
		if err := row.Scan(&it.ID, &it.SpaceID, &it.RunID, &it.StackID, &it.Event, &it.Title, &it.Body, &it.Severity, &readAt, &c); err != nil {
			return InboxItem{}, err
		}
		it.Read, it.CreatedAt = readAt != 0, db.FromNanos(c)
		return it, nil
	}, q+" ORDER BY id DESC LIMIT $"+strconv.Itoa(len(args)), args...)
	if err != nil {
		return nil, "", err
	}
	return nextPage(out, limit, func(it InboxItem) string { return it.ID })
}

// GetInbox returns one inbox item.
func (s *Service) GetInbox(ctx context.Context, itemID string) (InboxItem, error) {
	var it InboxItem
	var readAt, c int64
	err := s.db.QueryRow(ctx, `SELECT id, space_id, run_id, stack_id, event, title, body, severity, read_at, created_at
		FROM notify_inbox WHERE id = $1`, itemID).Scan(&it.ID, &it.SpaceID, &it.RunID, &it.StackID, &it.Event, &it.Title, &it.Body, &it.Severity, &readAt, &c)
	if errors.Is(err, sql.ErrNoRows) {
		return it, errs.E(errs.NotFound, "notification %q not found", itemID)
	}
	it.Read, it.CreatedAt = readAt != 0, db.FromNanos(c)
	return it, err
}

// MarkRead marks an inbox item read (again is fine).
func (s *Service) MarkRead(ctx context.Context, itemID string) error {
	res, err := s.db.Exec(ctx, `UPDATE notify_inbox SET read_at = $2 WHERE id = $1 AND read_at = 0`, itemID, now().UnixNano())
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		_, err := s.GetInbox(ctx, itemID)
		return err
	}
	return nil
}

// pageSize returns limit, 50 when unset, at most 1000.
func pageSize(limit int) int {
	switch {
	case limit <= 0:
		return 50
	case limit > 1000:
		return 1000
	}
	return limit
}

// nextPage trims a page read with limit+1 rows and returns its cursor.
func nextPage[T any](items []T, limit int, key func(T) string) ([]T, string, error) {
	if len(items) <= limit {
		return items, "", nil
	}
	items = items[:limit]
	return items, key(items[limit-1]), nil
}
