// Command bench compares Courier with its peers (Watermill, Go CDK, franz-go) on the brokers of
// `make brokers-up`: the same workloads, the same brokers, equal durability, interleaved rounds.
// See README.md in this directory for the workloads, the settings and the output format.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"strings"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	var o options
	flag.IntVar(&o.rounds, "rounds", 5, "interleaved rounds (each contender once per round); medians are reported")
	flag.StringVar(&o.brokers, "brokers", "memory,rabbitmq,kafka,sqs,pubsub", "comma-separated brokers to run")
	flag.StringVar(&o.workloads, "workloads", "publish,latency,consume", "comma-separated workloads to run")
	flag.Float64Var(&o.scale, "scale", 1, "multiplies every message count and duration (0.2 for a quick check)")
	flag.BoolVar(&o.verbose, "v", false, "print every measurement as it is taken")
	flag.Parse()
	log.SetOutput(io.Discard) // mempubsub logs every publish to a topic without subscribers
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 14*time.Minute)
	defer cancel()

	env, err := loadEnv(strings.Split(o.brokers, ","))
	if err != nil {
		return err
	}
	start := time.Now()
	for _, b := range strings.Split(o.brokers, ",") {
		if err := runBroker(ctx, o, env, b); err != nil {
			return fmt.Errorf("%s: %w", b, err)
		}
	}
	fmt.Printf("# done in %s\n", time.Since(start).Round(time.Second))
	return nil
}

// options are the command-line flags.
type options struct {
	rounds    int
	brokers   string
	workloads string
	scale     float64
	verbose   bool
}

func (o options) has(workload string) bool {
	for _, w := range strings.Split(o.workloads, ",") {
		if w == workload {
			return true
		}
	}
	return false
}

// n scales a message count, never below 50.
func (o options) n(base int) int { return max(50, int(float64(base)*o.scale)) }

// d scales a duration, never below half a second.
func (o options) d(base time.Duration) time.Duration {
	return max(500*time.Millisecond, time.Duration(float64(base)*o.scale))
}
