// Command pstest-server serves Google's in-process Pub/Sub fake
// (cloud.google.com/go/pubsub/v2/pstest) over real gRPC on a fixed address,
// so that the real Pub/Sub client with PUBSUB_EMULATOR_HOST set talks to it
// exactly as it would to Google's Pub/Sub emulator.
//
// It exists because the Java-based gcloud emulator cannot be installed from a
// package registry. integration/brokers/up.sh builds it into .brokers/bin and
// starts it in the background.
//
// Usage:
//
//	pstest-server [-addr 127.0.0.1:8085] [-min-ack-deadline 10s]
//
// The server keeps all state in memory: a restart forgets every topic and
// subscription. pstest also keeps a record of every message ever published,
// so its memory grows with use; restart it (down.sh pubsub; up.sh pubsub) if
// a long session made it large.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"cloud.google.com/go/pubsub/v2/pstest"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8085", "host:port to listen on")
	minAck := flag.Duration("min-ack-deadline", 0,
		"lowest ack deadline subscriptions may use (pstest's default is 10s; must be > 1s if set)")
	flag.Parse()
	if flag.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "usage: %s [-addr host:port] [-min-ack-deadline dur]\n", os.Args[0])
		os.Exit(2)
	}
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	log.SetPrefix("pstest-server: ")

	if *minAck != 0 {
		if *minAck <= time.Second {
			log.Fatalf("-min-ack-deadline must be greater than 1s, got %s", *minAck)
		}
		pstest.SetMinAckDeadline(*minAck)
	}

	srv, err := newServer(*addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("Pub/Sub fake (pstest) listening on %s (pid %d)", srv.Addr, os.Getpid())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	s := <-sig
	log.Printf("received %s, shutting down", s)
	if err := srv.Close(); err != nil {
		log.Printf("close: %v", err)
	}
}

// newServer starts pstest on addr, turning pstest's panic on a bind failure
// (for instance "address already in use") into an error.
func newServer(addr string) (srv *pstest.Server, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("cannot serve on %s: %v", addr, r)
		}
	}()
	return pstest.NewServerWithAddress(addr), nil
}
