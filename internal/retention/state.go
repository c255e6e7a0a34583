package retention

import (
	"context"
	"strconv"
	"strings"

	"github.com/gantry-iac/gantry/internal/db"
)

// stacksOver returns the stacks with more than keep state versions.
func (p *Pruner) stacksOver(ctx context.Context, keep int) ([]string, error) {
	return db.Collect(ctx, p.db, func(row db.Scanner) (string, error) {
		var s string
		err := row.Scan(&s)
		return s, err
	}, `SELECT stack_id FROM state_versions GROUP BY stack_id HAVING COUNT(*) > $1 ORDER BY stack_id`, keep)
}

// stateFloor returns the serial of the stack's keep-th newest version:
// the versions below it go. Versions written later are newer, so it only
// ever rises: a floor read before a transaction still keeps keep versions.
func (p *Pruner) stateFloor(ctx context.Context, stackID string, keep int) (int64, error) {
	var floor int64
	err := p.db.QueryRow(ctx, `SELECT serial FROM state_versions WHERE stack_id = $1 ORDER BY serial DESC LIMIT 1 OFFSET $2`,
		stackID, keep-1).Scan(&floor)
	return floor, err
}

// pruneStates deletes the versions of each stack beyond its newest keep
// (keep >= 1: the current version always stays), a batch per
// transaction bounded by count and by size.
func (p *Pruner) pruneStates(ctx context.Context, keep int, res *Result) error {
	stacks, err := p.stacksOver(ctx, keep)
	if err != nil {
		return err
	}
	for _, st := range stacks {
		floor, err := p.stateFloor(ctx, st, keep)
		if err != nil {
			return err
		}
		for {
			var c Counts
			err := p.db.Tx(ctx, func(ctx context.Context) error {
				rows, err := p.db.Query(ctx, `SELECT serial, size FROM state_versions WHERE stack_id = $1 AND serial < $2 ORDER BY serial LIMIT $3`,
					st, floor, p.batch())
				if err != nil {
					return err
				}
				var serials []string
				for rows.Next() {
					var serial, size int64
					if err := rows.Scan(&serial, &size); err != nil {
						rows.Close()
						return err
					}
					if len(serials) > 0 && c.StateBytes+size > p.stateBatchSize() {
						break
					}
					serials = append(serials, strconv.FormatInt(serial, 10))
					c.StateVersions++
					c.StateBytes += size
				}
				rows.Close()
				if err := rows.Err(); err != nil || len(serials) == 0 {
					return err
				}
				// Serials are integers the query returned: written into the
				// statement, they need no placeholder each.
				_, err = p.db.Exec(ctx, `DELETE FROM state_versions WHERE stack_id = $1 AND serial IN (`+strings.Join(serials, ", ")+`)`, st)
				return err
			})
			if err != nil {
				return err
			}
			if c.StateVersions == 0 {
				break
			}
			res.addStack(st, c)
		}
	}
	return nil
}
