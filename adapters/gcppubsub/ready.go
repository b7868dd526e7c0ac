package gcppubsub

import (
	"context"
	"errors"
	"fmt"
	"net"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/courierhq/courier/transport/driver"
)

// readinessTopic is the topic ID the readiness check asks about; it need not exist.
const readinessTopic = "courier-readiness-check"

// checkReady reports whether Pub/Sub answers within cfg.DialTimeout: a TCP connection to the
// emulator endpoint when one is set, then one GetTopic. Any answer from the service (a topic,
// NotFound, PermissionDenied, …) means it is there; only no answer in time or an unreachable
// endpoint is an error, wrapping driver.ErrUnavailable and naming the endpoint.
func checkReady(ctx context.Context, cfg Config, client *pubsub.Client) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	where := "pubsub.googleapis.com"
	if cfg.Endpoint != "" {
		where = cfg.Endpoint
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", cfg.Endpoint)
		if err != nil {
			return fmt.Errorf("pubsub: endpoint %s: nothing answers within %v: %w: %v", where, cfg.DialTimeout, driver.ErrUnavailable, err)
		}
		_ = conn.Close()
	}
	name := fmt.Sprintf("projects/%s/topics/%s%s", cfg.Project, cfg.Prefix, readinessTopic)
	_, err := client.TopicAdminClient.GetTopic(ctx, &pubsubpb.GetTopicRequest{Topic: name})
	if !notAnswering(ctx, err) {
		return nil
	}
	return fmt.Errorf("pubsub: endpoint %s: no answer to GetTopic within %v: %w: %v", where, cfg.DialTimeout, driver.ErrUnavailable, err)
}

// notAnswering reports whether err (of a call made with ctx) means the service did not answer.
func notAnswering(ctx context.Context, err error) bool {
	if err == nil {
		return false
	}
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		return true
	}
	return false
}
