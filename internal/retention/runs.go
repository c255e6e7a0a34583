package retention

import (
	"context"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/id"
	"github.com/gantry-iac/gantry/internal/run"
)

// candidate is a run that may be deleted.
type candidate struct {
	id, stackID string
	logSize     int64
}

// idSkew is how far ahead of the cutoff a run's id may have been made and
// the run still ended before it (clocks of replicas that disagree): ids
// are made from the time, so the scan for runs to delete is bounded by
// the primary key instead of reading every run.
const idSkew = time.Hour

// windowSQL returns the last id of the next $3 runs after $1 whose id was
// made before $2, and how many there are: a batch examines those runs
// only, read in the primary key's order, so that a pass reads each old
// run once however many it keeps.
const windowSQL = `SELECT COALESCE(MAX(id), ''), COUNT(*) FROM (SELECT id FROM runs WHERE id > $1 AND id < $2 ORDER BY id LIMIT $3) w`

// candidatesSQL selects, in id order, the runs with an id in ($1, $2]
// that ended before $3 and that nothing keeps (see Pruner.Prune). Every
// condition is an index lookup per run.
const candidatesSQL = `SELECT r.id, r.stack_id, r.log_size FROM runs r
WHERE r.id > $1 AND r.id <= $2 AND r.state IN ` + run.TerminalSQL + ` AND r.updated_at < $3
-- the newest terminal run of its type on its stack is kept
AND EXISTS (SELECT 1 FROM runs n WHERE n.stack_id = r.stack_id AND n.id > r.id AND n.type = r.type AND n.state IN ` + run.TerminalSQL + `)
-- and so is the stack's tracked commit (run.Service.TrackedCommits)
AND NOT (r.type = 'TRACKED' AND r.commit_sha <> '' AND r.commit_branch = (SELECT s.branch FROM stacks s WHERE s.id = r.stack_id)
	AND NOT EXISTS (SELECT 1 FROM runs t WHERE t.stack_id = r.stack_id AND t.id > r.id AND t.type = 'TRACKED'
		AND t.commit_sha <> '' AND t.commit_branch = r.commit_branch))
-- nothing of a stack whose run waits for a person
AND r.stack_id NOT IN (SELECT w.stack_id FROM runs w WHERE w.state IN ('UNCONFIRMED', 'PENDING_REVIEW'))
AND NOT EXISTS (SELECT 1 FROM state_versions v WHERE v.stack_id = r.stack_id AND v.run_id = r.id)
AND NOT EXISTS (SELECT 1 FROM state_locks l WHERE l.stack_id = r.stack_id AND l.holder_run = r.id)
AND NOT EXISTS (SELECT 1 FROM schedules sc WHERE sc.stack_id = r.stack_id AND sc.last_run_id = r.id)
AND NOT EXISTS (SELECT 1 FROM drift_checks dc WHERE dc.stack_id = r.stack_id AND (dc.last_run_id = r.id OR dc.last_good_run_id = r.id))
AND NOT EXISTS (SELECT 1 FROM drift_resources dr WHERE dr.stack_id = r.stack_id AND dr.resolved_at = 0
	AND (dr.first_run_id = r.id OR dr.last_run_id = r.id))
AND NOT EXISTS (SELECT 1 FROM policy_events e WHERE e.status = 'PENDING' AND e.run_id = r.id)
AND NOT EXISTS (SELECT 1 FROM notify_deliveries nd WHERE nd.run_id = r.id AND nd.status IN ('PENDING', 'SENDING'))
ORDER BY r.id`

// runCandidates returns the runs to delete among the next Batch runs
// after the id after ("" from the start), and the id to go on from (""
// when no run is left to examine).
func (p *Pruner) runCandidates(ctx context.Context, endedBefore time.Time, after string) ([]candidate, string, error) {
	var last string
	var n int
	if err := p.db.QueryRow(ctx, windowSQL, after, id.Before("run", endedBefore.Add(idSkew)), p.batch()).Scan(&last, &n); err != nil || n == 0 {
		return nil, "", err
	}
	out, err := db.Collect(ctx, p.db, func(row db.Scanner) (candidate, error) {
		var c candidate
		err := row.Scan(&c.id, &c.stackID, &c.logSize)
		return c, err
	}, candidatesSQL, after, last, endedBefore.UnixNano())
	return out, last, err
}

// pruneRuns deletes the runs that ended before now - age, a batch per
// transaction.
func (p *Pruner) pruneRuns(ctx context.Context, age time.Duration, res *Result) error {
	res.EndedBefore = p.Now().Add(-age)
	after := ""
	for {
		var batch []candidate
		var next string
		err := p.db.Tx(ctx, func(ctx context.Context) error {
			var err error
			// Chosen in the transaction that deletes them: what keeps a
			// run is checked as of the deletion.
			if batch, next, err = p.runCandidates(ctx, res.EndedBefore, after); err != nil || len(batch) == 0 {
				return err
			}
			ids := make([]string, len(batch))
			for i, c := range batch {
				ids[i] = c.id
			}
			in, args := db.InList(ids, 0)
			// Rows of the run without a foreign key to it; the rest (log,
			// artifacts, transitions, receipts, reviews) go with the run.
			// Policy events are pruned by age on their own (policy.PruneEvents).
			for _, q := range []string{
				`DELETE FROM notify_deliveries WHERE run_id IN (` + in + `)`,
				`DELETE FROM notify_inbox WHERE run_id IN (` + in + `)`,
				`DELETE FROM runs WHERE id IN (` + in + `)`,
			} {
				if _, err := p.db.Exec(ctx, q, args...); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, c := range batch {
			res.addStack(c.stackID, Counts{Runs: 1, RunLogBytes: c.logSize})
		}
		if next == "" {
			return nil
		}
		after = next
	}
}
