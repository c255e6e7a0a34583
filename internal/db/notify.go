package db

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
)

// Notify sends payload to the listeners of channel on every replica
// (PostgreSQL NOTIFY). On SQLite there is one process and nothing to send.
func (d *DB) Notify(ctx context.Context, channel, payload string) error {
	if d.Dialect != Postgres {
		return nil
	}
	_, err := d.write.ExecContext(ctx, `SELECT pg_notify($1, $2)`, channel, payload)
	return err
}

// Listen calls fn with the payload of each notification on channel until
// ctx ends, on a connection of its own, reconnecting after errors. On
// SQLite it returns at once. Notifications only wake readers: a lost one
// costs latency, never correctness.
func (d *DB) Listen(ctx context.Context, channel string, fn func(payload string)) error {
	if d.Dialect != Postgres {
		return nil
	}
	for ctx.Err() == nil {
		err := d.listenOnce(ctx, channel, fn)
		if ctx.Err() != nil {
			break
		}
		d.log.Warn("database listener lost; reconnecting", "channel", channel, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return nil
}

func (d *DB) listenOnce(ctx context.Context, channel string, fn func(string)) error {
	conn, err := d.write.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(driverConn any) error {
		c, ok := driverConn.(*stdlib.Conn)
		if !ok {
			return errors.New("db: not a pgx connection")
		}
		pg := c.Conn()
		if _, err := pg.Exec(ctx, "LISTEN "+quoteIdent(channel)); err != nil {
			return err
		}
		defer func() {
			// Leave the pooled connection as we found it.
			uctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, _ = pg.Exec(uctx, "UNLISTEN *")
			cancel()
		}()
		for {
			n, err := pg.WaitForNotification(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			fn(n.Payload)
		}
	})
}

func quoteIdent(s string) string {
	out := []byte{'"'}
	for i := 0; i < len(s); i++ {
		if s[i] == '"' {
			out = append(out, '"')
		}
		out = append(out, s[i])
	}
	return string(append(out, '"'))
}
