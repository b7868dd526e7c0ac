// Command courier publishes, tails and redrives messages on any broker Courier supports.
//
//	courier publish  -topic orders [-key k] [-header name=value]... [payload]   (no payload: one message per stdin line)
//	courier tail     -topic orders [-subscription s] [-n 10]
//	courier redrive  -topic orders -subscription billing [-max N] [-idle 5s]
//
// The broker comes from -url, or $COURIER_URL, or memory:// (which only lives as long as the
// command, so it is useful for trying the flags). Credentials in the URL never appear in output.
//
// A load-test command is planned; see ARCHITECTURE.md.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	_ "github.com/courierhq/courier/adapters/all"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/deadletter"
	"github.com/courierhq/courier/transport"
)

const usage = `usage: courier <command> [flags]

commands:
  publish   publish one message (the payload argument) or one per line of standard input
  tail      print messages as they arrive on a topic, through a subscription of their own
  redrive   move dead-lettered messages back to the topic they came from

Run "courier <command> -h" for a command's flags. The broker is -url, else $COURIER_URL,
else memory://.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "publish":
		err = publish(ctx, os.Args[2:], os.Stdin, os.Stdout)
	case "tail":
		err = tail(ctx, os.Args[2:], os.Stdout)
	case "redrive":
		err = redrive(ctx, os.Args[2:], os.Stdout)
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "courier: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "courier:", err)
		}
		os.Exit(1)
	}
}

// headerFlags collects repeated -header name=value flags.
type headerFlags message.Headers

func (h headerFlags) String() string { return fmt.Sprint(message.Headers(h)) }

func (h headerFlags) Set(v string) error {
	name, value, ok := strings.Cut(v, "=")
	if !ok || name == "" {
		return fmt.Errorf("want name=value, got %q", v)
	}
	h[name] = value
	return nil
}

func open(ctx context.Context, url string) (*transport.Conn, error) {
	if url == "" {
		url = transport.URLFromEnv()
	}
	return transport.Open(ctx, url)
}

func publish(ctx context.Context, args []string, stdin io.Reader, out io.Writer) error {
	fs := flag.NewFlagSet("publish", flag.ContinueOnError)
	url := fs.String("url", "", "broker URL (default $COURIER_URL, else memory://)")
	topic := fs.String("topic", "", "topic to publish to (required)")
	key := fs.String("key", "", "ordering key")
	id := fs.String("id", "", "message ID (default: a new UUIDv7; with stdin lines, a prefix)")
	headers := headerFlags{}
	fs.Var(headers, "header", "header name=value (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *topic == "" {
		return errors.New("publish: -topic is required")
	}
	var msgs []*message.Message
	newMsg := func(payload string, n int) *message.Message {
		m := &message.Message{Key: *key, Payload: []byte(payload), Headers: message.Headers{}}
		for k, v := range headers {
			m.Headers[k] = v
		}
		if *id != "" {
			m.ID = *id
			if n >= 0 {
				m.ID = fmt.Sprintf("%s-%d", *id, n)
			}
		}
		return m
	}
	if fs.NArg() > 0 {
		msgs = append(msgs, newMsg(strings.Join(fs.Args(), " "), -1))
	} else {
		sc := bufio.NewScanner(stdin)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			msgs = append(msgs, newMsg(sc.Text(), len(msgs)))
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("publish: read stdin: %w", err)
		}
		if len(msgs) == 0 {
			return errors.New("publish: no payload argument and nothing on standard input")
		}
	}
	conn, err := open(ctx, *url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	err = conn.Publish(ctx, *topic, msgs...)
	var pe *transport.PublishError
	failed := map[int]bool{}
	if errors.As(err, &pe) {
		for _, f := range pe.Failed {
			failed[f.Index] = true
		}
	}
	for i, m := range msgs {
		if !failed[i] && (err == nil || pe != nil) {
			fmt.Fprintf(out, "published %s to %s\n", m.ID, *topic)
		}
	}
	return err
}

func tail(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	url := fs.String("url", "", "broker URL (default $COURIER_URL, else memory://)")
	topic := fs.String("topic", "", "topic to watch (required)")
	sub := fs.String("subscription", "", "subscription to read (default: a new one, courier-tail-<time>, that sees messages published from now on; it stays on the broker afterwards)")
	n := fs.Int("n", 0, "stop after this many messages (0: until interrupted)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *topic == "" {
		return errors.New("tail: -topic is required")
	}
	conn, err := open(ctx, *url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	name := *sub
	if name == "" {
		if !conn.Capabilities().FanOut {
			return fmt.Errorf("tail: %s has no fan-out, so a subscription of its own would take messages from their consumers; name one with -subscription to consume from it on purpose", conn.Capabilities().Name)
		}
		name = fmt.Sprintf("courier-tail-%d", time.Now().UnixNano())
	}
	// The handler never fails, so no dead-letter subscription is needed: setting DeadLetter
	// keeps Subscribe from creating one next to the tail's own.
	s, err := conn.Subscribe(ctx, *topic, name, transport.SubscriberConfig{Concurrency: 1,
		DeadLetter: transport.DeadLetterFunc(func(context.Context, *message.Message, transport.Failure) error {
			return errors.New("tail does not dead-letter")
		})})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "tailing %s through subscription %s (Ctrl-C to stop)\n", *topic, name)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	seen := 0
	return s.Run(runCtx, func(_ context.Context, m *message.Message) error {
		if *n > 0 && seen >= *n {
			return nil // arrived while stopping
		}
		printMessage(out, m)
		seen++
		if *n > 0 && seen >= *n {
			stop()
		}
		return nil
	})
}

func printMessage(out io.Writer, m *message.Message) {
	fmt.Fprintf(out, "--- %s  id=%s key=%q attempt=%d published=%s\n", m.Topic, m.ID, m.Key, m.Attempt, m.PublishTime.UTC().Format(time.RFC3339Nano))
	names := make([]string, 0, len(m.Headers))
	for k := range m.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(out, "    %s: %s\n", k, m.Headers[k])
	}
	fmt.Fprintf(out, "%s\n", m.Payload)
}

func redrive(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("redrive", flag.ContinueOnError)
	url := fs.String("url", "", "broker URL (default $COURIER_URL, else memory://)")
	topic := fs.String("topic", "", "the original topic whose dead-letter topic to drain (required)")
	sub := fs.String("subscription", "", "the subscription whose dead-lettered messages to move (required)")
	dlqTopic := fs.String("dlq-topic", "", "dead-letter topic (default: the broker's default for -topic)")
	max := fs.Int("max", 0, "move at most this many messages (0: all)")
	idle := fs.Duration("idle", deadletter.DefaultIdleTimeout, "stop once no message arrived for this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *topic == "" || *sub == "" {
		return errors.New("redrive: -topic and -subscription are required")
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
	res, err := deadletter.Redrive(ctx, conn, dt, *sub+transport.DeadLetterSuffix, deadletter.RedriveOptions{Max: *max, IdleTimeout: *idle})
	fmt.Fprintf(out, "moved %d, skipped %d, failed %d (from %s, subscription %s%s)\n", res.Moved, res.Skipped, res.Failed, dt, *sub, transport.DeadLetterSuffix)
	for _, e := range res.Errors {
		fmt.Fprintln(out, "  error:", e)
	}
	return err
}
