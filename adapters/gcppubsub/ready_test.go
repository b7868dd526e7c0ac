package gcppubsub

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/courierhq/courier/transport"
)

// TestOpenNothingListening: an endpoint with nothing listening fails Open, within the 5 s
// the acceptance criteria allow, with ErrUnavailable naming the endpoint; so does one that
// accepts connections but never answers gRPC (bounded by dial_timeout).
func TestOpenNothingListening(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			held = append(held, c) // accepted, never answered
		}
	}()
	for _, tc := range []struct{ url, endpoint string }{
		{"gcppubsub://p-123456?endpoint=127.0.0.1:1", "127.0.0.1:1"},
		{"gcppubsub://p-123456?dial_timeout=300ms&endpoint=" + silent.Addr().String(), silent.Addr().String()},
	} {
		t.Run(tc.url, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			start := time.Now()
			c, err := transport.Open(ctx, tc.url)
			took := time.Since(start)
			if err == nil {
				_ = c.Close(context.Background())
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, transport.ErrUnavailable) || !strings.Contains(err.Error(), "endpoint "+tc.endpoint) {
				t.Errorf("err = %v; want ErrUnavailable naming endpoint %s", err, tc.endpoint)
			}
			if took > 5*time.Second {
				t.Errorf("Open failed after %v; want within 5s", took)
			}
		})
	}
}

func TestNotAnswering(t *testing.T) {
	live := context.Background()
	ended, cancel := context.WithCancel(live)
	cancel()
	for _, tc := range []struct {
		ctx  context.Context
		err  error
		want bool
	}{
		{live, nil, false},
		{live, status.Error(codes.NotFound, "topic not found"), false},
		{live, status.Error(codes.PermissionDenied, "no"), false},
		{live, status.Error(codes.Unavailable, "connection refused"), true},
		{live, status.Error(codes.DeadlineExceeded, "late"), true},
		{live, context.DeadlineExceeded, true},
		{ended, errors.New("anything"), true},
	} {
		if got := notAnswering(tc.ctx, tc.err); got != tc.want {
			t.Errorf("notAnswering(%v) = %v; want %v", tc.err, got, tc.want)
		}
	}
}
