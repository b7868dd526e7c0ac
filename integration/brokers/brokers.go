package brokers

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

// Service names one broker the integration tests run against.
type Service string

// The services, with the names up.sh and down.sh take as arguments.
const (
	RabbitMQ Service = "rabbitmq"
	Kafka    Service = "kafka"
	SQS      Service = "sqs"
	PubSub   Service = "pubsub"
	Redis    Service = "redis"
	Postgres Service = "postgres"
)

// RequireEnv is the variable that, set to 1 (or true/yes), turns the skip of
// a test whose broker is unavailable into a failure. CI and
// `make integration` set it: there a missing broker is a broken setup, not a
// reason to pass quietly.
const RequireEnv = "COURIER_REQUIRE_BROKERS"

// Services returns every service, in the order up.sh starts them.
func Services() []Service {
	return []Service{RabbitMQ, Kafka, SQS, PubSub, Redis, Postgres}
}

// EnvVar returns the variable that names the service's endpoint, e.g.
// COURIER_KAFKA_BROKERS. It returns "" for an unknown service.
func (s Service) EnvVar() string {
	switch s {
	case RabbitMQ:
		return "COURIER_RABBITMQ_URL"
	case Kafka:
		return "COURIER_KAFKA_BROKERS"
	case SQS:
		return "COURIER_SQS_ENDPOINT"
	case PubSub:
		return "COURIER_PUBSUB_EMULATOR_HOST"
	case Redis:
		return "COURIER_REDIS_URL"
	case Postgres:
		return "COURIER_POSTGRES_URL"
	}
	return ""
}

// Title returns the service's human name, as used in messages.
func (s Service) Title() string {
	switch s {
	case RabbitMQ:
		return "RabbitMQ"
	case Kafka:
		return "Kafka"
	case SQS:
		return "SQS (ElasticMQ)"
	case PubSub:
		return "Pub/Sub (emulator)"
	case Redis:
		return "Redis"
	case Postgres:
		return "PostgreSQL"
	}
	return string(s)
}

// NativeEndpoint returns the endpoint integration/brokers/up.sh serves the
// service on (the value it writes to .brokers/env), or "" for an unknown
// service. Endpoints have these forms:
//
//	RabbitMQ  amqp://guest:guest@127.0.0.1:5672/
//	Kafka     127.0.0.1:9092 (comma-separated host:port list in general)
//	SQS       http://127.0.0.1:9324
//	PubSub    127.0.0.1:8085 (a PUBSUB_EMULATOR_HOST value)
//	Redis     redis://127.0.0.1:6379/0
//	Postgres  postgres://postgres:postgres@127.0.0.1:5432/courier?sslmode=disable
func NativeEndpoint(s Service) string {
	switch s {
	case RabbitMQ:
		return "amqp://guest:guest@127.0.0.1:5672/"
	case Kafka:
		return "127.0.0.1:9092"
	case SQS:
		return "http://127.0.0.1:9324"
	case PubSub:
		return "127.0.0.1:8085"
	case Redis:
		return "redis://127.0.0.1:6379/0"
	case Postgres:
		return "postgres://postgres:postgres@127.0.0.1:5432/courier?sslmode=disable"
	}
	return ""
}

// Endpoint returns where the test reaches the service, looking in this order:
//
//  1. the service's variable (Service.EnvVar), e.g. COURIER_KAFKA_BROKERS,
//     as written to .brokers/env by integration/brokers/up.sh;
//  2. a container started with testcontainers-go, if a Docker engine answers
//     (one per service and test binary, shared by all its tests; see
//     TerminateAll);
//  3. neither: the test is skipped with a message naming the broker, its
//     variable and how to start it, or fails with that message when
//     COURIER_REQUIRE_BROKERS=1.
//
// The endpoint's form depends on the service: see NativeEndpoint.
func Endpoint(t testing.TB, s Service) string {
	t.Helper()
	if s.EnvVar() == "" {
		t.Fatalf("brokers: unknown service %q", s)
	}
	d := decide(s, os.LookupEnv, DockerAvailable)
	switch d.source {
	case fromEnv:
		addr := dialAddress(s, d.endpoint)
		conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err == nil {
			_ = conn.Close()
			return d.endpoint
		}
		d = notAnswering(s, d.required, addr, err)
	case fromContainer:
		ep, err := containerEndpoint(s)
		if err == nil {
			return ep
		}
		image, set := os.LookupEnv(s.ImageEnvVar())
		d = unavailable(s, d.required, containerFailure(s, strings.TrimSpace(image), set && strings.TrimSpace(image) != "", err))
	}
	endTest(t, d.required, d.message)
	return ""
}

// endTest skips the test with msg, or fails it when required (COURIER_REQUIRE_BROKERS=1):
// the one place that chooses between the two.
func endTest(t testing.TB, required bool, msg string) {
	t.Helper()
	if required {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// SkipOrFail stops a test that cannot run here for want of something a broker test needs (a
// broker it can stop, a control tool, credentials): it skips with the message, or fails with
// it under COURIER_REQUIRE_BROKERS=1, where nothing may be skipped for want of a broker.
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	required := truthy(os.LookupEnv(RequireEnv))
	msg := fmt.Sprintf(format, args...)
	if required {
		msg += fmt.Sprintf(" (failing instead of skipping because %s=1)", RequireEnv)
	}
	endTest(t, required, msg)
}

// source says where an endpoint comes from.
type source int

const (
	notAvailable  source = iota // skip, or fail when required
	fromEnv                     // the service's variable
	fromContainer               // a testcontainers container
)

func (s source) String() string {
	switch s {
	case fromEnv:
		return "env"
	case fromContainer:
		return "container"
	}
	return "unavailable"
}

// decision is the outcome of decide.
type decision struct {
	source   source
	endpoint string // set when source is fromEnv
	required bool   // COURIER_REQUIRE_BROKERS is on
	message  string // set when source is notAvailable
}

// decide chooses where the service's endpoint comes from. It is pure: the
// environment comes through lookupEnv and the Docker check through
// dockerAvailable, which is called only when no variable names the endpoint.
func decide(s Service, lookupEnv func(string) (string, bool), dockerAvailable func() bool) decision {
	required := truthy(lookupEnv(RequireEnv))
	if v, ok := lookupEnv(s.EnvVar()); ok && strings.TrimSpace(v) != "" {
		return decision{source: fromEnv, endpoint: strings.TrimSpace(v), required: required}
	}
	if dockerAvailable() {
		return decision{source: fromContainer, required: required}
	}
	return unavailable(s, required, noDockerFix)
}

// unavailable builds the skip/fail decision for s; why says what was tried
// besides the variable.
func unavailable(s Service, required bool, why string) decision {
	msg := fmt.Sprintf("brokers: %s is not available: %s is not set and %s. "+
		"Start it without Docker with `make brokers-up` (all brokers) or `bash integration/brokers/up.sh %s`, "+
		"then `set -a; . .brokers/env; set +a` before go test",
		s.Title(), s.EnvVar(), why, s)
	if required {
		msg += fmt.Sprintf(" (failing instead of skipping because %s=1)", RequireEnv)
	}
	return decision{source: notAvailable, required: required, message: msg}
}

// notAnswering builds the skip/fail decision for a service whose variable names an address
// where nothing answers (the broker was stopped, or never started on this machine).
func notAnswering(s Service, required bool, addr string, err error) decision {
	msg := fmt.Sprintf("brokers: %s is not answering at %s (from %s): %v. "+
		"Start it with `make brokers-up` (all brokers) or `bash integration/brokers/up.sh %s`",
		s.Title(), addr, s.EnvVar(), err, s)
	if required {
		msg += fmt.Sprintf(" (failing instead of skipping because %s=1)", RequireEnv)
	}
	return decision{source: notAvailable, required: required, message: msg}
}

// dialAddress extracts the host:port to probe from an endpoint of the service's form (see
// NativeEndpoint): a URL's host, the first of a Kafka broker list, or host:port as is.
func dialAddress(s Service, endpoint string) string {
	if strings.Contains(endpoint, "://") {
		if u, err := url.Parse(endpoint); err == nil && u.Host != "" {
			host := u.Host
			if u.Port() == "" {
				switch u.Scheme {
				case "amqp":
					host += ":5672"
				case "amqps":
					host += ":5671"
				case "redis":
					host += ":6379"
				case "postgres", "postgresql":
					host += ":5432"
				case "http":
					host += ":80"
				case "https":
					host += ":443"
				}
			}
			return host
		}
	}
	first, _, _ := strings.Cut(endpoint, ",")
	return strings.TrimSpace(first)
}

// truthy reports whether a variable's value turns an option on.
func truthy(v string, ok bool) bool {
	if !ok {
		return false
	}
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

// CourierURLs returns a Courier URL for each message broker — "rabbitmq", "kafka", "sqs",
// "pubsub" — found as Endpoint finds it: a broker that is missing skips the test, or fails it
// under COURIER_REQUIRE_BROKERS=1. project names the Pub/Sub project.
func CourierURLs(t testing.TB, project string) map[string]string {
	t.Helper()
	return map[string]string{
		"rabbitmq": Endpoint(t, RabbitMQ),
		"kafka":    "kafka://" + Endpoint(t, Kafka),
		"sqs":      "sqs://?region=us-east-1&endpoint=" + url.QueryEscape(Endpoint(t, SQS)),
		"pubsub":   "gcppubsub://" + project + "?endpoint=" + Endpoint(t, PubSub),
	}
}
