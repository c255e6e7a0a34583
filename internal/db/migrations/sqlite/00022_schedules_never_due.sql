-- +goose Up
-- Schedules stored while cron expressions that match no date (30 February)
-- were accepted: they showed a due time in 1754 and never ran. They end,
-- saying why.
UPDATE schedules SET status = 'done', next_due = 0, next_run_at = 0,
	last_note = 'ended: its cron expressions match no date in the next five years'
WHERE kind <> 'delete' AND status = 'active' AND next_run_at < 0;

-- +goose Down
SELECT 1;
