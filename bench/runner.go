package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Workload parameters (see README.md).
const (
	publishers     = 16   // concurrent single-message publishers
	latencyRate    = 1000 // messages per second in the latency workload
	latencyWorkers = 64   // goroutines publishing them
	fillWorkers    = 64   // goroutines pre-filling a topic for the consume workload
	pubsubProject  = "courier-bench"
)

// brokerPlan is what runs on one broker.
type brokerPlan struct {
	contenders []contender
	publishN   int           // messages per publish measurement
	latencyD   time.Duration // length of a latency measurement
	e2e        bool          // measure end-to-end latency too
	consumeN   int           // messages per consume measurement; 0: no consume workload
	prepare    func(ctx context.Context, topic string) error
	// fill pre-fills topic with n messages for the consume workload; nil: each contender
	// fills it with its own sender.
	fill func(ctx context.Context, topic string, n int) error
}

// plan opens the contenders of broker b.
func plan(ctx context.Context, env brokerEnv, b string) (brokerPlan, error) {
	p := brokerPlan{latencyD: 2 * time.Second, e2e: true, prepare: func(context.Context, string) error { return nil }}
	var courierURL string
	switch b {
	case "memory":
		courierURL = "memory://"
		p.publishN, p.consumeN = 20000, 50000
		p.contenders = []contender{newGoChannel(), newMempubsub()}
	case "rabbitmq":
		courierURL = env.rabbitURL
		p.publishN, p.consumeN = 3000, 5000
		r, err := newRabbitpubsub(env.rabbitURL)
		if err != nil {
			return p, err
		}
		p.contenders = []contender{newWatermillAMQP(env.rabbitURL, publishers), r}
	case "kafka":
		seeds := splitSeeds(env.kafkaAddrs)
		courierURL = "kafka://" + env.kafkaAddrs
		p.publishN, p.consumeN = 4000, 50000
		p.contenders = []contender{newWatermillKafka(seeds), &franzContender{seeds: seeds}}
		p.prepare = func(ctx context.Context, topic string) error { return createKafkaTopic(ctx, seeds, topic) }
		p.fill = func(ctx context.Context, topic string, n int) error { return fillKafka(ctx, seeds, topic, n) }
	case "sqs":
		courierURL = "sqs://?region=us-east-1&endpoint=" + url.QueryEscape(env.sqsEndpoint)
		p.publishN, p.consumeN = 1000, 1000
		p.contenders = []contender{newAWSSNSSQS(env.sqsEndpoint)}
	case "pubsub":
		courierURL = "gcppubsub://" + pubsubProject + "?endpoint=" + env.pubsubHost
		p.publishN, p.e2e = 2000, false // pstest delivers ~100 msg/s: no consume, no end to end
		g, err := newGCPPubSub(ctx, env.pubsubHost, pubsubProject)
		if err != nil {
			return p, err
		}
		p.contenders = []contender{g}
	}
	c, err := newCourier(ctx, courierURL)
	if err != nil {
		for _, o := range p.contenders {
			_ = o.Close()
		}
		return p, fmt.Errorf("courier: %w", err)
	}
	p.contenders = append([]contender{c}, p.contenders...)
	return p, nil
}

// results holds every measurement of one broker: workload → contender → values.
type results map[string]map[string][]float64

func (r results) add(workload, contender string, v float64) {
	if r[workload] == nil {
		r[workload] = map[string][]float64{}
	}
	r[workload][contender] = append(r[workload][contender], v)
}

// runBroker runs every round on broker b and prints its BENCH lines.
func runBroker(ctx context.Context, o options, env brokerEnv, b string) error {
	p, err := plan(ctx, env, b)
	if err != nil {
		return err
	}
	defer func() {
		for _, c := range p.contenders {
			_ = c.Close()
		}
	}()
	run := fmt.Sprintf("peers%06d", rand.IntN(1_000_000))
	res := results{}
	// Warm-up (not counted): JIT-compiled brokers (ElasticMQ, Kafka) start slow.
	for _, c := range p.contenders {
		topic := fmt.Sprintf("%s-%s-warm", run, c.Name())
		if _, err := measurePublish(ctx, p, c, topic, o.n(p.publishN/4)); err != nil {
			fmt.Printf("# %s %s warm-up: %v\n", b, c.Name(), err)
		}
	}
	for r := range o.rounds {
		for i := range p.contenders {
			c := p.contenders[(i+r)%len(p.contenders)] // each round starts with another contender
			runRound(ctx, o, p, c, b, fmt.Sprintf("%s-%s-r%d", run, c.Name(), r), res)
		}
	}
	printResults(b, p.contenders, res)
	return ctx.Err()
}

// runRound measures every workload of contender c once; topic prefixes its topic names.
func runRound(ctx context.Context, o options, p brokerPlan, c contender, b, topic string, res results) {
	report := func(w string, v float64, err error) {
		if err != nil {
			fmt.Printf("# %s %s %s: %v\n", b, w, c.Name(), err)
			return
		}
		res.add(w, c.Name(), v)
		if o.verbose {
			fmt.Printf("# %s %s %s=%.4g\n", b, w, c.Name(), v)
		}
	}
	if o.has("publish") {
		v, err := measurePublish(ctx, p, c, topic+"-pub", o.n(p.publishN))
		report(fmt.Sprintf("publish-%d", publishers), v, err)
	}
	if o.has("latency") {
		l, err := measureLatency(ctx, p, c, topic+"-lat", o.d(p.latencyD))
		report("publish-latency-p50", l.pubP50, err)
		report("publish-latency-p99", l.pubP99, err)
		if p.e2e {
			report("e2e-latency-p50", l.e2eP50, err)
			report("e2e-latency-p99", l.e2eP99, err)
		}
	}
	if o.has("consume") && p.consumeN > 0 {
		v, err := measureConsume(ctx, p, c, topic+"-con", o.n(p.consumeN))
		report("consume", v, err)
	}
}

// measurePublish measures publish-16 on a topic with one (idle) subscription, so that every
// broker stores what is published (a RabbitMQ exchange without a queue drops it unwritten).
func measurePublish(ctx context.Context, p brokerPlan, c contender, topic string, n int) (float64, error) {
	if err := p.prepare(ctx, topic); err != nil {
		return 0, err
	}
	cons, err := c.Subscribe(ctx, topic, topic+"-sub")
	if err != nil {
		return 0, err
	}
	defer cons.Close()
	s, err := c.Sender(ctx, topic)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	return publishN(ctx, s, n, publishers)
}

func measureLatency(ctx context.Context, p brokerPlan, c contender, topic string, d time.Duration) (latencies, error) {
	if err := p.prepare(ctx, topic); err != nil {
		return latencies{}, err
	}
	var cons consumer
	if p.e2e {
		var err error
		if cons, err = c.Subscribe(ctx, topic, topic+"-sub"); err != nil {
			return latencies{}, err
		}
		defer cons.Close()
	}
	s, err := c.Sender(ctx, topic)
	if err != nil {
		return latencies{}, err
	}
	defer s.Close()
	return publishPaced(ctx, s, cons, latencyRate, d, latencyWorkers)
}

func measureConsume(ctx context.Context, p brokerPlan, c contender, topic string, n int) (float64, error) {
	if err := p.prepare(ctx, topic); err != nil {
		return 0, err
	}
	cons, err := c.Subscribe(ctx, topic, topic+"-sub")
	if err != nil {
		return 0, err
	}
	defer cons.Close()
	if err := fillTopic(ctx, p, c, topic, n); err != nil {
		return 0, fmt.Errorf("pre-fill: %w", err)
	}
	return consumeN(ctx, cons, n)
}

// fillTopic publishes n messages to topic, with p.fill or else with c's own sender.
func fillTopic(ctx context.Context, p brokerPlan, c contender, topic string, n int) error {
	if p.fill != nil {
		return p.fill(ctx, topic, n)
	}
	s, err := c.Sender(ctx, topic)
	if err != nil {
		return err
	}
	defer s.Close()
	_, err = publishN(ctx, s, n, fillWorkers)
	return err
}

// printResults prints one BENCH line per workload and peer: medians, Courier first.
func printResults(b string, cs []contender, res results) {
	order := []string{"publish-16", "publish-latency-p50", "publish-latency-p99", "e2e-latency-p50", "e2e-latency-p99", "consume"}
	for _, w := range order {
		byName := res[w]
		if byName == nil {
			continue
		}
		cv := median(byName["courier"])
		for _, peer := range cs[1:] {
			pv := median(byName[peer.Name()])
			fmt.Printf("BENCH %s %s courier=%s %s=%s ratio=%s\n", b, w, figure(w, cv), peer.Name(), figure(w, pv), ratio(cv, pv))
		}
	}
}

// figure formats a median: msg/s as a whole number, latencies as milliseconds.
func figure(w string, v float64) string {
	if math.IsNaN(v) {
		return "error"
	}
	if strings.Contains(w, "latency") {
		return strconv.FormatFloat(v, 'g', 3, 64) + "ms"
	}
	return fmt.Sprintf("%.0f", v)
}

func ratio(a, b float64) string {
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return "n/a"
	}
	return strconv.FormatFloat(a/b, 'g', 3, 64)
}

// median returns the median of vs, NaN when there are none.
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), vs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// createKafkaTopic creates topic with one partition (replication factor 1).
func createKafkaTopic(ctx context.Context, seeds []string, topic string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return err
	}
	defer cl.Close()
	req := kmsg.NewPtrCreateTopicsRequest()
	t := kmsg.NewCreateTopicsRequestTopic()
	t.Topic, t.NumPartitions, t.ReplicationFactor = topic, 1, 1
	req.Topics = append(req.Topics, t)
	req.TimeoutMillis = 10_000
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	for _, rt := range resp.Topics {
		if err := kerr.ErrorForCode(rt.ErrorCode); err != nil && err != kerr.TopicAlreadyExists {
			return fmt.Errorf("create topic %s: %w", topic, err)
		}
	}
	return nil
}

// fillKafka produces n messages to topic with franz-go, batched (acks=all): the same records,
// written the same way, for every contender's consume measurement.
func fillKafka(ctx context.Context, seeds []string, topic string, n int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	errs := make(chan error, 1)
	for range n {
		cl.Produce(ctx, &kgo.Record{Value: payload()}, func(_ *kgo.Record, err error) {
			if err != nil {
				select {
				case errs <- err:
				default:
				}
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}
