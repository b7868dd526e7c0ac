// Package storeurl opens the state store behind the idempotency and ordering middleware from
// a URL, so that a service chooses its store in configuration, as it chooses its broker:
//
//	memory://                            memstore: this process only (also for "")
//	redis://[user:password@]host:port/db  redisstore (rediss:// for TLS)
//	postgres://user:password@host/db?…    pgstore, its migration applied (postgresql:// too)
//
// Importing it links the Redis and PostgreSQL clients; a service that wants one store only
// imports that store's package instead.
package storeurl

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/courierhq/courier/middleware/idempotency"
	"github.com/courierhq/courier/middleware/ordering"
	"github.com/courierhq/courier/middleware/store/memstore"
	"github.com/courierhq/courier/middleware/store/pgstore"
	"github.com/courierhq/courier/middleware/store/redisstore"
)

// Store serves both middleware, as every store in middleware/store does.
type Store interface {
	idempotency.Store
	ordering.Store
}

// ErrInvalidURL is wrapped by the errors of Open about the URL itself (unparsable, an
// unknown scheme); connection and migration errors come from the store's package.
var ErrInvalidURL = errors.New("storeurl: invalid store URL")

// EnvVar is the conventional environment variable for a store URL (as COURIER_URL is for the
// broker); the examples read it. Open does not: a service passes what its configuration says.
const EnvVar = "COURIER_STORE_URL"

// Schemes lists the URL schemes Open knows.
var Schemes = []string{"memory", "redis", "rediss", "postgres", "postgresql"}

// Open returns the store rawURL names, connected (and, for PostgreSQL, migrated), and the
// function that closes it. Errors never include the password.
func Open(ctx context.Context, rawURL string) (Store, func(), error) {
	scheme, _, ok := strings.Cut(rawURL, "://")
	if rawURL == "" {
		scheme, ok = "memory", true
	}
	if !ok {
		return nil, nil, fmt.Errorf("%w: no scheme (want scheme://…); known: %s", ErrInvalidURL, strings.Join(Schemes, ", "))
	}
	switch strings.ToLower(scheme) {
	case "memory":
		return memstore.New(memstore.Options{}), func() {}, nil
	case "redis", "rediss":
		s, closeFn, err := redisstore.Open(ctx, rawURL, redisstore.Options{})
		if err != nil {
			return nil, nil, err
		}
		return s, func() { _ = closeFn() }, nil
	case "postgres", "postgresql":
		s, closeFn, err := pgstore.Open(ctx, rawURL)
		if err != nil {
			return nil, nil, err
		}
		return s, closeFn, nil
	default:
		return nil, nil, fmt.Errorf("%w: unknown scheme %q; known: %s", ErrInvalidURL, scheme, strings.Join(Schemes, ", "))
	}
}
