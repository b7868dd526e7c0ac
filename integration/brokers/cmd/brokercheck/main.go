// Command brokercheck asks each broker a real protocol question and reports
// whether it answered. integration/brokers/up.sh uses it for every readiness
// check; people can use it to see what is up.
//
// Usage:
//
//	brokercheck [-wait 90s] [-smoke] [-probe] [service...]
//
// Services are rabbitmq, kafka, sqs, pubsub, redis and postgres (default: all).
// Endpoints are the ones up.sh serves, unless the COURIER_* variable of the
// service is set (COURIER_RABBITMQ_URL, COURIER_KAFKA_BROKERS,
// COURIER_SQS_ENDPOINT, COURIER_PUBSUB_EMULATOR_HOST, COURIER_REDIS_URL,
// COURIER_POSTGRES_URL).
//
// The readiness question per service:
//
//	rabbitmq  AMQP connection.open and channel.open
//	kafka     Metadata request naming a controller
//	sqs       ListQueues (AWS JSON protocol)
//	pubsub    ListTopics over gRPC
//	redis     PING
//	postgres  SELECT 1 in the courier database
//
// With -smoke, each service also does a full round trip afterwards (declare,
// publish, receive, acknowledge, clean up), using throwaway names.
//
// With -probe, every service is asked once, concurrently, with a short
// timeout; the names of those that answered are printed one per line and the
// exit code is 0 whatever answered. up.sh uses it to write .brokers/env.
//
// Otherwise the exit code is 0 when every service answered and 1 when any
// did not.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// services lists every service brokercheck knows, in up.sh order.
var services = []string{"rabbitmq", "kafka", "sqs", "pubsub", "redis", "postgres"}

// envVars maps each service to the variable naming its endpoint.
var envVars = map[string]string{
	"rabbitmq": "COURIER_RABBITMQ_URL",
	"kafka":    "COURIER_KAFKA_BROKERS",
	"sqs":      "COURIER_SQS_ENDPOINT",
	"pubsub":   "COURIER_PUBSUB_EMULATOR_HOST",
	"redis":    "COURIER_REDIS_URL",
	"postgres": "COURIER_POSTGRES_URL",
}

// defaults are the endpoints up.sh serves.
var defaults = map[string]string{
	"rabbitmq": "amqp://guest:guest@127.0.0.1:5672/",
	"kafka":    "127.0.0.1:9092",
	"sqs":      "http://127.0.0.1:9324",
	"pubsub":   "127.0.0.1:8085",
	"redis":    "redis://127.0.0.1:6379/0",
	"postgres": "postgres://postgres:postgres@127.0.0.1:5432/courier?sslmode=disable",
}

// checker is one service's readiness question and smoke round trip.
type checker struct {
	ready func(ctx context.Context, endpoint string) error
	smoke func(ctx context.Context, endpoint string) error
}

var checkers = map[string]checker{
	"rabbitmq": {readyRabbitMQ, smokeRabbitMQ},
	"kafka":    {readyKafka, smokeKafka},
	"sqs":      {readySQS, smokeSQS},
	"pubsub":   {readyPubSub, smokePubSub},
	"redis":    {readyRedis, smokeRedis},
	"postgres": {readyPostgres, smokePostgres},
}

func endpoint(svc string) string {
	if v := os.Getenv(envVars[svc]); v != "" {
		return v
	}
	return defaults[svc]
}

func main() {
	wait := flag.Duration("wait", 0, "keep asking until the service answers or this much time has passed (0: ask once)")
	smoke := flag.Bool("smoke", false, "after readiness, do a full round trip on each service")
	probe := flag.Bool("probe", false, "ask every service once, concurrently; print the names of those that answered; always exit 0")
	attempt := flag.Duration("attempt-timeout", 5*time.Second, "time limit of one question")
	quiet := flag.Bool("q", false, "print only failures")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: %s [-wait dur] [-smoke] [-probe] [-q] [service...]\nservices: %s\n",
			os.Args[0], strings.Join(services, " "))
		flag.PrintDefaults()
	}
	flag.Parse()

	svcs := flag.Args()
	if len(svcs) == 0 {
		svcs = services
	}
	for _, s := range svcs {
		if _, ok := checkers[s]; !ok {
			fmt.Fprintf(os.Stderr, "brokercheck: unknown service %q (known: %s)\n", s, strings.Join(services, " "))
			os.Exit(2)
		}
	}

	if *probe {
		runProbe(svcs, *attempt)
		return
	}

	failed := false
	for _, s := range svcs {
		ep := endpoint(s)
		start := time.Now()
		err := waitReady(s, ep, *wait, *attempt)
		if err == nil && *smoke {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			err = checkers[s].smoke(ctx, ep)
			cancel()
			if err != nil {
				err = fmt.Errorf("smoke: %w", err)
			}
		}
		took := time.Since(start).Round(10 * time.Millisecond)
		if err != nil {
			failed = true
			fmt.Printf("FAIL %-8s %s: %v (after %s)\n", s, redact(ep), err, took)
			continue
		}
		if !*quiet {
			what := "answers"
			if *smoke {
				what = "round trip ok"
			}
			fmt.Printf("ok   %-8s %s %s (%s)\n", s, redact(ep), what, took)
		}
	}
	if failed {
		os.Exit(1)
	}
}

// waitReady asks s until it answers or wait has passed; it asks at least once.
func waitReady(s, ep string, wait, attempt time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), attempt)
		err := checkers[s].ready(ctx, ep)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().Add(500 * time.Millisecond).After(deadline) {
			return err
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func runProbe(svcs []string, attempt time.Duration) {
	ok := make([]bool, len(svcs))
	var wg sync.WaitGroup
	for i, s := range svcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), attempt)
			defer cancel()
			ok[i] = checkers[s].ready(ctx, endpoint(s)) == nil
		}()
	}
	wg.Wait()
	for i, s := range svcs {
		if ok[i] {
			fmt.Println(s)
		}
	}
}

// redact hides the password of a URL endpoint in output.
func redact(ep string) string {
	at := strings.LastIndex(ep, "@")
	scheme := strings.Index(ep, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return ep
	}
	userinfo := ep[scheme+3 : at]
	if user, _, ok := strings.Cut(userinfo, ":"); ok {
		return ep[:scheme+3] + user + ":***" + ep[at:]
	}
	return ep
}

// uniqueName returns a throwaway resource name for smoke round trips.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano())
}

var errNoMessage = errors.New("message did not come back")
