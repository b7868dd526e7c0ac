package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/deadletter"
	"github.com/courierhq/courier/transport"
)

// waitNotice is how long redrive waits for a first dead-lettered message before it says
// that it is waiting.
const waitNotice = 500 * time.Millisecond

// redriveWaiting runs deadletter.Redrive and, when no message arrived within waitNotice,
// says that the dead-letter subscription is empty so far and how long it waits.
func redriveWaiting(ctx context.Context, conn *transport.Conn, topic, sub string, opts deadletter.RedriveOptions, out io.Writer) (deadletter.RedriveResult, error) {
	var seen atomic.Bool
	filter := opts.Filter
	opts.Filter = func(m *message.Message) bool {
		seen.Store(true)
		return filter == nil || filter(m)
	}
	wait := max(opts.StartTimeout, opts.IdleTimeout)
	if opts.StartTimeout == 0 {
		wait = max(deadletter.DefaultStartTimeout, opts.IdleTimeout)
	}
	done := make(chan struct{})
	noticed := make(chan struct{})
	go func() {
		defer close(noticed)
		t := time.NewTimer(waitNotice)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			if !seen.Load() {
				fmt.Fprintf(out, "no dead-lettered messages on %s (subscription %s) yet; waiting up to %s for one (-wait)\n", topic, sub, wait)
			}
		}
	}()
	res, err := deadletter.Redrive(ctx, conn, topic, sub, opts)
	close(done)
	<-noticed
	return res, err
}

// dlq runs "courier dlq list" and "courier dlq redrive".
func dlq(ctx context.Context, args []string, out io.Writer) error {
	const dlqUsage = "dlq: want \"courier dlq list\" or \"courier dlq redrive\" (-h for their flags)"
	if len(args) == 0 {
		return usageError(dlqUsage)
	}
	switch args[0] {
	case "list":
		return dlqList(ctx, args[1:], out)
	case "redrive":
		return redrive(ctx, args[1:], out)
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(out, strings.TrimPrefix(dlqUsage, "dlq: "))
		return flag.ErrHelp
	}
	return usageError("dlq: unknown command %q; %s", args[0], strings.TrimPrefix(dlqUsage, "dlq: "))
}

// dlqList counts the dead-lettered messages (up to -scan) and prints the first -n, without
// removing them: it receives them all, then gives each back (Puller.Release). Receiving them
// all, rather than the first n, leaves no message fetched ahead by the client and forgotten
// (SQS, Pub/Sub would keep those invisible until their visibility timeout or ack deadline).
// On brokers that count deliveries (RabbitMQ quorum queues, SQS, Pub/Sub) each message's
// count goes up by one; on Kafka nothing is committed, so the messages stay where they were.
func dlqList(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("dlq list", flag.ContinueOnError)
	url := fs.String("url", "", "broker URL (default $COURIER_URL, else memory://)")
	topic := fs.String("topic", "", "the original topic whose dead-letter topic to read (required)")
	sub := fs.String("subscription", "", "the subscription whose dead-lettered messages to list (required)")
	dlqTopic := fs.String("dlq-topic", "", "dead-letter topic (default: the broker's default for -topic)")
	n := fs.Int("n", 10, "print at most this many messages")
	scan := fs.Int("scan", 1000, "count at most this many messages (all are held until the listing ends)")
	wait := fs.Duration("wait", 5*time.Second, "stop once no message arrived for this long")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *topic == "" || *sub == "" {
		return usageError("dlq list: -topic and -subscription are required")
	}
	if *n < 1 || *scan < *n {
		return usageError("dlq list: want 1 <= -n <= -scan")
	}
	conn, err := open(ctx, *url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	dt := *dlqTopic
	if dt == "" {
		dt = conn.DefaultDeadLetterTopic(*topic)
	}
	name := *sub + transport.DeadLetterSuffix
	p, err := conn.Pull(ctx, dt, name, transport.PullConfig{})
	if err != nil {
		return err
	}
	defer p.Close(context.Background())
	msgs, err := pullUpTo(ctx, p, *scan, *wait)
	for _, m := range msgs[:min(*n, len(msgs))] {
		printMessage(out, m)
	}
	for _, m := range msgs {
		if rerr := p.Release(context.WithoutCancel(ctx), m); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}
	more := ""
	if len(msgs) == *scan {
		more = "; there may be more"
	}
	fmt.Fprintf(out, "listed %d of %d dead-lettered message(s) from %s, subscription %s (left in place%s)\n",
		min(*n, len(msgs)), len(msgs), dt, name, more)
	return err
}

// pullUpTo receives up to n messages, stopping once none arrived for idle.
func pullUpTo(ctx context.Context, p *transport.Puller, n int, idle time.Duration) ([]*message.Message, error) {
	var msgs []*message.Message
	buf := make([]*message.Message, n)
	for len(msgs) < n {
		rctx, cancel := context.WithTimeout(ctx, idle)
		k, err := p.Receive(rctx, buf[:n-len(msgs)])
		cancel()
		msgs = append(msgs, buf[:k]...)
		if err != nil {
			if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				return msgs, nil
			}
			return msgs, err
		}
	}
	return msgs, nil
}

// ping checks that the broker at a URL answers (Conn.Ping).
func ping(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("ping", flag.ContinueOnError)
	url := fs.String("url", "", "broker URL (or as the argument; default $COURIER_URL, else memory://)")
	timeout := fs.Duration("timeout", 10*time.Second, "give up after this long")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 1 || (fs.NArg() == 1 && *url != "") {
		return usageError("ping: give one URL, as -url or as the argument")
	}
	if fs.NArg() == 1 {
		*url = fs.Arg(0)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	start := time.Now()
	conn, err := open(ctx, *url)
	if err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	defer conn.Close(context.Background())
	opened := time.Since(start)
	start = time.Now()
	if err := conn.Ping(ctx); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	shown := *url
	if shown == "" {
		shown = transport.URLFromEnv()
	}
	fmt.Fprintf(out, "ok: %s at %s (connected in %s, ping %s)\n", conn.Capabilities().Name, transport.RedactURL(shown),
		opened.Round(time.Microsecond), time.Since(start).Round(time.Microsecond))
	return nil
}

// version prints the module version the command was built from.
func version(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fmt.Fprintln(out, versionLine(debug.ReadBuildInfo()))
	return nil
}

// versionLine formats build information: "courier <version> (<go version>[, <revision>])".
func versionLine(bi *debug.BuildInfo, ok bool) string {
	if !ok {
		return "courier (unknown version: built without module information)"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	extra := []string{bi.GoVersion}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev != "" {
		extra = append(extra, "revision "+rev[:min(12, len(rev))]+dirty)
	}
	return "courier " + v + " (" + strings.Join(extra, ", ") + ")"
}
