package gcppubsub_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// newServer starts a pstest server of the test's own (for error injection), closed after
// everything the test opens on it (cleanups run last-registered first).
func newServer(t testing.TB, opts ...pstest.ServerReactorOption) *pstest.Server {
	srv := pstest.NewServer(opts...)
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

// rawClient is the real v2 client on the emulator at addr, configured as the adapter does.
func rawClient(t testing.TB, addr string) *pubsub.Client {
	t.Helper()
	c, err := pubsub.NewClient(context.Background(), project,
		option.WithEndpoint(addr),
		option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
		option.WithTelemetryDisabled(),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func topicPath(id string) string { return "projects/" + project + "/topics/" + id }
func subPath(id string) string   { return "projects/" + project + "/subscriptions/" + id }

// createTopicAndSub creates a topic and a subscription on it with the raw admin client.
func createTopicAndSub(t testing.TB, c *pubsub.Client, topicID, subID string) {
	t.Helper()
	ctx := context.Background()
	if _, err := c.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topicPath(topicID)}); err != nil {
		t.Fatal(err)
	}
	if subID != "" {
		if _, err := c.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
			Name: subPath(subID), Topic: topicPath(topicID), AckDeadlineSeconds: 10,
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// delivered is what a test handler saw of one delivery.
type delivered struct {
	ID, Key string
	Payload string
	Headers message.Headers
	Attempt int
	At      time.Time
	Native  *pubsub.Message
}

// recorder runs a subscriber and records deliveries; fail decides a handler's result.
type recorder struct {
	mu   sync.Mutex
	all  []delivered
	wake chan struct{}
	run  chan error
}

// consume subscribes and runs a recording handler until the test ends. fail may be nil.
func consume(t *testing.T, c *transport.Conn, topic, sub string, cfg transport.SubscriberConfig, fail func(m *message.Message) error) *recorder {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := c.Subscribe(ctx, topic, sub, cfg)
	if err != nil {
		t.Fatalf("subscribe %s/%s: %v", topic, sub, err)
	}
	r := &recorder{wake: make(chan struct{}, 1), run: make(chan error, 1)}
	rctx, stop := context.WithCancel(context.Background())
	go func() {
		r.run <- s.Run(rctx, func(_ context.Context, m *message.Message) error {
			d := delivered{ID: m.ID, Key: m.Key, Payload: string(m.Payload), Headers: m.Headers, Attempt: m.Attempt, At: time.Now()}
			m.As(&d.Native)
			r.mu.Lock()
			r.all = append(r.all, d)
			r.mu.Unlock()
			select {
			case r.wake <- struct{}{}:
			default:
			}
			if fail != nil {
				return fail(m)
			}
			return nil
		})
	}()
	t.Cleanup(func() {
		stop()
		select {
		case err := <-r.run:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(40 * time.Second):
			t.Error("Run did not return")
		}
	})
	return r
}

func (r *recorder) snapshot() []delivered {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivered(nil), r.all...)
}

// waitFor waits until cond holds for the deliveries so far, failing the test after timeout.
func (r *recorder) waitFor(t *testing.T, timeout time.Duration, what string, cond func([]delivered) bool) []delivered {
	t.Helper()
	deadline := time.After(timeout)
	for {
		got := r.snapshot()
		if cond(got) {
			return got
		}
		select {
		case <-r.wake:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out after %v waiting for %s; deliveries: %+v", timeout, what, got)
		}
	}
}

// ids returns the distinct IDs delivered.
func ids(ds []delivered) map[string]int {
	m := map[string]int{}
	for _, d := range ds {
		m[d.ID]++
	}
	return m
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
