// Package faults holds the fault-injection tools Courier's tests share: a TCP proxy that cuts
// or refuses connections between a client and a real broker, as a network failure, a load
// balancer or a broker's restart would. It is the start of the fault-injection suite
// (ARCHITECTURE.md); broker restarts themselves are integration/brokers' StopService and
// StartService.
package faults

import (
	"crypto/tls"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy forwards TCP connections from a loopback port to a target. Cut drops every open
// connection (new ones are accepted); Down drops them and refuses new ones until Up. It is
// closed when the test ends.
type Proxy struct {
	ln     net.Listener
	target string
	down   atomic.Bool
	cuts   atomic.Int64

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// NewProxy listens on 127.0.0.1 and forwards to target (host:port).
func NewProxy(t testing.TB, target string) *Proxy {
	return NewTLSProxy(t, target, nil)
}

// NewTLSProxy is NewProxy that terminates TLS with cfg (when not nil) and forwards plain TCP:
// a TLS front for a broker that has no TLS listener.
func NewTLSProxy(t testing.TB, target string, cfg *tls.Config) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("faults: proxy listen: %v", err)
	}
	if cfg != nil {
		ln = tls.NewListener(ln, cfg)
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Addr is the proxy's host:port, for the client to dial instead of the target's.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Cut closes every connection through the proxy and returns how many client connections
// that was. New connections are accepted.
func (p *Proxy) Cut() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.conns) / 2
	for c := range p.conns {
		_ = c.Close()
	}
	p.cuts.Add(1)
	return n
}

// Cuts returns how many times Cut (or Down) was called.
func (p *Proxy) Cuts() int64 { return p.cuts.Load() }

// Down cuts every connection and refuses new ones (accepted, then closed at once) until Up.
func (p *Proxy) Down() {
	p.down.Store(true)
	p.Cut()
}

// Up accepts connections again after Down.
func (p *Proxy) Up() { p.down.Store(false) }

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.down.Load() {
			_ = c.Close()
			continue
		}
		b, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[b] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, b)
		go p.pipe(b, c)
	}
}

func (p *Proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

func (p *Proxy) close() {
	_ = p.ln.Close()
	p.Cut()
	p.wg.Wait()
}
