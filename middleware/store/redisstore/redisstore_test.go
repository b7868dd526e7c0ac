package redisstore_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/courierhq/courier/integration/brokers"
	"github.com/courierhq/courier/middleware/idempotency"
	"github.com/courierhq/courier/middleware/ordering"
	"github.com/courierhq/courier/middleware/store/redisstore"
	"github.com/courierhq/courier/middleware/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// open connects to the test Redis; two calls model two processes (two clients).
func open(t *testing.T) *redisstore.Store {
	t.Helper()
	url := brokers.Endpoint(t, brokers.Redis)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, closeFn, err := redisstore.Open(ctx, url, redisstore.Options{Prefix: "courier-test:"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = closeFn() })
	return s
}

func TestContract(t *testing.T) {
	storetest.Idempotency(t, func(t *testing.T) idempotency.Store { return open(t) })
	storetest.Ordering(t, func(t *testing.T) ordering.Store { return open(t) })
}

// TestScriptReloadedAfterFlush: a server that lost its script cache (restart, SCRIPT FLUSH)
// still serves pipelined reservations.
func TestScriptReloadedAfterFlush(t *testing.T) {
	url := brokers.Endpoint(t, brokers.Redis)
	o, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(o)
	defer c.Close()
	ctx := context.Background()
	s := redisstore.New(c, redisstore.Options{Prefix: "courier-test:"})
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	k := "flush/" + time.Now().Format(time.RFC3339Nano)
	rs := []ordering.Reservation{{Key: k + "a", Count: 2}, {Key: k + "b", Count: 3}}
	if err := s.Reserve(ctx, rs, time.Minute); err != nil {
		t.Fatalf("reserve after SCRIPT FLUSH: %v", err)
	}
	if rs[0].Last != 2 || rs[1].Last != 3 {
		t.Errorf("reservations %+v; want Last 2 and 3", rs)
	}
}

func TestUnreachableServerFails(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, err := redisstore.Open(ctx, "redis://:s3cret@127.0.0.1:1/0", redisstore.Options{})
	if err == nil {
		t.Fatal("Open of a closed port succeeded")
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error leaks the password: %v", err)
	}
	if _, _, err := redisstore.Open(ctx, "http://:s3cret@x/", redisstore.Options{}); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("bad URL: err = %v; want an error without the password", err)
	}
}
