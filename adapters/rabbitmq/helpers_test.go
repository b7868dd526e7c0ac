package rabbitmq_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/courierhq/courier/adapters/rabbitmq"
	"github.com/courierhq/courier/internal/adaptertest"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/idempotency"
	"github.com/courierhq/courier/middleware/store/memstore"
	"github.com/courierhq/courier/transport"
)

// withHost returns rawURL with its host:port replaced.
func withHost(t testing.TB, rawURL, hostport string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = hostport
	return u.String()
}

// withPassword returns rawURL with its password replaced (its user kept, "guest" if none).
func withPassword(t testing.TB, rawURL, password string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	user := "guest"
	if u.User != nil && u.User.Username() != "" {
		user = u.User.Username()
	}
	u.User = url.UserPassword(user, password)
	return u.String()
}

// hostOf returns the host:port of an AMQP URL.
func hostOf(t testing.TB, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), "5672")
	}
	return u.Host
}

// selfSigned returns a server certificate for 127.0.0.1/localhost and a pool trusting it.
func selfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "courier test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, pool
}

// topicName returns a topic no other test uses.
func topicName(t testing.TB) string {
	return fmt.Sprintf("c-rmq-%s-%06x", sanitizeName(t.Name()), mrand.Uint32()&0xffffff)
}

func sanitizeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '-'
		}
	}
	if len(b) > 40 {
		b = b[len(b)-40:]
	}
	return string(b)
}

// openConfig opens a connection with cfg and closes it when the test ends.
func openConfig(t testing.TB, cfg rabbitmq.Config) *transport.Conn {
	t.Helper()
	return adaptertest.Open(t, func(ctx context.Context) (*transport.Conn, error) { return rabbitmq.Open(ctx, cfg) })
}

// rawChannel opens an amqp091 channel for test setup and inspection.
func rawChannel(t testing.TB, url string) *amqp.Channel {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// deleteTopology removes what a test declared when it ends (names are unique anyway).
func deleteTopology(t testing.TB, url string, exchanges []string, queues []string) {
	t.Helper()
	t.Cleanup(func() { deleteNow(url, exchanges, queues) })
}

// tally counts deliveries per message ID.
type tally struct {
	mu     sync.Mutex
	seen   map[string]int
	total  int
	change chan struct{}
}

func newTally() *tally { return &tally{seen: map[string]int{}, change: make(chan struct{}, 1)} }

func (ta *tally) handler(_ context.Context, m *message.Message) error {
	ta.mu.Lock()
	ta.seen[m.ID]++
	ta.total++
	ta.mu.Unlock()
	select {
	case ta.change <- struct{}{}:
	default:
	}
	return nil
}

// waitAll waits until every ID in want was delivered; it returns the missing ones at the
// deadline.
func (ta *tally) waitAll(want map[string]bool, timeout time.Duration) []string {
	deadline := time.After(timeout)
	for {
		ta.mu.Lock()
		var missing []string
		for id := range want {
			if ta.seen[id] == 0 {
				missing = append(missing, id)
			}
		}
		ta.mu.Unlock()
		if len(missing) == 0 {
			return nil
		}
		select {
		case <-ta.change:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			return missing
		}
	}
}

func (ta *tally) counts() (distinct, total, dups int) {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	for _, n := range ta.seen {
		if n > 1 {
			dups += n - 1
		}
	}
	return len(ta.seen), ta.total, dups
}

// faultRun publishes n messages in batches while faults happen, consuming at the same
// time, and checks that every confirmed message is delivered at least once and, behind the
// idempotency middleware (in-memory store), handled exactly once. fault(k) is
// called (in its own goroutine) when the k-th fault point is reached: at a third and at a
// half of the messages.
type faultRun struct {
	n        int
	batch    int
	pubURL   string // URL the publishing connection uses
	subURL   string // URL the consuming connection uses
	fault    func(t *testing.T, k int)
	timeout  time.Duration
	queueTyp rabbitmq.QueueType
	// pace publishes small batches slowly between a fault's start and the connection loss
	// it causes, for faults that take a while to bite (rabbitmqctl).
	pace bool
	// publishing, when set, gets a value (if it has room) right before each Publish call.
	publishing chan struct{}
	// check, when set, gets the drivers' counters at the end.
	check func(pub, sub rabbitmq.Stats)
}

func (fr faultRun) run(t *testing.T) {
	cfg := func(u string) rabbitmq.Config {
		return rabbitmq.Config{URL: u, ReconnectDelay: 50 * time.Millisecond, MaxReconnectDelay: time.Second,
			Heartbeat: 2 * time.Second, QueueType: fr.queueTyp}
	}
	pubConn := openConfig(t, cfg(fr.pubURL))
	subConn := openConfig(t, cfg(fr.subURL))
	topic := topicName(t)
	deleteTopology(t, fr.pubURL, []string{topic, topic + ".dlq"}, []string{topic + ".s", topic + ".dlq.s.dlq"})
	ctx := context.Background()
	// Deliveries are counted outside the idempotency middleware, handling inside it.
	deliveries := newTally()
	idem, err := idempotency.New(idempotency.Config{Store: memstore.New(memstore.Options{})})
	if err != nil {
		t.Fatal(err)
	}
	count := func(next message.Handler) message.Handler {
		return func(ctx context.Context, m *message.Message) error {
			_ = deliveries.handler(ctx, m)
			return next(ctx, m)
		}
	}
	sub, err := subConn.Subscribe(ctx, topic, "s", transport.SubscriberConfig{Concurrency: 8,
		Middleware: []message.Middleware{count, idem.Consume()}})
	if err != nil {
		t.Fatal(err)
	}
	ta := newTally()
	rctx, stop := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- sub.Run(rctx, ta.handler) }()
	defer func() {
		stop()
		if err := <-runErr; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	confirmed := map[string]bool{}
	points := []int{fr.n / 3, fr.n / 2}
	pubDrv := pubConn.Driver().(*rabbitmq.Driver)
	var faultDone chan struct{} // closed when the last fault returned
	awaitLoss := int64(-1)      // while ≥ 0: publish slowly until a connection loss is seen
	start := time.Now()
	failedPublishes := 0
	for sent := 0; sent < fr.n; {
		if len(points) > 0 && sent >= points[0] {
			k := 2 - len(points)
			if faultDone != nil {
				<-faultDone // one fault at a time
				// and the next only once the subscriber is back: a broker restarted within
				// a second of the last would otherwise find its consumer still waiting to
				// reconnect, and break it once instead of twice.
				subDrv := subConn.Driver().(*rabbitmq.Driver)
				deadline := time.Now().Add(fr.timeout)
				for subDrv.Stats().ConsumersRestarted < int64(k) && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
			}
			points = points[1:]
			awaitLoss = pubDrv.Stats().ConnectionsLost
			done := make(chan struct{})
			faultDone = done
			t.Logf("fault %d triggered after %d confirmed messages", k+1, len(confirmed))
			go func() { defer close(done); fr.fault(t, k) }()
		}
		b := min(fr.batch, fr.n-sent)
		if awaitLoss >= 0 && !fr.pace {
			awaitLoss = -1
		}
		if awaitLoss >= 0 {
			// One message per call until the fault bites, so that it hits close to its
			// point and almost surely while a message waits for its confirm.
			if lost := pubDrv.Stats().ConnectionsLost; lost > awaitLoss {
				t.Logf("publishing connection lost after %d confirmed messages", len(confirmed))
				awaitLoss = -1
			} else {
				b = 1
				time.Sleep(2 * time.Millisecond)
			}
		}
		msgs := make([]*message.Message, b)
		for i := range msgs {
			msgs[i] = &message.Message{ID: "m-" + strconv.Itoa(sent+i), Key: "k" + strconv.Itoa((sent+i)%16),
				Payload: []byte("payload " + strconv.Itoa(sent+i))}
		}
		for len(msgs) > 0 {
			select {
			case fr.publishing <- struct{}{}:
			default:
			}
			pctx, cancel := context.WithTimeout(ctx, fr.timeout)
			err := pubConn.Publish(pctx, topic, msgs...)
			cancel()
			if err == nil {
				for _, m := range msgs {
					confirmed[m.ID] = true
				}
				break
			}
			// Not confirmed: publish those again, as an application would.
			failedPublishes++
			var pe *transport.PublishError
			if !errors.As(err, &pe) {
				t.Fatalf("publish: %v", err)
			}
			failed := map[int]bool{}
			for _, f := range pe.Failed {
				failed[f.Index] = true
			}
			var again []*message.Message
			for i, m := range msgs {
				if failed[i] {
					again = append(again, m)
				} else {
					confirmed[m.ID] = true
				}
			}
			t.Logf("publish: %d of %d not confirmed, publishing them again: %v", len(again), len(msgs), err)
			msgs = again
		}
		sent += b
	}
	pubTime := time.Since(start)
	if faultDone != nil {
		<-faultDone
	}
	missing := ta.waitAll(confirmed, fr.timeout)
	time.Sleep(200 * time.Millisecond) // let late duplicates arrive before counting
	distinct, total, dups := deliveries.counts()
	handledDistinct, handled, handledDups := ta.counts()
	ps, ss := pubDrv.Stats(), subConn.Driver().(*rabbitmq.Driver).Stats()
	t.Logf("%d messages confirmed in %v (%d publish calls returned an error); delivered %d distinct, %d deliveries, %d duplicates; "+
		"handled through the idempotency middleware: %d distinct, %d handler calls, %d duplicates",
		len(confirmed), pubTime.Round(time.Millisecond), failedPublishes, distinct, total, dups, handledDistinct, handled, handledDups)
	if handledDups != 0 {
		t.Errorf("%d messages handled more than once behind the idempotency middleware", handledDups)
	}
	t.Logf("publishing driver: %+v; consuming driver: %+v", ps, ss)
	if fr.check != nil {
		fr.check(ps, ss)
	}
	if ps.ConnectionsLost < 2 || ps.Reconnects < 2 || ss.ConsumersRestarted < 2 {
		t.Errorf("the faults did not break both connections twice: publisher %+v, subscriber %+v", ps, ss)
	}
	if len(missing) > 0 {
		t.Fatalf("%d confirmed messages never delivered, e.g. %v", len(missing), missing[:min(5, len(missing))])
	}
	if len(confirmed) != fr.n {
		t.Fatalf("%d of %d messages confirmed", len(confirmed), fr.n)
	}
}

// recorder remembers the queues and exchanges that connections opened with its QueueName
// declare, so that a test can delete them when it ends: durable queues outlive the test
// otherwise, and the conformance suite makes dozens per run.
type recorder struct {
	mu        sync.Mutex
	queues    map[string]bool
	exchanges map[string]bool
}

func newRecorder(t testing.TB, url string) *recorder {
	r := &recorder{queues: map[string]bool{}, exchanges: map[string]bool{}}
	// Registered first, so it runs last: after the connections the test opened are closed.
	t.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		var qs, xs []string
		for q := range r.queues {
			qs = append(qs, q)
		}
		for x := range r.exchanges {
			xs = append(xs, x)
		}
		deleteNow(url, xs, qs)
	})
	return r
}

// queueName is a Config.QueueName that records what it names.
func (r *recorder) queueName(topic, subscription string) string {
	q := rabbitmq.DefaultQueueName(topic, subscription)
	r.mu.Lock()
	r.queues[q], r.exchanges[topic] = true, true
	r.mu.Unlock()
	return q
}

// open opens a connection to rawURL (Courier parameters allowed) whose queues r records.
func (r *recorder) open(ctx context.Context, t testing.TB, rawURL string) *transport.Conn {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := rabbitmq.ConfigFromURL(u)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QueueName = r.queueName
	c, err := rabbitmq.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// deleteNow deletes queues and exchanges, ignoring errors (some may be gone).
func deleteNow(url string, exchanges, queues []string) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	for _, q := range queues {
		if _, err := ch.QueueDelete(q, false, false, false); err != nil {
			if ch, err = conn.Channel(); err != nil {
				return
			}
		}
	}
	for _, x := range exchanges {
		if err := ch.ExchangeDelete(x, false, false); err != nil {
			if ch, err = conn.Channel(); err != nil {
				return
			}
		}
	}
}
