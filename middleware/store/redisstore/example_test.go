package redisstore_test

import (
	"github.com/redis/go-redis/v9"

	"github.com/courierhq/courier/middleware/idempotency"
	"github.com/courierhq/courier/middleware/ordering"
	"github.com/courierhq/courier/middleware/store/redisstore"
)

// One Redis store serves both middleware; give each application its own key prefix.
func Example() {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	store := redisstore.New(rdb, redisstore.Options{Prefix: "billing:"})
	idem, _ := idempotency.New(idempotency.Config{Store: store})
	ord, _ := ordering.New(ordering.Config{Store: store})
	_, _ = idem.Consume(), ord.Publish() // into the subscriber's and publisher's middleware
}
