package retry_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/retry"
	"github.com/courierhq/courier/transport"
)

var errRateLimited = errors.New("rate limited")

func ExampleClassifier() {
	c, _ := retry.New(retry.Config{Rules: []retry.Rule{
		retry.PermanentAs[*json.SyntaxError](), // a payload that does not parse never will
		retry.After(func(err error) (time.Duration, bool) {
			return 2 * time.Second, errors.Is(err, errRateLimited)
		}),
	}})
	_ = transport.SubscriberConfig{Middleware: []message.Middleware{c.Consume()}} // innermost

	var syntax error = &json.SyntaxError{Offset: 1}
	fmt.Println(message.IsPermanent(c.Classify(fmt.Errorf("decode: %w", syntax), 1)))
	d, _ := message.RetryDelay(c.Classify(errRateLimited, 1))
	fmt.Println(d)
	// Output:
	// true
	// 2s
}

func ExampleDo() {
	calls := 0
	balance, err := retry.Do(context.Background(), retry.Policy{MaxTries: 3}, func(ctx context.Context) (int, error) {
		calls++
		if calls < 2 {
			return 0, errors.New("connection reset") // transient: tried again
		}
		return 42, nil
	})
	fmt.Println(balance, err, calls)
	// Output: 42 <nil> 2
}
