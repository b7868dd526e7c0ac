package main

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// quietLogger drops go-redis's own log lines; failures are reported by
// brokercheck itself.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...interface{}) {}

func init() { redis.SetLogger(quietLogger{}) }

func redisClient(url string) (*redis.Client, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, err
	}
	opts.MaxRetries = -1
	return redis.NewClient(opts), nil
}

func readyRedis(ctx context.Context, url string) error {
	c, err := redisClient(url)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Ping(ctx).Err()
}

func smokeRedis(ctx context.Context, url string) error {
	c, err := redisClient(url)
	if err != nil {
		return err
	}
	defer c.Close()
	key := uniqueName("courier-brokercheck")
	want := uniqueName("hello")
	if err := c.Set(ctx, key, want, time.Minute).Err(); err != nil {
		return err
	}
	defer c.Del(context.Background(), key)
	got, err := c.Get(ctx, key).Result()
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("got %q, want %q", got, want)
	}
	// Streams are what a Redis adapter is most likely to use.
	stream := key + "-stream"
	defer c.Del(context.Background(), stream)
	if err := c.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: map[string]any{"v": want}}).Err(); err != nil {
		return err
	}
	if n, err := c.XLen(ctx, stream).Result(); err != nil || n != 1 {
		return fmt.Errorf("stream length %d, %v", n, err)
	}
	return nil
}
