package brokers

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// env is a fake environment for decide.
type env map[string]string

func (e env) lookup(k string) (string, bool) {
	v, ok := e[k]
	return v, ok
}

func TestDecide(t *testing.T) {
	tests := []struct {
		name         string
		service      Service
		env          env
		docker       bool
		want         source
		wantEndpoint string
		wantRequired bool
		dockerAsked  bool
	}{
		{
			name: "env var wins over docker", service: Kafka,
			env:    env{"COURIER_KAFKA_BROKERS": "127.0.0.1:9092"},
			docker: true, want: fromEnv, wantEndpoint: "127.0.0.1:9092",
		},
		{
			name: "env var without docker", service: RabbitMQ,
			env:  env{"COURIER_RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:5672/"},
			want: fromEnv, wantEndpoint: "amqp://guest:guest@127.0.0.1:5672/",
		},
		{
			name: "env var is trimmed", service: Redis,
			env:  env{"COURIER_REDIS_URL": "  redis://h:1/0\n"},
			want: fromEnv, wantEndpoint: "redis://h:1/0",
		},
		{
			name: "env var with require", service: Postgres,
			env:  env{"COURIER_POSTGRES_URL": "postgres://x", RequireEnv: "1"},
			want: fromEnv, wantEndpoint: "postgres://x", wantRequired: true,
		},
		{
			name: "other service's variable does not count", service: SQS,
			env:    env{"COURIER_KAFKA_BROKERS": "127.0.0.1:9092"},
			docker: false, want: notAvailable, dockerAsked: true,
		},
		{
			name: "empty env var falls through to docker", service: SQS,
			env:    env{"COURIER_SQS_ENDPOINT": ""},
			docker: true, want: fromContainer, dockerAsked: true,
		},
		{
			name: "blank env var falls through to docker", service: PubSub,
			env:    env{"COURIER_PUBSUB_EMULATOR_HOST": "   "},
			docker: true, want: fromContainer, dockerAsked: true,
		},
		{
			name: "docker when no env var", service: Kafka,
			env: env{}, docker: true, want: fromContainer, dockerAsked: true,
		},
		{
			name: "docker with require", service: Redis,
			env:    env{RequireEnv: "true"},
			docker: true, want: fromContainer, wantRequired: true, dockerAsked: true,
		},
		{
			name: "nothing: skip", service: RabbitMQ,
			env: env{}, want: notAvailable, dockerAsked: true,
		},
		{
			name: "nothing with require=1: fail", service: RabbitMQ,
			env:  env{RequireEnv: "1"},
			want: notAvailable, wantRequired: true, dockerAsked: true,
		},
		{
			name: "require=yes", service: Kafka,
			env:  env{RequireEnv: "YES"},
			want: notAvailable, wantRequired: true, dockerAsked: true,
		},
		{
			name: "require=0 skips", service: Kafka,
			env:  env{RequireEnv: "0"},
			want: notAvailable, dockerAsked: true,
		},
		{
			name: "require empty skips", service: Postgres,
			env:  env{RequireEnv: ""},
			want: notAvailable, dockerAsked: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			asked := false
			d := decide(tt.service, tt.env.lookup, func() bool { asked = true; return tt.docker })
			if d.source != tt.want {
				t.Fatalf("source = %v, want %v", d.source, tt.want)
			}
			if d.endpoint != tt.wantEndpoint {
				t.Errorf("endpoint = %q, want %q", d.endpoint, tt.wantEndpoint)
			}
			if d.required != tt.wantRequired {
				t.Errorf("required = %v, want %v", d.required, tt.wantRequired)
			}
			if asked != tt.dockerAsked {
				t.Errorf("docker asked = %v, want %v (Docker must be checked only without a variable)", asked, tt.dockerAsked)
			}
			if d.source != notAvailable {
				if d.message != "" {
					t.Errorf("unexpected message %q", d.message)
				}
				return
			}
			// The message names the broker, its variable and how to start it.
			for _, want := range []string{
				tt.service.Title(), tt.service.EnvVar(), "make brokers-up",
				"bash integration/brokers/up.sh " + string(tt.service), ".brokers/env",
			} {
				if !strings.Contains(d.message, want) {
					t.Errorf("message %q lacks %q", d.message, want)
				}
			}
			if got := strings.Contains(d.message, RequireEnv); got != tt.wantRequired {
				t.Errorf("message mentions %s = %v, want %v: %q", RequireEnv, got, tt.wantRequired, d.message)
			}
		})
	}
}

func TestServices(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range Services() {
		if s.EnvVar() == "" || !strings.HasPrefix(s.EnvVar(), "COURIER_") {
			t.Errorf("%s: EnvVar = %q", s, s.EnvVar())
		}
		if seen[s.EnvVar()] {
			t.Errorf("%s: EnvVar %s used twice", s, s.EnvVar())
		}
		seen[s.EnvVar()] = true
		if s.Title() == string(s) {
			t.Errorf("%s: no title", s)
		}
		if NativeEndpoint(s) == "" {
			t.Errorf("%s: no native endpoint", s)
		}
		if cmdMarks[s] == "" {
			t.Errorf("%s: no process mark", s)
		}
	}
	if len(seen) != 6 {
		t.Errorf("%d services, want 6", len(seen))
	}
	var unknown Service = "activemq"
	if unknown.EnvVar() != "" || NativeEndpoint(unknown) != "" {
		t.Errorf("unknown service has an env var or endpoint")
	}
}

// TestContainerSpecs checks the container table: every service has a pinned
// official image, an override variable, ports apart from the native brokers',
// and builds endpoints of the same form up.sh's have.
func TestContainerSpecs(t *testing.T) {
	used := map[int]Service{}
	for _, s := range Services() {
		for _, bind := range []string{"0.0.0.0", "127.0.0.1"} {
			spec, ok := containerSpecFor(s, "", bind)
			if !ok {
				t.Fatalf("%s: no container spec", s)
			}
			if spec.image != DefaultImage(s) || !strings.Contains(spec.image, ":") || strings.HasSuffix(spec.image, ":latest") {
				t.Errorf("%s: image %q is not the pinned default %q", s, spec.image, DefaultImage(s))
			}
			if !strings.HasSuffix(spec.port, "/tcp") || !slices.Contains(spec.ports, nativePortNum(t, spec.port)) {
				t.Errorf("%s: port %q is not among the ports checked %v", s, spec.port, spec.ports)
			}
			if spec.wait == nil && spec.postStart == nil {
				t.Errorf("%s: nothing waits for readiness", s)
			}
			native := NativeEndpoint(s)
			port := nativePort(t, native)
			if got := spec.endpoint("127.0.0.1", port); got != native {
				t.Errorf("%s: container endpoint form %q differs from native %q", s, got, native)
			}
			if bind != "127.0.0.1" {
				continue
			}
			for _, p := range spec.ports {
				if p >= 32768 {
					t.Errorf("%s: port %d lies in Linux's ephemeral range, where a client's local port may hold it", s, p)
				}
				if other, dup := used[p]; dup {
					t.Errorf("%s: port %d also used by %s", s, p, other)
				}
				used[p] = s
			}
			// On the host's network the container must not take a native broker's port.
			for _, o := range Services() {
				if slices.Contains(spec.ports, nativePortNum(t, nativePort(t, NativeEndpoint(o)))) {
					t.Errorf("%s: container port list %v contains %s's native port", s, spec.ports, o)
				}
			}
		}
		if spec, _ := containerSpecFor(s, "courier/x:local", "0.0.0.0"); spec.image != "courier/x:local" {
			t.Errorf("%s: image override ignored: %q", s, spec.image)
		}
		if want := "COURIER_" + strings.ToUpper(string(s)) + "_IMAGE"; s.ImageEnvVar() != want {
			t.Errorf("%s: ImageEnvVar = %q, want %q", s, s.ImageEnvVar(), want)
		}
		if !strings.HasPrefix(LocalImage(s), "courier/") || !strings.HasSuffix(LocalImage(s), ":local") {
			t.Errorf("%s: LocalImage = %q", s, LocalImage(s))
		}
	}
	var unknown Service = "activemq"
	if _, ok := containerSpecFor(unknown, "", "0.0.0.0"); ok || unknown.ImageEnvVar() != "" || LocalImage(unknown) != "" || DefaultImage(unknown) != "" {
		t.Error("unknown service has a container")
	}
}

// nativePortNum turns "5672" or "5672/tcp" into 5672.
func nativePortNum(t *testing.T, p string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimSuffix(p, "/tcp"))
	if err != nil {
		t.Fatalf("port %q: %v", p, err)
	}
	return n
}

// TestContainerFailure checks the message for a container that did not start:
// it names the broker, the image and where the name came from, and the fixes.
func TestContainerFailure(t *testing.T) {
	cause := errors.New("pull access denied")
	tests := []struct {
		name    string
		s       Service
		image   string
		fromEnv bool
		want    []string
	}{
		{"wrong local name", RabbitMQ, "courier/rabbit:local", true,
			[]string{"RabbitMQ", `"courier/rabbit:local"`, "from COURIER_RABBITMQ_IMAGE", "make images",
				"COURIER_RABBITMQ_IMAGE=courier/rabbitmq:local", "unset COURIER_RABBITMQ_IMAGE to use rabbitmq:3.13", "pull access denied"}},
		{"official image unreachable", SQS, "", false,
			[]string{"SQS (ElasticMQ)", `"softwaremill/elasticmq-native:1.6.14"`, "the default, official image", "make images",
				"COURIER_SQS_IMAGE=courier/elasticmq:local", "make integration-containers"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := containerFailure(tt.s, tt.image, tt.fromEnv, cause)
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q lacks %q", msg, w)
				}
			}
		})
	}
}

func nativePort(t *testing.T, ep string) string {
	t.Helper()
	if u, err := url.Parse(ep); err == nil && u.Port() != "" {
		return u.Port()
	}
	_, port, ok := strings.Cut(ep, ":")
	if !ok {
		t.Fatalf("no port in %q", ep)
	}
	return port
}

func TestDockerHinted(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		files []string
		want  bool
	}{
		{"nothing", map[string]string{"HOME": "/home/u"}, nil, false},
		{"no HOME either", nil, nil, false},
		{"DOCKER_HOST", map[string]string{"DOCKER_HOST": "tcp://10.0.0.1:2375"}, nil, true},
		{"testcontainers override", map[string]string{"TESTCONTAINERS_DOCKER_SOCKET_OVERRIDE": "/x.sock"}, nil, true},
		{"system socket", nil, []string{"/var/run/docker.sock"}, true},
		{"desktop socket", map[string]string{"HOME": "/home/u"}, []string{"/home/u/.docker/run/docker.sock"}, true},
		{"testcontainers.properties", map[string]string{"HOME": "/home/u"}, []string{"/home/u/.testcontainers.properties"}, true},
		{"rootless socket", map[string]string{"XDG_RUNTIME_DIR": "/run/user/1000"}, []string{"/run/user/1000/docker.sock"}, true},
		{"podman socket", map[string]string{"XDG_RUNTIME_DIR": "/run/user/1000"}, []string{"/run/user/1000/podman/podman.sock"}, true},
		{"unrelated file", map[string]string{"HOME": "/home/u"}, []string{"/home/u/.bashrc"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]bool{}
			for _, f := range tt.files {
				files[f] = true
			}
			got := dockerHinted(func(k string) string { return tt.env[k] }, func(p string) bool { return files[p] })
			if got != tt.want {
				t.Errorf("dockerHinted = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestTruthy(t *testing.T) {
	for v, want := range map[string]bool{"1": true, "true": true, "TRUE": true, "yes": true, "on": true, " 1 ": true,
		"0": false, "false": false, "no": false, "": false, "2": false} {
		if got := truthy(v, true); got != want {
			t.Errorf("truthy(%q) = %v, want %v", v, got, want)
		}
	}
	if truthy("1", false) {
		t.Error("unset variable is truthy")
	}
}

// TestEndpointFromEnv runs Endpoint itself on the variable path, which needs
// no broker.
func TestEndpointFromEnv(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	want := "redis://" + ln.Addr().String() + "/0"
	t.Setenv("COURIER_REDIS_URL", want)
	if got := Endpoint(t, Redis); got != want {
		t.Errorf("Endpoint = %q; want %q", got, want)
	}
}

// fakeTB records a skip or failure instead of ending a real test, so that
// these tests don't show up as skipped in test summaries.
type fakeTB struct {
	testing.TB
	skipped, failed bool
	msg             string
}

type stopTest struct{}

func (f *fakeTB) Helper()                           {}
func (f *fakeTB) Logf(string, ...any)               {}
func (f *fakeTB) Cleanup(func())                    {}
func (f *fakeTB) Skip(args ...any)                  { f.skipped, f.msg = true, fmt.Sprint(args...); panic(stopTest{}) }
func (f *fakeTB) Skipf(format string, args ...any)  { f.Skip(fmt.Sprintf(format, args...)) }
func (f *fakeTB) Fatal(args ...any)                 { f.failed, f.msg = true, fmt.Sprint(args...); panic(stopTest{}) }
func (f *fakeTB) Fatalf(format string, args ...any) { f.Fatal(fmt.Sprintf(format, args...)) }

// run calls fn with the fake, stopping where a real test would stop.
func (f *fakeTB) run(fn func(testing.TB)) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(stopTest); !ok {
				panic(r)
			}
		}
	}()
	fn(f)
}

// TestEndpointUnavailable checks that, with no variable and no Docker,
// Endpoint skips, or fails when COURIER_REQUIRE_BROKERS=1.
func TestEndpointUnavailable(t *testing.T) {
	if DockerAvailable() {
		t.Skip("a Docker engine answers here: Endpoint would start a container")
	}
	t.Setenv(Kafka.EnvVar(), "")
	for _, require := range []string{"", "1"} {
		t.Setenv(RequireEnv, require)
		f := &fakeTB{TB: t}
		f.run(func(tb testing.TB) {
			Endpoint(tb, Kafka)
			t.Errorf("require=%q: Endpoint returned instead of stopping the test", require)
		})
		if f.skipped != (require == "") || f.failed != (require == "1") {
			t.Errorf("require=%q: skipped=%v failed=%v", require, f.skipped, f.failed)
		}
		if !strings.Contains(f.msg, "COURIER_KAFKA_BROKERS") {
			t.Errorf("require=%q: message %q", require, f.msg)
		}
	}
}

// TestControlSkipsForeignEndpoints checks that StopService, StartService and
// RequireControl leave alone a broker that up.sh does not serve: they skip, or
// fail under COURIER_REQUIRE_BROKERS=1, naming the broker.
func TestControlSkipsForeignEndpoints(t *testing.T) {
	for _, require := range []string{"", "1"} {
		t.Setenv(RequireEnv, require)
		for _, s := range []Service{RabbitMQ, Kafka} {
			t.Setenv(s.EnvVar(), "elsewhere.invalid:1")
			for name, fn := range map[string]func(testing.TB, Service){"stop": StopService, "start": StartService, "require": RequireControl} {
				f := &fakeTB{TB: t}
				f.run(func(tb testing.TB) {
					fn(tb, s)
					if name == "require" {
						t.Errorf("RequireControl(%s) returned for a foreign endpoint", s)
					}
				})
				if f.skipped != (require == "") || f.failed != (require == "1") || !strings.Contains(f.msg, s.Title()) {
					t.Errorf("require=%q: %s %s: skipped=%v failed=%v %q", require, name, s, f.skipped, f.failed, f.msg)
				}
				if require == "1" && !strings.Contains(f.msg, RequireEnv) {
					t.Errorf("%s %s: failure %q does not say why it is not a skip", name, s, f.msg)
				}
			}
		}
	}
}

func TestProcAlive(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	if !procAlive(os.Getpid()) {
		t.Error("this process is not alive")
	}
	if procAlive(1 << 30) {
		t.Error("a pid that cannot exist is alive")
	}
}

// TestShellAgrees checks that lib.sh (up.sh, down.sh) and this package agree
// on variables, endpoints and process marks.
func TestShellAgrees(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	lib, err := filepath.Abs("lib.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range Services() {
		out, err := exec.Command(bash, "-c", `set -euo pipefail; . "$1"; echo "$(env_var "$2")|$(endpoint "$2")|${CMD_MARK[$2]}"`,
			"bash", lib, string(s)).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v: %s", s, err, out)
		}
		want := s.EnvVar() + "|" + NativeEndpoint(s) + "|" + cmdMarks[s]
		if got := strings.TrimSpace(string(out)); got != want {
			t.Errorf("%s: lib.sh says %q, Go says %q", s, got, want)
		}
	}
}

func TestDialAddress(t *testing.T) {
	tests := []struct {
		s    Service
		in   string
		want string
	}{
		{RabbitMQ, "amqp://guest:guest@127.0.0.1:5672/", "127.0.0.1:5672"},
		{RabbitMQ, "amqp://guest:guest@rabbit/", "rabbit:5672"},
		{Kafka, "127.0.0.1:9092,127.0.0.1:9093", "127.0.0.1:9092"},
		{SQS, "http://127.0.0.1:9324", "127.0.0.1:9324"},
		{PubSub, "127.0.0.1:8085", "127.0.0.1:8085"},
		{Redis, "redis://127.0.0.1:6379/0", "127.0.0.1:6379"},
		{Postgres, "postgres://postgres:postgres@127.0.0.1:5432/courier?sslmode=disable", "127.0.0.1:5432"},
	}
	for _, tc := range tests {
		if got := dialAddress(tc.s, tc.in); got != tc.want {
			t.Errorf("dialAddress(%s, %q) = %q; want %q", tc.s, tc.in, got, tc.want)
		}
	}
}

// A variable naming an address where nothing answers skips, or fails when required, with a
// message naming the broker and how to start it.
func TestEndpointNotAnswering(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	t.Setenv(Kafka.EnvVar(), addr)
	for _, required := range []bool{false, true} {
		if required {
			t.Setenv(RequireEnv, "1")
		} else {
			t.Setenv(RequireEnv, "")
		}
		f := &fakeTB{TB: t}
		f.run(func(tb testing.TB) {
			Endpoint(tb, Kafka)
			t.Errorf("required=%v: Endpoint returned an address where nothing answers", required)
		})
		if required != f.failed || required == f.skipped {
			t.Errorf("required=%v: failed=%v skipped=%v", required, f.failed, f.skipped)
		}
		for _, want := range []string{"Kafka", addr, "up.sh kafka"} {
			if !strings.Contains(f.msg, want) {
				t.Errorf("message %q does not mention %q", f.msg, want)
			}
		}
	}
}

// helperEnv makes TestEndpointHelper call Endpoint for the service it names;
// the tests below run it in a child process, whose environment they choose.
const helperEnv = "COURIER_BROKERS_TEST_HELPER"

// TestEndpointHelper is not a test on its own: it skips unless a test below
// runs it in a child process.
func TestEndpointHelper(t *testing.T) {
	s := Service(os.Getenv(helperEnv))
	if s == "" {
		t.Skip("run by TestEndpointContainer* in a child process")
	}
	ep := Endpoint(t, s)
	t.Fatalf("Endpoint returned %q", ep)
}

// runHelper runs TestEndpointHelper for s in a child process with the
// container path forced (no endpoint variable) and env added; it returns
// whether the child failed, whether it skipped, and its output.
func runHelper(t *testing.T, s Service, env ...string) (failed, skipped bool, out string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestEndpointHelper$", "-test.v", "-test.count=1")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, s.EnvVar()+"=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, append([]string{helperEnv + "=" + string(s), "TESTCONTAINERS_RYUK_DISABLED=true"}, env...)...)
	b, err := cmd.CombinedOutput()
	out = string(b)
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run helper: %v", err)
	}
	return err != nil && strings.Contains(out, "--- FAIL: TestEndpointHelper"),
		err == nil && strings.Contains(out, "--- SKIP: TestEndpointHelper"), out
}

// TestEndpointContainerNoDaemon: with no endpoint variable and a Docker
// engine that does not answer, Endpoint fails under COURIER_REQUIRE_BROKERS=1
// and skips otherwise, with the same message naming the broker and the fixes.
func TestEndpointContainerNoDaemon(t *testing.T) {
	sock := "unix://" + filepath.Join(t.TempDir(), "no-docker.sock")
	for _, require := range []string{"1", "0"} {
		failed, skipped, out := runHelper(t, Redis, "DOCKER_HOST="+sock, RequireEnv+"="+require,
			"COURIER_REDIS_IMAGE=courier/redis:local")
		if failed != (require == "1") || skipped != (require == "0") {
			t.Errorf("require=%s: failed=%v skipped=%v; output:\n%s", require, failed, skipped, out)
		}
		for _, want := range []string{"Redis is not available", "COURIER_REDIS_URL is not set",
			"no Docker engine answers", "dockerd --iptables=false --bridge=none", "make integration-containers", "make brokers-up"} {
			if !strings.Contains(out, want) {
				t.Errorf("require=%s: output lacks %q:\n%s", require, want, out)
			}
		}
	}
}

// TestEndpointContainerWrongImage: with an image name that does not exist,
// Endpoint fails under COURIER_REQUIRE_BROKERS=1 and skips otherwise, naming
// the broker, the image and the fixes. It needs a Docker engine that answers.
func TestEndpointContainerWrongImage(t *testing.T) {
	if !DockerAvailable() {
		t.Skip("no Docker engine answers here: the message for a wrong image needs one (make integration-containers runs this test)")
	}
	const image = "courier/no-such-image:none"
	for _, require := range []string{"1", "0"} {
		failed, skipped, out := runHelper(t, Postgres, RequireEnv+"="+require, "COURIER_POSTGRES_IMAGE="+image)
		if failed != (require == "1") || skipped != (require == "0") {
			t.Errorf("require=%s: failed=%v skipped=%v; output:\n%s", require, failed, skipped, out)
		}
		for _, want := range []string{"PostgreSQL container did not start", `"` + image + `"`, "from COURIER_POSTGRES_IMAGE",
			"make images", "COURIER_POSTGRES_IMAGE=courier/postgres:local", "unset COURIER_POSTGRES_IMAGE to use postgres:16"} {
			if !strings.Contains(out, want) {
				t.Errorf("require=%s: output lacks %q:\n%s", require, want, out)
			}
		}
	}
}
