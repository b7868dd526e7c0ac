package storeurl_test

import (
	"cmp"
	"context"
	"fmt"
	"os"

	"github.com/courierhq/courier/middleware/idempotency"
	"github.com/courierhq/courier/middleware/store/storeurl"
)

// The store comes from configuration, like the broker: memory:// here, redis://… or
// postgres://… in production, one value serving both idempotency and ordering.
func ExampleOpen() {
	ctx := context.Background()
	store, closeStore, err := storeurl.Open(ctx, cmp.Or(os.Getenv("EXAMPLE_STORE_URL"), "memory://"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer closeStore()
	idem, err := idempotency.New(idempotency.Config{Store: store})
	fmt.Println(idem != nil, err)

	_, _, err = storeurl.Open(ctx, "mysql://db/courier")
	fmt.Println(err)
	// Output:
	// true <nil>
	// storeurl: invalid store URL: unknown scheme "mysql"; known: memory, redis, rediss, postgres, postgresql
}
