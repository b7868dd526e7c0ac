package brokers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/segmentio/kafka-go"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// NetworkEnv is the variable that, set to "host", runs every container on the
// host's network (Docker's NetworkMode "host") instead of a bridge with
// published ports: the brokers then listen on 127.0.0.1 only, on the ports of
// the container table, which differ from the native brokers' (see
// NativeEndpoint). `make integration-containers` sets it, since the Docker
// engine there runs without a bridge (dockerd --bridge=none).
const NetworkEnv = "COURIER_CONTAINER_NETWORK"

// ImageEnvVar returns the variable that overrides the service's container
// image, e.g. COURIER_RABBITMQ_IMAGE, or "" for an unknown service. Unset, the
// official image of the container table (DefaultImage) is used; `make
// integration-containers` sets each to the local build of `make images`.
func (s Service) ImageEnvVar() string {
	if s.EnvVar() == "" {
		return ""
	}
	return "COURIER_" + strings.ToUpper(string(s)) + "_IMAGE"
}

// DefaultImage returns the official image the container table runs for the
// service, or "" for an unknown service.
func DefaultImage(s Service) string {
	return defaultImages[s]
}

// LocalImage returns the name `make images` (images/build.sh) gives its build
// of the service, or "" for an unknown service.
func LocalImage(s Service) string {
	if s.EnvVar() == "" {
		return ""
	}
	if s == SQS {
		return "courier/elasticmq:local"
	}
	return "courier/" + string(s) + ":local"
}

var defaultImages = map[Service]string{
	RabbitMQ: "rabbitmq:3.13",
	Kafka:    "apache/kafka:3.9.1",
	SQS:      "softwaremill/elasticmq-native:1.6.14",
	PubSub:   "gcr.io/google.com/cloudsdktool/google-cloud-cli:emulators",
	Redis:    "redis:7",
	Postgres: "postgres:16",
}

// The ports the brokers listen on inside their containers: each native
// broker's port plus 10010, so that, on the host's network, both run side by
// side. All lie below Linux's ephemeral range (32768-60999), where an
// outgoing connection's local port could hold them.
const (
	rabbitPort     = 15682
	rabbitDistPort = 15683
	rabbitEPMDPort = 14379
	kafkaPort      = 19102 // clients
	kafkaCtrlPort  = 19103 // KRaft controller
	kafkaIntPort   = 19104 // the broker itself
	sqsPort        = 19334
	pubsubPort     = 18095
	redisPort      = 16389
	postgresPort   = 15442
)

// containerSpec says how to run one service in a container. Every image,
// port and wait strategy comes from containerSpecFor.
type containerSpec struct {
	image string
	port  string // the container port tests connect to, e.g. "35672/tcp"
	// ports lists every port the broker listens on; on the host's network
	// each must be free before the container starts.
	ports []int
	env   map[string]string
	// entrypoint and cmd replace the image's, when set.
	entrypoint []string
	cmd        []string
	// files are copied into the container before it starts: path → content.
	files map[string]string
	// wait is the readiness strategy; nil when postStart waits itself.
	wait wait.Strategy
	// postStart runs after the container started, with the host tests reach
	// it on (Kafka must learn its address before the broker starts).
	postStart func(ctx context.Context, c testcontainers.Container, host string) error
	// endpoint builds the endpoint from the host and mapped port.
	endpoint func(host, port string) string
}

// startTimeout bounds pulling an image and waiting for the container.
const startTimeout = 5 * time.Minute

// kafkaStarter is the script the Kafka container waits for; see kafkaPostStart.
const kafkaStarter = "/tmp/courier-kafka-start.sh"

// tcp names a container port.
func tcp(port int) string { return strconv.Itoa(port) + "/tcp" }

// containerSpecFor returns the service's container: image the official one
// unless image is set, listening on bind ("0.0.0.0" on a bridge, "127.0.0.1"
// on the host's network). The local images of `make images` answer to the
// same variables, files, commands and log lines as the official ones.
func containerSpecFor(s Service, image, bind string) (containerSpec, bool) {
	mk, ok := specMakers[s]
	if !ok {
		return containerSpec{}, false
	}
	spec := mk(bind)
	spec.image = DefaultImage(s)
	if image != "" {
		spec.image = image
	}
	return spec, true
}

var specMakers = map[Service]func(bind string) containerSpec{
	RabbitMQ: rabbitSpec, Kafka: kafkaSpec, SQS: sqsSpec,
	PubSub: pubsubSpec, Redis: redisSpec, Postgres: postgresSpec,
}

func rabbitSpec(bind string) containerSpec {
	return containerSpec{
		port:  tcp(rabbitPort),
		ports: []int{rabbitPort, rabbitDistPort, rabbitEPMDPort},
		env: map[string]string{
			// Its own port mapper and distribution port, on loopback: on the
			// host's network they must not meet the native node's.
			"ERL_EPMD_PORT":                       strconv.Itoa(rabbitEPMDPort),
			"ERL_EPMD_ADDRESS":                    "127.0.0.1",
			"RABBITMQ_DIST_PORT":                  strconv.Itoa(rabbitDistPort),
			"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
		},
		files: map[string]string{
			// The adapter may shard by key over a consistent hash exchange.
			"/etc/rabbitmq/enabled_plugins": "[rabbitmq_consistent_hash_exchange].\n",
			// Replaces the image's listener (conf.d/10-defaults.conf: 5672).
			"/etc/rabbitmq/conf.d/20-courier.conf": fmt.Sprintf("listeners.tcp.default = %s:%d\nloopback_users.guest = false\n", bind, rabbitPort),
		},
		wait: wait.ForAll(
			wait.ForLog("Server startup complete"),
			wait.ForListeningPort(tcp(rabbitPort)),
		).WithDeadline(2 * time.Minute),
		endpoint: func(h, p string) string { return "amqp://guest:guest@" + net.JoinHostPort(h, p) + "/" },
	}
}

func kafkaSpec(bind string) containerSpec {
	return containerSpec{
		port:  tcp(kafkaPort),
		ports: []int{kafkaPort, kafkaCtrlPort, kafkaIntPort},
		env: map[string]string{
			"CLUSTER_ID":          "Q291cmllclRlc3RDbHVzdA",
			"KAFKA_NODE_ID":       "1",
			"KAFKA_PROCESS_ROLES": "broker,controller",
			// EXTERNAL serves the tests; PLAINTEXT serves the broker itself;
			// CONTROLLER serves KRaft.
			"KAFKA_LISTENERS": fmt.Sprintf("EXTERNAL://%s:%d,PLAINTEXT://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d",
				bind, kafkaPort, kafkaIntPort, kafkaCtrlPort),
			"KAFKA_LISTENER_SECURITY_PROTOCOL_MAP":           "EXTERNAL:PLAINTEXT,PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
			"KAFKA_INTER_BROKER_LISTENER_NAME":               "PLAINTEXT",
			"KAFKA_CONTROLLER_LISTENER_NAMES":                "CONTROLLER",
			"KAFKA_CONTROLLER_QUORUM_VOTERS":                 fmt.Sprintf("1@127.0.0.1:%d", kafkaCtrlPort),
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
		// The broker must advertise the address tests reach it on, which is
		// known only once the container runs: wait for a starter script that
		// kafkaPostStart writes.
		entrypoint: []string{"sh"},
		cmd:        []string{"-c", "while [ ! -f " + kafkaStarter + " ]; do sleep 0.1; done; exec bash " + kafkaStarter},
		postStart:  kafkaPostStart,
		endpoint:   func(h, p string) string { return net.JoinHostPort(h, p) },
	}
}

func sqsSpec(bind string) containerSpec {
	return containerSpec{
		port:  tcp(sqsPort),
		ports: []int{sqsPort},
		files: map[string]string{
			// Queue URLs follow the address the client used (the mapped port).
			"/opt/elasticmq.conf": fmt.Sprintf(`include classpath("application.conf")
node-address { protocol = http, host = localhost, port = %[1]d, context-path = "" }
rest-sqs { enabled = true, bind-port = %[1]d, bind-hostname = "%[2]s", sqs-limits = strict }
rest-stats { enabled = false }
generate-node-address = true
aws { region = us-east-1, accountId = 000000000000 }
`, sqsPort, bind),
		},
		wait: wait.ForAll(
			wait.ForLog("started in"),
			wait.ForListeningPort(tcp(sqsPort)),
		).WithDeadline(time.Minute),
		endpoint: func(h, p string) string { return "http://" + net.JoinHostPort(h, p) },
	}
}

func pubsubSpec(bind string) containerSpec {
	return containerSpec{
		port:  tcp(pubsubPort),
		ports: []int{pubsubPort},
		cmd: []string{"gcloud", "beta", "emulators", "pubsub", "start",
			fmt.Sprintf("--host-port=%s:%d", bind, pubsubPort), "--project=courier-test"},
		wait: wait.ForAll(
			wait.ForLog("Server started, listening on"),
			wait.ForListeningPort(tcp(pubsubPort)),
		).WithDeadline(2 * time.Minute),
		endpoint: func(h, p string) string { return net.JoinHostPort(h, p) },
	}
}

func redisSpec(bind string) containerSpec {
	return containerSpec{
		port:  tcp(redisPort),
		ports: []int{redisPort},
		cmd: []string{"redis-server", "--port", strconv.Itoa(redisPort), "--bind", bind,
			"--protected-mode", "no", "--save", "", "--appendonly", "no"},
		wait: wait.ForAll(
			wait.ForLog("Ready to accept connections"),
			wait.ForListeningPort(tcp(redisPort)),
		).WithDeadline(time.Minute),
		endpoint: func(h, p string) string { return "redis://" + net.JoinHostPort(h, p) + "/0" },
	}
}

func postgresSpec(bind string) containerSpec {
	return containerSpec{
		port:  tcp(postgresPort),
		ports: []int{postgresPort},
		env: map[string]string{
			"POSTGRES_USER":     "postgres",
			"POSTGRES_PASSWORD": "postgres",
			"POSTGRES_DB":       "courier",
			"PGPORT":            strconv.Itoa(postgresPort),
		},
		cmd: []string{"postgres", "-c", "listen_addresses=" + bind, "-c", "fsync=off", "-c", "synchronous_commit=off",
			"-c", "full_page_writes=off", "-c", "max_connections=200"},
		// The entrypoint starts a temporary server first: ready is the second
		// "ready" line.
		wait: wait.ForAll(
			wait.ForLog("database system is ready to accept connections").WithOccurrence(2),
			wait.ForListeningPort(tcp(postgresPort)),
		).WithDeadline(time.Minute),
		endpoint: func(h, p string) string {
			return "postgres://postgres:postgres@" + net.JoinHostPort(h, p) + "/courier?sslmode=disable"
		},
	}
}

// kafkaPostStart writes the Kafka container's starter script, which
// advertises host and the mapped port, and waits for the broker.
func kafkaPostStart(ctx context.Context, c testcontainers.Container, host string) error {
	port := tcp(kafkaPort)
	if err := wait.ForMappedPort(port).WaitUntilReady(ctx, c); err != nil {
		return fmt.Errorf("wait for mapped port: %w", err)
	}
	mapped, err := c.MappedPort(ctx, port)
	if err != nil {
		return err
	}
	script := fmt.Sprintf("#!/bin/bash\nexport KAFKA_ADVERTISED_LISTENERS='EXTERNAL://%s,PLAINTEXT://127.0.0.1:%d'\nexec /etc/kafka/docker/run\n",
		net.JoinHostPort(host, mapped.Port()), kafkaIntPort)
	if err := c.CopyToContainer(ctx, []byte(script), kafkaStarter, 0o755); err != nil {
		return fmt.Errorf("copy starter script: %w", err)
	}
	if err := wait.ForLog("Kafka Server started").WithStartupTimeout(2*time.Minute).WaitUntilReady(ctx, c); err != nil {
		return err
	}
	return kafkaReady(ctx, net.JoinHostPort(host, mapped.Port()))
}

// kafkaReady waits until the broker at addr answers as the native path's
// readiness check (brokercheck) requires: metadata naming a controller, and a
// group coordinator, which a fresh broker has only once its offsets topic
// exists. "Kafka Server started" comes before both.
func kafkaReady(ctx context.Context, addr string) error {
	// Its own transport: kafka-go's shared one caches metadata.
	c := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 5 * time.Second, Transport: &kafka.Transport{}}
	var last error
	for {
		md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{}})
		switch {
		case err != nil:
			last = err
		case len(md.Brokers) == 0 || md.Controller.ID < 0:
			last = errors.New("metadata names no broker or no controller yet")
		default:
			fc, err := c.FindCoordinator(ctx, &kafka.FindCoordinatorRequest{Key: "courier-containers", KeyType: kafka.CoordinatorKeyTypeConsumer})
			if err == nil && fc.Error == nil {
				return nil
			}
			last = err
			if err == nil {
				last = fc.Error
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafka at %s not ready: %w (last: %w)", addr, ctx.Err(), last)
		case <-time.After(200 * time.Millisecond):
		}
	}
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

// hostNetwork reports whether containers run on the host's network (NetworkEnv).
func hostNetwork() bool {
	return strings.EqualFold(strings.TrimSpace(os.Getenv(NetworkEnv)), "host")
}

func startContainer(s Service) (testcontainers.Container, string, error) {
	image := strings.TrimSpace(os.Getenv(s.ImageEnvVar()))
	bind, host := "0.0.0.0", ""
	if hostNetwork() {
		bind, host = "127.0.0.1", "127.0.0.1"
	}
	spec, ok := containerSpecFor(s, image, bind)
	if !ok {
		return nil, "", fmt.Errorf("no container for service %q", s)
	}
	if host != "" {
		if err := hostNetworkReady(host, spec.ports, os.LookupEnv); err != nil {
			return nil, "", err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	began := time.Now()
	ctr, err := testcontainers.Run(ctx, spec.image, containerOptions(s, spec, host)...)
	if err != nil {
		terminate(s, ctr, "start failed")
		return nil, "", fmt.Errorf("run %s: %w", spec.image, err)
	}
	if host == "" {
		if host, err = ctr.Host(ctx); err != nil {
			terminate(s, ctr, "start failed")
			return nil, "", err
		}
	}
	port, err := ctr.MappedPort(ctx, spec.port)
	if err != nil {
		terminate(s, ctr, "start failed")
		return nil, "", err
	}
	ep := spec.endpoint(host, port.Port())
	record("started", s, spec.image, ctr.GetContainerID(), ep, time.Since(began))
	return ctr, ep, nil
}

// containerOptions turns the spec into testcontainers options; host is set
// when the container runs on the host's network.
func containerOptions(s Service, spec containerSpec, host string) []testcontainers.ContainerCustomizer {
	opts := []testcontainers.ContainerCustomizer{
		testcontainers.WithExposedPorts(spec.port),
		testcontainers.WithLabels(map[string]string{
			labelBroker: string(s), labelSession: session(), labelPID: strconv.Itoa(os.Getpid()),
		}),
		testcontainers.WithLifecycleHooks(testcontainers.ContainerLifecycleHooks{
			// Before the container starts: a binary that dies while it waits
			// for readiness leaves nothing behind either.
			PostCreates: []testcontainers.ContainerHook{func(context.Context, testcontainers.Container) error {
				startReaper()
				return nil
			}},
		}),
	}
	if host != "" {
		opts = append(opts, testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			hc.NetworkMode = "host"
		}), testcontainers.WithEndpointSettingsModifier(func(es map[string]*network.EndpointSettings) {
			// testcontainers attaches its default network; on the host's
			// network a container has no other.
			clear(es)
		}))
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
			PostStarts: []testcontainers.ContainerHook{func(ctx context.Context, c testcontainers.Container) error {
				h := host
				if h == "" {
					var err error
					if h, err = c.Host(ctx); err != nil {
						return err
					}
				}
				return spec.postStart(ctx, c, h)
			}},
		}))
	}
	return opts
}

// hostOverrideEnv is testcontainers' variable for the address it checks
// containers' ports on.
const hostOverrideEnv = "TESTCONTAINERS_HOST_OVERRIDE"

// hostNetworkReady checks, before a container starts on the host's network,
// that testcontainers checks readiness on host (it would otherwise dial the
// address of its bridge network when the tests run inside a container) and
// that nothing listens on the container's ports: otherwise the readiness
// check could see another broker and the tests would run against it.
func hostNetworkReady(host string, ports []int, lookupEnv func(string) (string, bool)) error {
	if v, _ := lookupEnv(hostOverrideEnv); strings.TrimSpace(v) != host {
		return fmt.Errorf("%s=host needs %s=%s (now %q): set it too, as `make integration-containers` does",
			NetworkEnv, hostOverrideEnv, host, v)
	}
	return portsFree(host, ports)
}

// portsFree reports an error for the first of ports something listens on.
func portsFree(host string, ports []int) error {
	for _, p := range ports {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err != nil {
			return fmt.Errorf("port %d on %s is taken (by another test binary's container? "+
				"on the host's network run packages one at a time, go test -p 1): %w", p, host, err)
		}
		_ = ln.Close()
	}
	return nil
}

// terminate stops and removes a container, recording why.
func terminate(s Service, ctr testcontainers.Container, why string) {
	// testcontainers returns a nil *DockerContainer when nothing was created.
	if ctr == nil || reflect.ValueOf(ctr).IsNil() {
		return
	}
	id := ctr.GetContainerID()
	if err := testcontainers.TerminateContainer(ctr, testcontainers.StopTimeout(5*time.Second)); err != nil {
		record("terminate-failed", s, "", id, err.Error(), 0)
		return
	}
	record("removed", s, "", id, why, 0)
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
// Without it, the containers are removed once the test binary exits: by a
// reaper process the binary starts with its first container (see
// startReaper), and by testcontainers' own reaper (Ryuk) unless
// TESTCONTAINERS_RYUK_DISABLED=true. It does nothing when no container was
// started.
func TerminateAll() {
	containersMu.Lock()
	defer containersMu.Unlock()
	for s, st := range containers {
		terminate(s, st.ctr, "TerminateAll")
		delete(containers, s)
	}
}

// containerFailure is the message for a service whose container did not
// start: it names the broker, the image and where it came from, and the fixes.
func containerFailure(s Service, image string, fromEnv bool, err error) string {
	src := "the default, official image"
	if fromEnv {
		src = "from " + s.ImageEnvVar()
	}
	if image == "" {
		image = DefaultImage(s)
	}
	return fmt.Sprintf("a Docker engine answers but the %s container did not start from image %q (%s): %v. "+
		"Fix: check the image name; without a registry build local images with `make images` and set %s=%s "+
		"(`make integration-containers` does both), or unset %s to use %s",
		s.Title(), image, src, err, s.ImageEnvVar(), LocalImage(s), s.ImageEnvVar(), DefaultImage(s))
}

// noDockerFix says how to get a Docker engine, for the message of a service
// that has neither a variable nor a container.
const noDockerFix = "no Docker engine answers either (at DOCKER_HOST, or on the usual sockets; for containers start one: Docker Desktop, " +
	"`sudo systemctl start docker`, or as root `dockerd --iptables=false --bridge=none`, which " +
	"`make integration-containers` starts itself)"

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
	// testcontainers would fall back to another engine when DOCKER_HOST does
	// not answer; an explicit DOCKER_HOST is taken at its word.
	if h := os.Getenv("DOCKER_HOST"); h != "" && !dockerHostAnswers(h) {
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

// dockerHostAnswers reports whether something accepts connections at a
// unix:// or tcp:// DOCKER_HOST; other schemes are left to the client.
func dockerHostAnswers(h string) bool {
	u, err := url.Parse(h)
	if err != nil {
		return false
	}
	network, addr := u.Scheme, u.Host
	switch u.Scheme {
	case "unix":
		addr = u.Path
	case "tcp":
	default:
		return true
	}
	c, err := net.DialTimeout(network, addr, 2*time.Second)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
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
