package memstore_test

import (
	"github.com/courierhq/courier/middleware/idempotency"
	"github.com/courierhq/courier/middleware/store/memstore"
)

// An in-process store for tests, demos and single instances, bounded to 100,000 entries per
// table.
func Example() {
	store := memstore.New(memstore.Options{MaxEntries: 100_000})
	idem, _ := idempotency.New(idempotency.Config{Store: store})
	_ = idem.Consume()
}
