//go:build brokers_selftest

// This self-test stops and starts the native brokers up.sh runs, which would
// disturb any other test using them at the same time, so it only builds with
// its own tag:
//
//	set -a; . .brokers/env; set +a
//	go test -tags brokers_selftest -run TestNativeRestart -v ./integration/brokers/

package brokers

import (
	"context"
	"net"
	"net/url"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/segmentio/kafka-go"
)

func TestNativeRestart(t *testing.T) {
	t.Setenv(RequireEnv, "1")
	checks := map[Service]func(ep string) error{
		RabbitMQ: func(ep string) error {
			c, err := amqp.DialConfig(ep, amqp.Config{Dial: amqp.DefaultDial(2 * time.Second)})
			if err != nil {
				return err
			}
			return c.Close()
		},
		Kafka: func(ep string) error {
			// A fresh connection: kafka-go's shared transport caches metadata.
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			c, err := kafka.DialContext(ctx, "tcp", ep)
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Brokers()
			return err
		},
	}
	for _, s := range []Service{RabbitMQ, Kafka} {
		t.Run(string(s), func(t *testing.T) {
			ep := Endpoint(t, s)
			if err := checks[s](ep); err != nil {
				t.Fatalf("%s does not answer before the test: %v", s, err)
			}
			start := time.Now()
			StopService(t, s)
			t.Logf("stop took %s", time.Since(start).Round(time.Millisecond))
			if err := checks[s](ep); err == nil {
				t.Fatalf("%s still answers after StopService", s)
			}
			if c, err := net.DialTimeout("tcp", hostPort(ep), time.Second); err == nil {
				c.Close()
				t.Fatalf("%s still accepts connections after StopService", s)
			}
			start = time.Now()
			StartService(t, s)
			t.Logf("start took %s", time.Since(start).Round(time.Millisecond))
			deadline := time.Now().Add(30 * time.Second)
			for {
				err := checks[s](ep)
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s does not answer after StartService: %v", s, err)
				}
				time.Sleep(200 * time.Millisecond)
			}
		})
	}
}

func hostPort(ep string) string {
	if u, err := url.Parse(ep); err == nil && u.Host != "" {
		return u.Host
	}
	return ep
}
