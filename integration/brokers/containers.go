package brokers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// containerSpec says how to run one service in a container. Every image,
// port and wait strategy lives in containerSpecs below.
type containerSpec struct {
	image string
	port  string // the container port tests connect to, e.g. "5672/tcp"
	env   map[string]string
	// entrypoint and cmd replace the image's, when set.
	entrypoint []string
	cmd        []string
	// files are copied into the container before it starts: path → content.
	files map[string]string
	// wait is the readiness strategy; nil when postStart waits itself.
	wait wait.Strategy
	// postStart runs after the container started (Kafka needs to learn its
	// mapped port before the broker starts).
	postStart func(ctx context.Context, c testcontainers.Container) error
	// endpoint builds the endpoint from the host and mapped port.
	endpoint func(host, port string) string
}

// startTimeout bounds pulling an image and waiting for the container.
const startTimeout = 5 * time.Minute

// kafkaStarter is the script the Kafka container waits for; see kafkaPostStart.
const kafkaStarter = "/tmp/courier-kafka-start.sh"

// containerSpecs is the table of containers, one per service.
var containerSpecs = map[Service]containerSpec{
	RabbitMQ: {
		image: "rabbitmq:3.13",
		port:  "5672/tcp",
		files: map[string]string{
			// The adapter may shard by key over a consistent hash exchange.
			"/etc/rabbitmq/enabled_plugins": "[rabbitmq_consistent_hash_exchange].\n",
		},
		wait: wait.ForAll(
			wait.ForLog("Server startup complete"),
			wait.ForListeningPort("5672/tcp"),
		).WithDeadline(2 * time.Minute),
		// The image lets guest connect from outside the container.
		endpoint: func(h, p string) string { return "amqp://guest:guest@" + net.JoinHostPort(h, p) + "/" },
	},
	Kafka: {
		image: "apache/kafka:3.9.1",
		port:  "19092/tcp",
		env: map[string]string{
			"CLUSTER_ID":          "Q291cmllclRlc3RDbHVzdA",
			"KAFKA_NODE_ID":       "1",
			"KAFKA_PROCESS_ROLES": "broker,controller",
			// EXTERNAL is published to the host; PLAINTEXT serves the broker
			// itself; CONTROLLER serves KRaft.
			"KAFKA_LISTENERS":                                "EXTERNAL://0.0.0.0:19092,PLAINTEXT://0.0.0.0:9092,CONTROLLER://0.0.0.0:9093",
			"KAFKA_LISTENER_SECURITY_PROTOCOL_MAP":           "EXTERNAL:PLAINTEXT,PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
			"KAFKA_INTER_BROKER_LISTENER_NAME":               "PLAINTEXT",
			"KAFKA_CONTROLLER_LISTENER_NAMES":                "CONTROLLER",
			"KAFKA_CONTROLLER_QUORUM_VOTERS":                 "1@localhost:9093",
			"KAFKA_AUTO_CREATE_TOPICS_ENABLE":                "false",
			"KAFKA_NUM_PARTITIONS":                           "1",
			"KAFKA_DEFAULT_REPLICATION_FACTOR":               "1",
			"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR":         "1",
			"KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS":             "1",
			"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
			"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR":            "1",
			"KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS":         "0",
			"KAFKA_HEAP_OPTS":                                "-Xmx512m -Xms256m",
		},
		// The broker must advertise the host's mapped port, which is known
		// only once the container runs: wait for a starter script that
		// kafkaPostStart writes.
		entrypoint: []string{"sh"},
		cmd:        []string{"-c", "while [ ! -f " + kafkaStarter + " ]; do sleep 0.1; done; exec bash " + kafkaStarter},
		postStart:  kafkaPostStart,
		endpoint:   func(h, p string) string { return net.JoinHostPort(h, p) },
	},
	SQS: {
		image: "softwaremill/elasticmq-native:1.6.14",
		port:  "9324/tcp",
		files: map[string]string{
			// Queue URLs follow the address the client used (the mapped port).
			"/opt/elasticmq.conf": `include classpath("application.conf")
node-address { protocol = http, host = localhost, port = 9324, context-path = "" }
rest-sqs { enabled = true, bind-port = 9324, bind-hostname = "0.0.0.0", sqs-limits = strict }
rest-stats { enabled = false }
generate-node-address = true
aws { region = us-east-1, accountId = 000000000000 }
`,
		},
		wait: wait.ForAll(
			wait.ForLog("started in"),
			wait.ForListeningPort("9324/tcp"),
		).WithDeadline(time.Minute),
		endpoint: func(h, p string) string { return "http://" + net.JoinHostPort(h, p) },
	},
	PubSub: {
		image: "gcr.io/google.com/cloudsdktool/google-cloud-cli:emulators",
		port:  "8085/tcp",
		cmd: []string{"gcloud", "beta", "emulators", "pubsub", "start",
			"--host-port=0.0.0.0:8085", "--project=courier-test"},
		wait: wait.ForAll(
			wait.ForLog("Server started, listening on"),
			wait.ForListeningPort("8085/tcp"),
		).WithDeadline(2 * time.Minute),
		endpoint: func(h, p string) string { return net.JoinHostPort(h, p) },
	},
	Redis: {
		image: "redis:7",
		port:  "6379/tcp",
		wait: wait.ForAll(
			wait.ForLog("Ready to accept connections"),
			wait.ForListeningPort("6379/tcp"),
		).WithDeadline(time.Minute),
		endpoint: func(h, p string) string { return "redis://" + net.JoinHostPort(h, p) + "/0" },
	},
	Postgres: {
		image: "postgres:16",
		port:  "5432/tcp",
		env: map[string]string{
			"POSTGRES_USER":     "postgres",
			"POSTGRES_PASSWORD": "postgres",
			"POSTGRES_DB":       "courier",
		},
		cmd: []string{"postgres", "-c", "fsync=off", "-c", "synchronous_commit=off",
			"-c", "full_page_writes=off", "-c", "max_connections=200"},
		// The entrypoint starts a temporary server first: ready is the second
		// "ready" line.
		wait: wait.ForAll(
			wait.ForLog("database system is ready to accept connections").WithOccurrence(2),
			wait.ForListeningPort("5432/tcp"),
		).WithDeadline(time.Minute),
		endpoint: func(h, p string) string {
			return "postgres://postgres:postgres@" + net.JoinHostPort(h, p) + "/courier?sslmode=disable"
		},
	},
}

// kafkaPostStart writes the Kafka container's starter script, which
// advertises the host and mapped port, and waits for the broker.
func kafkaPostStart(ctx context.Context, c testcontainers.Container) error {
	const port = "19092/tcp"
	if err := wait.ForMappedPort(port).WaitUntilReady(ctx, c); err != nil {
		return fmt.Errorf("wait for mapped port: %w", err)
	}
	host, err := c.Host(ctx)
	if err != nil {
		return err
	}
	mapped, err := c.MappedPort(ctx, port)
	if err != nil {
		return err
	}
	inspect, err := c.Inspect(ctx)
	if err != nil {
		return err
	}
	script := fmt.Sprintf("#!/bin/bash\nexport KAFKA_ADVERTISED_LISTENERS='EXTERNAL://%s,PLAINTEXT://%s:9092'\nexec /etc/kafka/docker/run\n",
		net.JoinHostPort(host, mapped.Port()), inspect.Config.Hostname)
	if err := c.CopyToContainer(ctx, []byte(script), kafkaStarter, 0o755); err != nil {
		return fmt.Errorf("copy starter script: %w", err)
	}
	return wait.ForLog("Kafka Server started").WithStartupTimeout(2*time.Minute).WaitUntilReady(ctx, c)
}

// containerState is one service's container, started at most once per test
// binary.
type containerState struct {
	once     sync.Once
	endpoint string
	err      error
	ctr      testcontainers.Container
}

var (
	containersMu sync.Mutex
	containers   = map[Service]*containerState{}
)

// containerEndpoint starts the service's container on first use and returns
// its endpoint; later calls return the same endpoint (or error).
func containerEndpoint(s Service) (string, error) {
	containersMu.Lock()
	st := containers[s]
	if st == nil {
		st = &containerState{}
		containers[s] = st
	}
	containersMu.Unlock()
	st.once.Do(func() {
		st.ctr, st.endpoint, st.err = startContainer(s)
	})
	return st.endpoint, st.err
}

func startContainer(s Service) (testcontainers.Container, string, error) {
	spec, ok := containerSpecs[s]
	if !ok {
		return nil, "", fmt.Errorf("no container for service %q", s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()

	opts := []testcontainers.ContainerCustomizer{
		testcontainers.WithExposedPorts(spec.port),
		testcontainers.WithLabels(map[string]string{"courier.broker": string(s)}),
	}
	if len(spec.env) > 0 {
		opts = append(opts, testcontainers.WithEnv(spec.env))
	}
	if len(spec.entrypoint) > 0 {
		opts = append(opts, testcontainers.WithEntrypoint(spec.entrypoint...))
	}
	if len(spec.cmd) > 0 {
		opts = append(opts, testcontainers.WithCmd(spec.cmd...))
	}
	for path, content := range spec.files {
		opts = append(opts, testcontainers.WithFiles(testcontainers.ContainerFile{
			Reader: strings.NewReader(content), ContainerFilePath: path, FileMode: 0o644,
		}))
	}
	if spec.wait != nil {
		opts = append(opts, testcontainers.WithWaitStrategy(spec.wait))
	}
	if spec.postStart != nil {
		opts = append(opts, testcontainers.WithLifecycleHooks(testcontainers.ContainerLifecycleHooks{
			PostStarts: []testcontainers.ContainerHook{spec.postStart},
		}))
	}

	ctr, err := testcontainers.Run(ctx, spec.image, opts...)
	if err != nil {
		if ctr != nil {
			_ = testcontainers.TerminateContainer(ctr)
		}
		return nil, "", fmt.Errorf("run %s: %w", spec.image, err)
	}
	host, err := ctr.Host(ctx)
	if err != nil {
		_ = testcontainers.TerminateContainer(ctr)
		return nil, "", err
	}
	port, err := ctr.MappedPort(ctx, spec.port)
	if err != nil {
		_ = testcontainers.TerminateContainer(ctr)
		return nil, "", err
	}
	return ctr, spec.endpoint(host, port.Port()), nil
}

// TerminateAll stops and removes every container this test binary started.
// Call it at the end of TestMain:
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		brokers.TerminateAll()
//		os.Exit(code)
//	}
//
// Without it, testcontainers' reaper (Ryuk) removes them shortly after the
// test binary exits. It does nothing when no container was started.
func TerminateAll() {
	containersMu.Lock()
	defer containersMu.Unlock()
	for s, st := range containers {
		if st.ctr != nil {
			_ = testcontainers.TerminateContainer(st.ctr)
		}
		delete(containers, s)
	}
}

// dockerProbeTimeout bounds the Docker engine check.
const dockerProbeTimeout = 5 * time.Second

var dockerOnce = sync.OnceValue(probeDocker)

// DockerAvailable reports whether a Docker engine answers, checking once per
// test binary. It returns false at once when there is no sign of an engine
// (no DOCKER_HOST, no testcontainers configuration, no Docker socket), and
// otherwise gives the engine a few seconds to answer, so it never hangs.
func DockerAvailable() bool { return dockerOnce() }

func probeDocker() bool {
	if !dockerHinted(os.Getenv, fileExists) {
		return false
	}
	done := make(chan bool, 1)
	go func() {
		defer func() {
			if recover() != nil {
				done <- false
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), dockerProbeTimeout)
		defer cancel()
		p, err := testcontainers.NewDockerProvider()
		if err != nil {
			done <- false
			return
		}
		done <- p.Health(ctx) == nil // Health closes the provider
	}()
	select {
	case ok := <-done:
		return ok
	case <-time.After(dockerProbeTimeout + time.Second):
		// Something in the client ignored the context; don't wait for it.
		return false
	}
}

// dockerHinted reports whether anything points at a Docker engine: a
// DOCKER_HOST or TESTCONTAINERS_* setting, ~/.testcontainers.properties, or
// one of the usual socket paths.
func dockerHinted(getenv func(string) string, exists func(string) bool) bool {
	for _, v := range []string{"DOCKER_HOST", "TESTCONTAINERS_DOCKER_SOCKET_OVERRIDE", "TESTCONTAINERS_HOST_OVERRIDE", "DOCKER_CONTEXT"} {
		if getenv(v) != "" {
			return true
		}
	}
	paths := []string{"/var/run/docker.sock", "/run/docker.sock"}
	if home := getenv("HOME"); home != "" {
		paths = append(paths,
			filepath.Join(home, ".testcontainers.properties"),
			filepath.Join(home, ".docker", "run", "docker.sock"),
			filepath.Join(home, ".docker", "desktop", "docker.sock"),
			filepath.Join(home, ".colima", "default", "docker.sock"),
			filepath.Join(home, ".colima", "docker.sock"),
			filepath.Join(home, ".rd", "docker.sock"),
		)
	}
	if xdg := getenv("XDG_RUNTIME_DIR"); xdg != "" {
		paths = append(paths, filepath.Join(xdg, "docker.sock"), filepath.Join(xdg, "podman", "podman.sock"))
	}
	for _, p := range paths {
		if exists(p) {
			return true
		}
	}
	return false
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil || !errors.Is(err, os.ErrNotExist)
}
