// Package redisstore keeps the idempotency and ordering middleware's state in Redis
// (github.com/redis/go-redis/v9), shared by every instance of a service.
//
// Each operation is one Lua script on one key (embedded from lua/*.lua), so it is atomic and
// works on Redis Cluster too. Expiry is Redis's own (PX / PEXPIRE): claims vanish when their
// lease ends, handled keys when their retention ends, counters and ordering states after
// their retention of disuse. Times are the Redis server's clock (TIME), so every instance
// judges leases alike. A publisher counter's epoch is the server's clock in milliseconds when
// the counter was created.
//
// Keys, under Options.Prefix (default "courier:"): "idem:<topic>/<subscription>/<id>" (a
// string: "c:<owner>" while claimed, "d" once handled), "seq:<topic>/<key>" (a hash: e, s) and
// "ord:<topic>/<subscription>/<key>" (a hash: e, l, cs, co, cu, gs, sk — see begin.lua).
//
// Use a Redis whose eviction policy (maxmemory-policy) is noeviction or volatile-*: every key
// written here has a TTL, and evicting one early weakens the guarantees the same way as a
// shorter retention would.
package redisstore

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/courierhq/courier/middleware/idempotency"
	"github.com/courierhq/courier/middleware/ordering"
)

var (
	//go:embed lua/claim.lua
	claimLua string
	//go:embed lua/complete.lua
	completeLua string
	//go:embed lua/release.lua
	releaseLua string
	//go:embed lua/reserve.lua
	reserveLua string
	//go:embed lua/begin.lua
	beginLua string
	//go:embed lua/commit.lua
	commitLua string
	//go:embed lua/abort.lua
	abortLua string

	claimScript    = redis.NewScript(claimLua)
	completeScript = redis.NewScript(completeLua)
	releaseScript  = redis.NewScript(releaseLua)
	reserveScript  = redis.NewScript(reserveLua)
	beginScript    = redis.NewScript(beginLua)
	commitScript   = redis.NewScript(commitLua)
	abortScript    = redis.NewScript(abortLua)
)

// DefaultPrefix starts every key the store writes.
const DefaultPrefix = "courier:"

// Options configures a Store. The zero value is valid.
type Options struct {
	// Prefix starts every key the store writes. Default DefaultPrefix ("courier:"). Give
	// each application sharing a Redis its own.
	Prefix string
}

// Store is an idempotency.Store and ordering.Store on Redis. It is safe for concurrent use.
// Closing the client is the caller's business.
type Store struct {
	rdb    redis.UniversalClient
	prefix string
}

var (
	_ idempotency.Store = (*Store)(nil)
	_ ordering.Store    = (*Store)(nil)
)

// New returns a store using client (a *redis.Client, *redis.ClusterClient, …).
func New(client redis.UniversalClient, opts Options) *Store {
	p := opts.Prefix
	if p == "" {
		p = DefaultPrefix
	}
	return &Store{rdb: client, prefix: p}
}

// Open connects to the Redis named by a URL (redis://[user:password@]host:port/db, or
// rediss:// for TLS; see redis.ParseURL), checks that it answers, and returns a store and a
// function that closes its client. Errors never include the password.
func Open(ctx context.Context, url string, opts Options) (*Store, func() error, error) {
	o, err := redis.ParseURL(url)
	if err != nil {
		return nil, nil, fmt.Errorf("redisstore: invalid Redis URL: %w", redactErr(err, url))
	}
	c := redis.NewClient(o)
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		return nil, nil, fmt.Errorf("redisstore: connect to %s: %w", o.Addr, err)
	}
	return New(c, opts), c.Close, nil
}

// redactErr keeps the URL (and its password) out of an error message.
func redactErr(err error, url string) error {
	if url != "" && strings.Contains(err.Error(), url) {
		return errors.New(strings.ReplaceAll(err.Error(), url, "<url>"))
	}
	return err
}

func ms(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return max(int64(d/time.Millisecond), 1)
}

func accept(b bool) int {
	if b {
		return 1
	}
	return 0
}

func ints(v any, n int) ([]int64, error) {
	a, ok := v.([]any)
	if !ok || len(a) != n {
		return nil, fmt.Errorf("redisstore: unexpected script reply %T %v", v, v)
	}
	out := make([]int64, n)
	for i, x := range a {
		if out[i], ok = x.(int64); !ok {
			return nil, fmt.Errorf("redisstore: unexpected script reply element %T %v", x, x)
		}
	}
	return out, nil
}

// Claim implements idempotency.Store.
func (s *Store) Claim(ctx context.Context, key, owner string, lease time.Duration) (idempotency.Claim, error) {
	v, err := claimScript.Run(ctx, s.rdb, []string{s.prefix + "idem:" + key}, owner, ms(lease)).Result()
	if err != nil {
		return idempotency.Claim{}, fmt.Errorf("redisstore: claim: %w", err)
	}
	r, err := ints(v, 2)
	if err != nil {
		return idempotency.Claim{}, err
	}
	return idempotency.Claim{Status: idempotency.Status(r[0]), Remaining: time.Duration(max(r[1], 0)) * time.Millisecond}, nil
}

// Complete implements idempotency.Store.
func (s *Store) Complete(ctx context.Context, key, owner string, retention time.Duration) error {
	held, err := completeScript.Run(ctx, s.rdb, []string{s.prefix + "idem:" + key}, owner, ms(retention)).Int64()
	if err != nil {
		return fmt.Errorf("redisstore: complete: %w", err)
	}
	if held == 0 {
		return idempotency.ErrLeaseLost
	}
	return nil
}

// Release implements idempotency.Store.
func (s *Store) Release(ctx context.Context, key, owner string) error {
	if err := releaseScript.Run(ctx, s.rdb, []string{s.prefix + "idem:" + key}, owner).Err(); err != nil {
		return fmt.Errorf("redisstore: release: %w", err)
	}
	return nil
}

// Reserve implements ordering.Store. Several counters are reserved in one pipelined round trip.
func (s *Store) Reserve(ctx context.Context, rs []ordering.Reservation, retention time.Duration) error {
	if len(rs) == 1 {
		v, err := reserveScript.Run(ctx, s.rdb, []string{s.prefix + "seq:" + rs[0].Key}, rs[0].Count, ms(retention)).Result()
		if err != nil {
			return fmt.Errorf("redisstore: reserve: %w", err)
		}
		return setReservation(&rs[0], v)
	}
	for try := 0; ; try++ {
		cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := range rs {
				reserveScript.EvalSha(ctx, p, []string{s.prefix + "seq:" + rs[i].Key}, rs[i].Count, ms(retention))
			}
			return nil
		})
		if err != nil && try == 0 && redis.HasErrorPrefix(err, "NOSCRIPT") {
			// The script is not cached (a new or restarted server): none of them ran.
			if err := reserveScript.Load(ctx, s.rdb).Err(); err != nil {
				return fmt.Errorf("redisstore: reserve: load script: %w", err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("redisstore: reserve: %w", err)
		}
		for i, c := range cmds {
			if err := setReservation(&rs[i], c.(*redis.Cmd).Val()); err != nil {
				return err
			}
		}
		return nil
	}
}

func setReservation(r *ordering.Reservation, v any) error {
	a, err := ints(v, 2)
	if err != nil {
		return err
	}
	r.Epoch, r.Last = a[0], a[1]
	return nil
}

// Issued implements ordering.Store: one HMGET (Redis expires the counter itself).
func (s *Store) Issued(ctx context.Context, counter string) (epoch, last int64, err error) {
	v, err := s.rdb.HMGet(ctx, s.prefix+"seq:"+counter, "e", "s").Result()
	if err != nil {
		return 0, 0, fmt.Errorf("redisstore: issued: %w", err)
	}
	if len(v) != 2 || v[0] == nil || v[1] == nil {
		return 0, 0, nil
	}
	e, err1 := strconv.ParseInt(fmt.Sprint(v[0]), 10, 64)
	n, err2 := strconv.ParseInt(fmt.Sprint(v[1]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("redisstore: issued: counter %q holds %v", counter, v)
	}
	return e, n, nil
}

// Begin implements ordering.Store.
func (s *Store) Begin(ctx context.Context, key string, req ordering.BeginRequest) (ordering.BeginResult, error) {
	gap := ms(req.GapTimeout)
	if req.GapTimeout <= 0 {
		gap = 0
	}
	v, err := beginScript.Run(ctx, s.rdb, []string{s.prefix + "ord:" + key},
		req.Epoch, req.Seq, req.Owner, ms(req.Lease), gap, ms(req.Retention), accept(req.AcceptEpoch)).Result()
	if err != nil {
		return ordering.BeginResult{}, fmt.Errorf("redisstore: begin: %w", err)
	}
	a, err := ints(v, 6)
	if err != nil {
		return ordering.BeginResult{}, err
	}
	return ordering.BeginResult{
		Outcome:  ordering.Outcome(a[0]),
		Last:     a[1],
		Skipped:  a[2],
		Wait:     time.Duration(max(a[3], 0)) * time.Millisecond,
		InFlight: a[4] == 1,
		GapAge:   time.Duration(max(a[5], 0)) * time.Millisecond,
	}, nil
}

// Commit implements ordering.Store.
func (s *Store) Commit(ctx context.Context, key string, seq int64, owner string, retention time.Duration) error {
	ok, err := commitScript.Run(ctx, s.rdb, []string{s.prefix + "ord:" + key}, seq, owner, ms(retention), ordering.MaxSkipped).Int64()
	if err != nil {
		return fmt.Errorf("redisstore: commit: %w", err)
	}
	if ok == 0 {
		return ordering.ErrLeaseLost
	}
	return nil
}

// Abort implements ordering.Store.
func (s *Store) Abort(ctx context.Context, key string, seq int64, owner string) error {
	if err := abortScript.Run(ctx, s.rdb, []string{s.prefix + "ord:" + key}, seq, owner).Err(); err != nil {
		return fmt.Errorf("redisstore: abort: %w", err)
	}
	return nil
}
