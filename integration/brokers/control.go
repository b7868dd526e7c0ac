package brokers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// cmdMarks are substrings of /proc/PID/cmdline of each service's process; a
// pid file whose process lacks it is stale. They match lib.sh's CMD_MARK.
var cmdMarks = map[Service]string{
	RabbitMQ: "rabbitmq",
	Kafka:    "kafka.Kafka",
	SQS:      "org.elasticmq.server.Main",
	PubSub:   "pstest-server",
	Redis:    "redis-server",
	Postgres: "postgres",
}

var (
	stoppedMu sync.Mutex
	// stopped records the services StopService stopped and StartService has
	// not started again.
	stopped = map[Service]bool{}
)

// StopService stops a service that integration/brokers/up.sh started on this
// machine, so that a test can watch clients ride out a broker outage:
//
//   - RabbitMQ: `rabbitmqctl stop_app` (the Erlang node stays up; every
//     connection is closed and the port stops answering);
//   - PostgreSQL: fast shutdown (SIGINT to the postmaster);
//   - the others (Kafka included): SIGTERM to the pid in .brokers/run, then
//     waiting for the process to exit.
//
// The test is skipped (failed under COURIER_REQUIRE_BROKERS=1, see SkipOrFail)
// when the service is not controllable: its endpoint came from a container, or
// its variable points somewhere other than up.sh's endpoint, or up.sh did not
// start it. Fault tests that start goroutines should call RequireControl first,
// on the test goroutine. If the test ends without calling
// StartService, a cleanup starts the service again so that later tests find it.
func StopService(t testing.TB, s Service) {
	t.Helper()
	pid := controllable(t, s)
	if pid == 0 {
		SkipOrFail(t, "brokers: %s was not started by integration/brokers/up.sh on this machine (pid file %s); cannot stop it",
			s.Title(), pidFile(s))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var err error
	switch s {
	case RabbitMQ:
		err = rabbitmqctl(ctx, "stop_app")
	case Postgres:
		err = stopPid(ctx, pid, syscall.SIGINT)
	default:
		err = stopPid(ctx, pid, syscall.SIGTERM)
	}
	if err != nil {
		t.Fatalf("brokers: stop %s: %v", s.Title(), err)
	}
	stoppedMu.Lock()
	first := !stopped[s]
	stopped[s] = true
	stoppedMu.Unlock()
	if first {
		t.Cleanup(func() {
			stoppedMu.Lock()
			still := stopped[s]
			stoppedMu.Unlock()
			if still {
				t.Logf("brokers: %s still stopped at the end of the test: starting it again", s.Title())
				StartService(t, s)
			}
		})
	}
	t.Logf("brokers: stopped %s", s.Title())
}

// StartService starts again a service stopped by StopService (or by hand) and
// returns once it answers: `rabbitmqctl start_app` for RabbitMQ, and
// `bash integration/brokers/up.sh SERVICE` for the others (which waits for a
// real protocol answer). It stops the test under the same conditions as
// StopService.
func StartService(t testing.TB, s Service) {
	t.Helper()
	if !nativeEndpointInUse(s) || !fileExists(filepath.Join(brokersDir(), "run")) {
		SkipOrFail(t, "brokers: %s does not come from integration/brokers/up.sh (%s=%q); cannot start it",
			s.Title(), s.EnvVar(), os.Getenv(s.EnvVar()))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var err error
	if s == RabbitMQ && servicePid(s) != 0 {
		err = rabbitmqctl(ctx, "start_app")
		if err == nil {
			err = waitTCP(ctx, "127.0.0.1:5672")
		}
	} else {
		err = runUp(ctx, s)
	}
	if err != nil {
		t.Fatalf("brokers: start %s: %v", s.Title(), err)
	}
	stoppedMu.Lock()
	delete(stopped, s)
	stoppedMu.Unlock()
	t.Logf("brokers: started %s", s.Title())
}

// RestartService is StopService followed by StartService.
func RestartService(t testing.TB, s Service) {
	t.Helper()
	StopService(t, s)
	StartService(t, s)
}

// controllable returns the pid of the service's up.sh process when the test
// uses up.sh's endpoint for it, and 0 otherwise.
func controllable(t testing.TB, s Service) int {
	t.Helper()
	if !nativeEndpointInUse(s) {
		return 0
	}
	return servicePid(s)
}

// nativeEndpointInUse reports whether the service's variable names up.sh's
// endpoint (and so Endpoint returns it).
func nativeEndpointInUse(s Service) bool {
	v := strings.TrimSpace(os.Getenv(s.EnvVar()))
	return v != "" && v == NativeEndpoint(s)
}

// servicePid returns the live pid recorded in .brokers/run/SERVICE.pid, or 0.
func servicePid(s Service) int {
	b, err := os.ReadFile(pidFile(s))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 || !procAlive(pid) {
		return 0
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(cmdline, []byte(cmdMarks[s])) {
		return 0
	}
	return pid
}

// procAlive reports whether the process exists and is not a zombie.
func procAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	if state := b[i+2]; state != 'Z' && state != 'X' {
		return true
	}
	// A zombie main thread whose other threads still run is alive.
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	return len(tasks) > 1
}

func stopPid(ctx context.Context, pid int, sig syscall.Signal) error {
	if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	grace := time.NewTimer(90 * time.Second)
	defer grace.Stop()
	for procAlive(pid) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("pid %d still running: %w", pid, ctx.Err())
		case <-grace.C:
			_ = syscall.Kill(pid, syscall.SIGKILL)
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

func rabbitmqctl(ctx context.Context, args ...string) error {
	ctl := os.Getenv("COURIER_RABBITMQCTL")
	if ctl == "" {
		ctl = filepath.Join(brokersDir(), "bin", "rabbitmqctl")
	}
	out, err := exec.CommandContext(ctx, ctl, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", ctl, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func runUp(ctx context.Context, s Service) error {
	script := filepath.Join(repoRoot(), "integration", "brokers", "up.sh")
	cmd := exec.CommandContext(ctx, "bash", script, string(s))
	cmd.Dir = repoRoot()
	cmd.Env = append(os.Environ(), "COURIER_BROKERS_DIR="+brokersDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v\n%s", script, s, err, out)
	}
	return nil
}

func waitTCP(ctx context.Context, addr string) error {
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			return c.Close()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s does not accept connections: %w", addr, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func pidFile(s Service) string { return filepath.Join(brokersDir(), "run", string(s)+".pid") }

// brokersDir is where up.sh keeps its state: $COURIER_BROKERS_DIR (exported
// by .brokers/env), else .brokers at the repository root.
func brokersDir() string {
	if d := os.Getenv("COURIER_BROKERS_DIR"); d != "" {
		return d
	}
	return filepath.Join(repoRoot(), ".brokers")
}

// repoRoot finds the repository root: from this file's path when the binary
// was built from the source tree, else the nearest go.mod above the working
// directory (go test runs in the package's directory).
var repoRoot = sync.OnceValue(func() string {
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		root := filepath.Dir(filepath.Dir(filepath.Dir(file)))
		if fileExists(filepath.Join(root, "go.mod")) {
			return root
		}
	}
	dir, err := os.Getwd()
	if err != nil {
		return "."
	}
	for d := dir; ; d = filepath.Dir(d) {
		if fileExists(filepath.Join(d, "go.mod")) {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
})

// CanControl reports whether StopService and StartService can act on the service here: it is
// the native broker that integration/brokers/up.sh started from this checkout. Fault tests
// check it on the test goroutine before they start goroutines that stop the broker, since a
// skip must not happen on another goroutine.
func CanControl(s Service) bool {
	return nativeEndpointInUse(s) && servicePid(s) != 0
}

// RequireControl stops the test (see SkipOrFail: a skip, or a failure under
// COURIER_REQUIRE_BROKERS=1) unless CanControl(s). Call it on the test goroutine.
func RequireControl(t testing.TB, s Service) {
	t.Helper()
	if !CanControl(s) {
		SkipOrFail(t, "brokers: %s was not started by integration/brokers/up.sh from this checkout (%s=%q, pid file %s); cannot stop and start it",
			s.Title(), s.EnvVar(), os.Getenv(s.EnvVar()), pidFile(s))
	}
}
