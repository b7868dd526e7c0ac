package main

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

func readyPostgres(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return err
	}
	if one != 1 {
		return fmt.Errorf("SELECT 1 returned %d", one)
	}
	return nil
}

func smokePostgres(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `CREATE TEMP TABLE courier_brokercheck (id bigserial PRIMARY KEY, body bytea NOT NULL)`); err != nil {
		return err
	}
	want := []byte(uniqueName("hello"))
	var id int64
	if err := conn.QueryRow(ctx, `INSERT INTO courier_brokercheck (body) VALUES ($1) RETURNING id`, want).Scan(&id); err != nil {
		return err
	}
	var got []byte
	if err := conn.QueryRow(ctx, `SELECT body FROM courier_brokercheck WHERE id = $1 FOR UPDATE SKIP LOCKED`, id).Scan(&got); err != nil {
		return err
	}
	if string(got) != string(want) {
		return fmt.Errorf("got %q, want %q", got, want)
	}
	// LISTEN/NOTIFY is what a Postgres adapter may use to wake consumers.
	if _, err := conn.Exec(ctx, `LISTEN courier_brokercheck`); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, `SELECT pg_notify('courier_brokercheck', $1)`, string(want)); err != nil {
		return err
	}
	n, err := conn.WaitForNotification(ctx)
	if err != nil {
		return err
	}
	if n.Payload != string(want) {
		return fmt.Errorf("notification %q, want %q", n.Payload, want)
	}
	return nil
}
