package main

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
)

// brokerEnv holds the endpoints of .brokers/env (integration/brokers maps the same variables).
type brokerEnv struct {
	rabbitURL   string // COURIER_RABBITMQ_URL, amqp://…
	kafkaAddrs  string // COURIER_KAFKA_BROKERS, host:port[,host:port]
	sqsEndpoint string // COURIER_SQS_ENDPOINT, http://host:port (ElasticMQ)
	pubsubHost  string // COURIER_PUBSUB_EMULATOR_HOST, host:port (pstest)
}

const startHint = "start the brokers with `make brokers-up`, then `set -a; . .brokers/env; set +a` (make bench-peers does the sourcing)"

// loadEnv reads the endpoints the brokers to run need and checks that each answers.
func loadEnv(brokers []string) (brokerEnv, error) {
	e := brokerEnv{
		rabbitURL:   os.Getenv("COURIER_RABBITMQ_URL"),
		kafkaAddrs:  os.Getenv("COURIER_KAFKA_BROKERS"),
		sqsEndpoint: os.Getenv("COURIER_SQS_ENDPOINT"),
		pubsubHost:  os.Getenv("COURIER_PUBSUB_EMULATOR_HOST"),
	}
	for _, b := range brokers {
		var name, val, addr string
		switch b {
		case "memory":
			continue
		case "rabbitmq":
			name, val = "COURIER_RABBITMQ_URL", e.rabbitURL
			if u, err := url.Parse(val); err == nil {
				addr = u.Host
			}
		case "kafka":
			name, val = "COURIER_KAFKA_BROKERS", e.kafkaAddrs
			addr = strings.Split(val, ",")[0]
		case "sqs":
			name, val = "COURIER_SQS_ENDPOINT", e.sqsEndpoint
			if u, err := url.Parse(val); err == nil {
				addr = u.Host
			}
		case "pubsub":
			name, val, addr = "COURIER_PUBSUB_EMULATOR_HOST", e.pubsubHost, e.pubsubHost
		default:
			return e, fmt.Errorf("unknown broker %q (memory, rabbitmq, kafka, sqs, pubsub)", b)
		}
		if val == "" {
			return e, fmt.Errorf("%s is not set: %s", name, startHint)
		}
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			return e, fmt.Errorf("%s=%s does not answer (%v): %s", name, val, err, startHint)
		}
		_ = c.Close()
	}
	return e, nil
}
