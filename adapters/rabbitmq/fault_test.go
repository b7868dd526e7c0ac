package rabbitmq_test

import (
	"testing"
	"time"

	"github.com/courierhq/courier/adapters/rabbitmq"
	"github.com/courierhq/courier/integration/faults"
)

// TestProxyCut publishes and consumes 10,000 messages through a TCP proxy whose
// connections are cut at a third and at a half of the way (publishing and consuming
// connections alike). Every confirmed message must be delivered at least once.
func TestProxyCut(t *testing.T) {
	url := endpoint(t)
	p := faults.NewProxy(t, hostOf(t, url))
	via := withHost(t, url, p.Addr())
	publishing := make(chan struct{})
	var republished int64
	faultRun{
		publishing: publishing,
		n:          10000,
		batch:      200,
		pubURL:     via,
		subURL:     via,
		timeout:    time.Minute,
		fault: func(t *testing.T, k int) {
			// Mid-stream: cut while a batch waits for its confirms.
			<-publishing
			time.Sleep(2 * time.Millisecond)
			n := p.Cut()
			t.Logf("cut %d connections", n)
		},
		check: func(pub, _ rabbitmq.Stats) { republished = pub.Republished },
	}.run(t)
	if republished == 0 {
		t.Error("no message was published again: the cuts did not hit a batch waiting for confirms")
	}
	if p.Cuts() < 2 {
		t.Fatalf("%d cuts; want 2", p.Cuts())
	}
}
