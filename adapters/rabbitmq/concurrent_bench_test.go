package rabbitmq_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/courierhq/courier/adapters/rabbitmq"
	"github.com/courierhq/courier/internal/benchkit"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// BenchmarkPublishSingles: the service's publish pattern. conc goroutines each publish one
// persistent 256-byte message and wait for its confirm. "courier" is the default (every call
// published at once, confirms pipelined on shared channels), "courier-coalesced" merges
// concurrent calls into batches as on the other brokers (slower here: see
// Capabilities.PipelinedPublish); "raw-Nch" is amqp091-go with confirms on N shared channels (1, and
// Courier's default channel count), goroutine g publishing on channel g mod N and waiting for
// its own deferred confirm.
func BenchmarkPublishSingles(b *testing.B) {
	url := endpoint(b)
	admin := rawChannel(b, url)
	payload := make([]byte, benchPayload)
	for _, conc := range []int{1, 16, 64} {
		b.Run("conc="+strconv.Itoa(conc), func(b *testing.B) {
			for name, cfg := range map[string]transport.PublisherConfig{
				"courier": {}, "courier-coalesced": {CoalesceMessages: 1000},
			} {
				b.Run(name, func(b *testing.B) {
					c := openConfig(b, rabbitmq.Config{URL: url})
					topic := benchName("singles")
					benchTopology(b, admin, topic)
					p := c.Publisher(cfg)
					benchkit.Run(b, conc, func(ctx context.Context) error {
						return p.Publish(ctx, topic, &message.Message{Payload: payload})
					})
				})
			}
			for _, chans := range []int{1, rabbitmq.DefaultPublishChannels} {
				b.Run("raw-"+strconv.Itoa(chans)+"ch", func(b *testing.B) {
					benchRaw(b, url, admin, conc, chans, payload)
				})
			}
		})
	}
}

// benchRaw is the raw-client baseline of BenchmarkPublishSingles on chans shared channels.
func benchRaw(b *testing.B, url string, admin *amqp.Channel, conc, chans int, payload []byte) {
	conn, err := amqp.Dial(url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.Close() })
	chs := make([]*amqp.Channel, chans)
	for i := range chs {
		if chs[i], err = conn.Channel(); err != nil {
			b.Fatal(err)
		}
		if err := chs[i].Confirm(false); err != nil {
			b.Fatal(err)
		}
	}
	topic := benchName("singles-raw")
	benchTopology(b, admin, topic)
	var g atomic.Int64
	benchkit.RunPer(b, conc, func() func(ctx context.Context) error {
		ch := chs[int(g.Add(1))%chans]
		return func(ctx context.Context) error {
			dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, topic, "", true, false, amqp.Publishing{
				DeliveryMode: amqp.Persistent, MessageId: uuid.NewString(), Timestamp: time.Now(), Body: payload})
			if err != nil {
				return err
			}
			if ok, err := dc.WaitContext(ctx); err != nil || !ok {
				return fmt.Errorf("nacked: %v", err)
			}
			return nil
		}
	})
}
