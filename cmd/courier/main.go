// Command courier publishes, tails and redrives messages on any broker Courier supports, lists
// dead-lettered messages and checks that a broker answers.
//
//	courier publish  -topic orders [-key k] [-header name=value]... [payload]   (no payload: one message per line of -file, else stdin)
//	courier tail     -topic orders [-subscription s] [-n 10]
//	courier redrive  -topic orders -subscription billing [-max N] [-idle 5s] [-wait 15s]
//	courier dlq list -topic orders -subscription billing [-n 10] [-wait 5s]
//	courier dlq redrive ...                                                      (same as redrive)
//	courier ping     [URL]
//	courier bench    [-n 10000 | -duration 30s] [-rate 0] [-size 100] [-publishers 1] [-consumers 1] [-keys 0] [-json] [-plot f.png]
//	courier stats    [-json] [-watch 5s] [URL] <topic> <subscription>
//	courier version
//
// The broker comes from -url, or $COURIER_URL, or memory:// (which only lives as long as the
// command, so it is useful for trying the flags). Credentials in the URL never appear in output.
// Exit codes: 0 success (and -h), 1 failure, 2 usage error.
//
// bench is a load test that is also a loss check: it exits 1 when a sent message never
// arrived (duplicates are reported but allowed: delivery is at least once) or a publish failed.
package main

import (
	"bufio"
	"bytes"
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
  publish   publish one message (the payload argument) or one per line of -file or standard input
  tail      print messages as they arrive on a topic, through a subscription of their own
  redrive   move dead-lettered messages back to the topic they came from
  dlq       dlq list: print dead-lettered messages without removing them; dlq redrive: as redrive
  ping      check that the broker at a URL answers
  bench     load test: publish and consume N messages (or for a duration), report throughput,
            latency percentiles, lost and duplicated messages; exit 1 if any was lost
  stats     print a subscription's backlog: ready, in flight, delayed, consumers, Kafka lag
  version   print the version courier was built from

Run "courier <command> -h" for a command's flags. The broker is -url, else $COURIER_URL,
else memory://.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs the command in args and returns the exit code: 0 on success and for -h, 2 for a
// usage error, 1 for a failure.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "publish":
		err = publish(ctx, args[1:], stdin, stdout)
	case "tail":
		err = tail(ctx, args[1:], stdout)
	case "redrive":
		err = redrive(ctx, args[1:], stdout)
	case "dlq":
		err = dlq(ctx, args[1:], stdout)
	case "ping":
		err = ping(ctx, args[1:], stdout)
	case "bench":
		err = bench(ctx, args[1:], stdout, stderr)
	case "stats":
		err = stats(ctx, args[1:], stdout)
	case "version":
		err = version(args[1:], stdout)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "courier: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errFlags):
		return 2 // the flag package printed the problem and the usage
	case errors.Is(err, errUsage):
		fmt.Fprintln(stderr, errorLine(err))
		return 2
	}
	fmt.Fprintln(stderr, errorLine(err))
	return 1
}

// errFlags marks flag parsing errors, which the flag package has reported (exit code 2).
var errFlags = errors.New("bad flags")

// parseFlags parses args; its errors are flag.ErrHelp or wrap errFlags.
func parseFlags(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return fmt.Errorf("%w: %w", errFlags, err)
}

// errUsage marks errors in how a command was called (exit code 2).
var errUsage = errors.New("usage")

// usageError is an error in how a command was called.
func usageError(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errUsage}, args...)...)
}

// errorLine is the line printed for err: "courier: " once, however many layers added it.
func errorLine(err error) string {
	msg := strings.TrimPrefix(err.Error(), errUsage.Error()+": ")
	// Courier's packages begin their errors with "courier: "; wrapping puts some mid-line.
	return "courier: " + strings.ReplaceAll(msg, "courier: ", "")
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
	id := fs.String("id", "", "message ID (default: a new UUIDv7; with lines, a prefix: <id>-<line index>)")
	file := fs.String("file", "", "publish one message per line of this file (\"-\": standard input); lines have no length limit")
	headers := headerFlags{}
	fs.Var(headers, "header", "header name=value (repeatable)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *topic == "" {
		return usageError("publish: -topic is required")
	}
	if *file != "" && fs.NArg() > 0 {
		return usageError("publish: give a payload argument or -file, not both")
	}
	newMsg := func(payload []byte, n int) *message.Message {
		m := &message.Message{Key: *key, Payload: payload, Headers: message.Headers{}}
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
	src, what := stdin, "standard input"
	if *file != "" && *file != "-" {
		f, err := os.Open(*file)
		if err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		defer f.Close()
		src, what = f, *file
	}
	conn, err := open(ctx, *url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if fs.NArg() > 0 {
		return publishBatch(ctx, conn, *topic, []*message.Message{newMsg([]byte(strings.Join(fs.Args(), " ")), -1)}, out)
	}
	n, err := publishLines(ctx, conn, *topic, bufio.NewReader(src), newMsg, out)
	if err != nil {
		return fmt.Errorf("publish: %s: %w", what, err)
	}
	if n == 0 {
		if what == "standard input" {
			return usageError("publish: no payload argument and nothing on standard input")
		}
		return usageError("publish: %s is empty", what)
	}
	return nil
}

// linesPerBatch is how many lines publish sends in one Publish call.
const linesPerBatch = 100

// publishLines publishes one message per line of r (without its "\n" or "\r\n"), in batches,
// and returns how many lines it read. Lines may be of any length.
func publishLines(ctx context.Context, conn *transport.Conn, topic string, r *bufio.Reader, newMsg func([]byte, int) *message.Message, out io.Writer) (int, error) {
	var batch []*message.Message
	n := 0
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
			batch = append(batch, newMsg(line, n))
			n++
		}
		if len(batch) == linesPerBatch || (err != nil && len(batch) > 0) {
			if perr := publishBatch(ctx, conn, topic, batch, out); perr != nil {
				return n, perr
			}
			batch = batch[:0:0]
		}
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("read: %w", err)
		}
	}
}

// publishBatch publishes msgs and prints a line for each one the broker accepted.
func publishBatch(ctx context.Context, conn *transport.Conn, topic string, msgs []*message.Message, out io.Writer) error {
	err := conn.Publish(ctx, topic, msgs...)
	var pe *transport.PublishError
	failed := map[int]bool{}
	if errors.As(err, &pe) {
		for _, f := range pe.Failed {
			failed[f.Index] = true
		}
	}
	for i, m := range msgs {
		if !failed[i] && (err == nil || pe != nil) {
			fmt.Fprintf(out, "published %s to %s\n", m.ID, topic)
		}
	}
	return err
}

func tail(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	url := fs.String("url", "", "broker URL (default $COURIER_URL, else memory://)")
	topic := fs.String("topic", "", "topic to watch (required)")
	sub := fs.String("subscription", "", "subscription to read (default: a new one, courier-tail-<time>, that sees messages published from now on; it is deleted on exit where the broker can delete subscriptions)")
	n := fs.Int("n", 0, "stop after this many messages (0: until interrupted)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *topic == "" {
		return usageError("tail: -topic is required")
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
	if *sub == "" {
		defer cleanUpTail(conn, *topic, name, out)
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

// cleanUpTail deletes the subscription tail made for itself, or says it stays.
func cleanUpTail(conn *transport.Conn, topic, name string, out io.Writer) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	switch err := conn.DeleteSubscription(ctx, topic, name); {
	case err == nil:
		fmt.Fprintf(out, "deleted subscription %s\n", name)
	case errors.Is(err, transport.ErrUnsupported):
		fmt.Fprintf(out, "subscription %s stays on the broker (%s cannot delete subscriptions)\n", name, conn.Capabilities().Name)
	default:
		fmt.Fprintf(out, "could not delete subscription %s: %s\n", name, errorLine(err))
	}
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
	wait := fs.Duration("wait", deadletter.DefaultStartTimeout, "how long to wait for the first message (attaching takes seconds on some brokers)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *topic == "" || *sub == "" {
		return usageError("redrive: -topic and -subscription are required")
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
	res, err := redriveWaiting(ctx, conn, dt, *sub+transport.DeadLetterSuffix, deadletter.RedriveOptions{Max: *max, IdleTimeout: *idle, StartTimeout: *wait}, out)
	fmt.Fprintf(out, "moved %d, skipped %d, failed %d (from %s, subscription %s%s)\n", res.Moved, res.Skipped, res.Failed, dt, *sub, transport.DeadLetterSuffix)
	for _, e := range res.Errors {
		fmt.Fprintln(out, "  error:", e)
	}
	return err
}
