package runner

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/courierhq/courier/transport"
)

// Health is a snapshot of the runner for probes.
type Health struct {
	// Live is false once a subscriber stopped with an error or the runner stopped: restart
	// the process.
	Live bool `json:"live"`
	// Ready is true while the runner runs, every subscriber is running (none reconnecting)
	// and every connection answers Ping.
	Ready bool `json:"ready"`
	// Subscriptions has one entry per route, in the order they were added.
	Subscriptions []SubscriptionHealth `json:"subscriptions"`
	// Brokers has one entry per connection: the result of its Ping (readiness checks only).
	Brokers []BrokerHealth `json:"brokers,omitempty"`
}

// SubscriptionHealth is one route's state.
type SubscriptionHealth struct {
	Topic        string `json:"topic"`
	Subscription string `json:"subscription"`
	State        string `json:"state"`
	Error        string `json:"error,omitempty"`
}

// BrokerHealth is one connection's Ping result.
type BrokerHealth struct {
	Broker string `json:"broker"`
	Error  string `json:"error,omitempty"`
}

// Liveness reports the subscribers' states without contacting the brokers.
func (r *Runner) Liveness() Health { return r.health(context.Background(), false) }

// Readiness reports the subscribers' states and pings every connection, each bounded by
// Config.PingTimeout and ctx.
func (r *Runner) Readiness(ctx context.Context) Health { return r.health(ctx, true) }

// health builds a snapshot; with a non-nil ctx it also pings the brokers.
func (r *Runner) health(ctx context.Context, ping bool) Health {
	r.mu.Lock()
	routes, subs, started, done := r.routes, r.subs, r.started, r.done
	r.mu.Unlock()
	h := Health{Live: !done, Ready: started && !done && len(subs) == len(routes)}
	for i, rt := range routes {
		sh := SubscriptionHealth{Topic: rt.Topic, Subscription: rt.Subscription, State: "pending"}
		if i < len(subs) {
			st := subs[i].Status()
			sh.State = st.State.String()
			if st.Err != nil {
				sh.Error = st.Err.Error()
			}
			if st.State == transport.StateStopped && st.Err != nil {
				h.Live = false
			}
			h.Ready = h.Ready && st.State == transport.StateRunning
		}
		h.Subscriptions = append(h.Subscriptions, sh)
	}
	if ping {
		for _, c := range r.conns(routes) {
			bh := BrokerHealth{Broker: c.Capabilities().Name}
			if err := r.ping(ctx, c); err != nil {
				bh.Error, h.Ready = err.Error(), false
			}
			h.Brokers = append(h.Brokers, bh)
		}
	}
	return h
}

func (r *Runner) ping(ctx context.Context, c *transport.Conn) error {
	cfg := r.cfg.withDefaults()
	ctx, cancel := context.WithTimeout(ctx, cfg.PingTimeout)
	defer cancel()
	return c.Ping(ctx)
}

// conns returns the distinct connections of routes, in order.
func (r *Runner) conns(routes []Route) []*transport.Conn {
	var out []*transport.Conn
	seen := map[*transport.Conn]bool{}
	if r.conn != nil {
		out, seen[r.conn] = append(out, r.conn), true
	}
	for _, rt := range routes {
		if !seen[rt.Conn] {
			out, seen[rt.Conn] = append(out, rt.Conn), true
		}
	}
	return out
}

// HealthHandler serves GET /healthz (liveness: Liveness) and GET /readyz (readiness:
// Readiness, which pings the brokers): 200 when live or ready, 503 otherwise, with the Health
// as JSON. Other paths are 404. Mount it at the root, or route the two paths to it.
func (r *Runner) HealthHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var h Health
		var ok bool
		switch req.URL.Path {
		case "/healthz", "/livez":
			h = r.Liveness()
			ok = h.Live
		case "/readyz":
			h = r.Readiness(req.Context())
			ok = h.Ready
		default:
			http.NotFound(w, req)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(h)
	})
}

// Err returns nil when live, else an error naming the stopped subscriptions.
func (h Health) Err() error {
	var errs []error
	for _, s := range h.Subscriptions {
		if s.Error != "" {
			errs = append(errs, errors.New(s.Topic+"/"+s.Subscription+": "+s.State+": "+s.Error))
		}
	}
	for _, b := range h.Brokers {
		if b.Error != "" {
			errs = append(errs, errors.New(b.Broker+": "+b.Error))
		}
	}
	return errors.Join(errs...)
}
