package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/courierhq/courier/transport"
)

// stats prints a subscription's backlog (Conn.Backlog): once, or every -watch interval until
// interrupted.
//
//	courier stats [-url URL] [-json] [-watch 5s] [URL] <topic> <subscription>
func stats(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("stats", flag.ContinueOnError)
	url := fs.String("url", "", "broker URL (or as the first of three arguments; default $COURIER_URL, else memory://)")
	topic := fs.String("topic", "", "topic (or as an argument)")
	sub := fs.String("subscription", "", "subscription (or as an argument)")
	asJSON := fs.Bool("json", false, "print one JSON object per reading")
	watch := fs.Duration("watch", 0, "read again at this interval until interrupted (0: once)")
	timeout := fs.Duration("timeout", 10*time.Second, "give up on one reading after this long")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := statsArgs(fs.Args(), url, topic, sub); err != nil {
		return err
	}
	if *watch < 0 || *timeout <= 0 {
		return usageError("stats: want -watch >= 0 and -timeout > 0")
	}
	octx, cancel := context.WithTimeout(ctx, *timeout)
	conn, err := open(octx, *url)
	cancel()
	if err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	defer conn.Close(context.Background())
	for {
		rctx, cancel := context.WithTimeout(ctx, *timeout)
		b, err := conn.Backlog(rctx, *topic, *sub)
		cancel()
		if err != nil {
			return fmt.Errorf("stats: %w", err)
		}
		r := newStatsReport(conn.Capabilities().Name, *topic, *sub, b)
		if err := r.print(out, *asJSON); err != nil {
			return fmt.Errorf("stats: %w", err)
		}
		if *watch == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(*watch):
		}
	}
}

// statsArgs takes the topic and subscription (and the URL first, when there are three) from
// the arguments, where the flags did not give them.
func statsArgs(args []string, url, topic, sub *string) error {
	switch {
	case len(args) == 3 && *url == "" && *topic == "" && *sub == "":
		*url, *topic, *sub = args[0], args[1], args[2]
	case len(args) == 2 && *topic == "" && *sub == "":
		*topic, *sub = args[0], args[1]
	case len(args) != 0:
		return usageError("stats: want [URL] <topic> <subscription>, or -topic and -subscription")
	}
	if *topic == "" || *sub == "" {
		return usageError("stats: a topic and a subscription are required")
	}
	return nil
}

// statsReport is one reading as printed; unknown counts are nil (JSON null).
type statsReport struct {
	Broker       string          `json:"broker"`
	Topic        string          `json:"topic"`
	Subscription string          `json:"subscription"`
	Time         time.Time       `json:"time"`
	Messages     int64           `json:"messages"`
	InFlight     *int64          `json:"in_flight"`
	Delayed      *int64          `json:"delayed"`
	Consumers    *int64          `json:"consumers"`
	Pending      int64           `json:"pending"`
	Approximate  bool            `json:"approximate"`
	Partitions   []partitionJSON `json:"partitions,omitempty"`
}

type partitionJSON struct {
	Partition       int   `json:"partition"`
	Lag             int64 `json:"lag"`
	CommittedOffset int64 `json:"committed_offset"`
	EndOffset       int64 `json:"end_offset"`
}

func newStatsReport(broker, topic, sub string, b transport.Backlog) statsReport {
	known := func(n int64) *int64 {
		if n < 0 {
			return nil
		}
		return &n
	}
	r := statsReport{
		Broker: broker, Topic: topic, Subscription: sub, Time: time.Now().UTC(),
		Messages: b.Messages, InFlight: known(b.InFlight), Delayed: known(b.Delayed), Consumers: known(int64(b.Consumers)),
		Pending: b.Pending(), Approximate: b.Approximate,
	}
	for _, p := range b.Partitions {
		r.Partitions = append(r.Partitions, partitionJSON(p))
	}
	return r
}

// print writes the reading as one JSON line, or as an aligned table for people.
func (r statsReport) print(out io.Writer, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(out).Encode(r)
	}
	count := func(n *int64) string {
		if n == nil {
			return "unknown"
		}
		if r.Approximate {
			return "~" + strconv.FormatInt(*n, 10)
		}
		return strconv.FormatInt(*n, 10)
	}
	ready := "ready"
	if len(r.Partitions) > 0 {
		ready = "ready (lag)"
	}
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "%s/%s on %s\n", r.Topic, r.Subscription, r.Broker)
	fmt.Fprintf(w, "  %s\t%s\n", ready, count(&r.Messages))
	fmt.Fprintf(w, "  in flight\t%s\n", count(r.InFlight))
	fmt.Fprintf(w, "  delayed\t%s\n", count(r.Delayed))
	fmt.Fprintf(w, "  consumers\t%s\n", count(r.Consumers))
	if len(r.Partitions) > 0 {
		fmt.Fprintf(w, "  partition\tlag\tcommitted\tend\n")
		for _, p := range r.Partitions {
			committed := strconv.FormatInt(p.CommittedOffset, 10)
			if p.CommittedOffset < 0 {
				committed = "none"
			}
			fmt.Fprintf(w, "  %d\t%d\t%s\t%d\n", p.Partition, p.Lag, committed, p.EndOffset)
		}
	}
	if r.Approximate {
		fmt.Fprintf(w, "  (%s's counts are approximate and may trail by about a minute)\n", strings.ToUpper(r.Broker))
	}
	return w.Flush()
}
