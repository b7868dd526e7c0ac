package sqs

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/courierhq/courier/integration/brokers"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// noAWSCredentials empties the standard credential chain for the test: no keys in the
// environment, no shared files, no instance role.
func noAWSCredentials(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

func credentialsOf(t *testing.T, cfg Config) (string, error) {
	t.Helper()
	d, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	c, err := d.client.Options().Credentials.Retrieve(context.Background())
	return c.AccessKeyID, err
}

func TestEndpointWithoutCredentialsUsesDummies(t *testing.T) {
	noAWSCredentials(t)
	key, err := credentialsOf(t, Config{Region: "us-east-1", Endpoint: "http://127.0.0.1:1"})
	if err != nil || key != DummyAccessKeyID {
		t.Errorf("endpoint, no credentials: key %q, err %v; want the dummy key", key, err)
	}
	// Without an endpoint this is AWS itself: no dummies, the chain's error stands.
	if key, err := credentialsOf(t, Config{Region: "us-east-1"}); err == nil {
		t.Errorf("no endpoint, no credentials: key %q; want an error", key)
	}
	// Credentials the chain finds win over the dummies.
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAREAL")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "real-secret")
	if key, err := credentialsOf(t, Config{Region: "us-east-1", Endpoint: "http://127.0.0.1:1"}); err != nil || key != "AKIAREAL" {
		t.Errorf("endpoint, environment credentials: key %q, err %v", key, err)
	}
}

// TestEmulatorURLNeedsNoCredentials publishes and receives through the emulator with an
// empty AWS credential chain, opened from a URL as a new user would.
func TestEmulatorURLNeedsNoCredentials(t *testing.T) {
	ep := brokers.Endpoint(t, brokers.SQS)
	noAWSCredentials(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := transport.Open(ctx, "sqs://?region=us-east-1&wait_time=1s&endpoint="+url.QueryEscape(ep))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	queue := fmt.Sprintf("urlconfig-nocreds-%d", time.Now().UnixNano())
	sub, err := conn.Subscribe(ctx, queue, "s", transport.SubscriberConfig{Order: transport.OrderDelivery}) // a standard queue
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- sub.Run(runCtx, func(_ context.Context, m *message.Message) error {
			select {
			case got <- string(m.Payload):
			default:
			}
			return nil
		})
	}()
	defer func() { stop(); <-done }()
	if err := conn.Publish(ctx, queue, message.New([]byte("hello"))); err != nil {
		t.Fatalf("Publish without AWS credentials: %v", err)
	}
	select {
	case p := <-got:
		if p != "hello" {
			t.Errorf("payload %q", p)
		}
	case <-ctx.Done():
		t.Fatal("nothing received")
	}
}
