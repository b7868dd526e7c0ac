// Package store is the home of the state stores behind the idempotency and ordering
// middleware. Each feature defines its own small interface where it is used
// (idempotency.Store, ordering.Store); the implementations here serve both from one value:
//
//   - memstore: in-process, bounded, with expiry; for tests, demos and single instances.
//   - redisstore: Redis (go-redis), one Lua script per operation.
//   - pgstore: PostgreSQL (pgx), tables created by an embedded, documented migration.
//
// Package storetest is the contract every implementation passes.
package store
