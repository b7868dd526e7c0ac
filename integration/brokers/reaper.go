package brokers

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
)

// Labels on every container this package starts.
const (
	labelBroker  = "courier.broker"  // the service
	labelSession = "courier.session" // the test binary run that started it
	labelPID     = "courier.pid"     // that binary's process id
)

// RecordEnv names a file to which every container start and removal is
// appended, one tab-separated line each: time, event (started, removed,
// reaped, terminate-failed), test binary, its pid, service, image, container
// id, endpoint or reason, start-up time. `make integration-containers` prints
// a summary of it.
const RecordEnv = "COURIER_CONTAINER_RECORD"

// reaperEnv, set only in the reaper's environment, makes the test binary act
// as the reaper (see init).
const reaperEnv = "COURIER_CONTAINER_REAPER_SESSION"

// session identifies this test binary run in container labels.
var session = sync.OnceValue(func() string {
	return fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())
})

// reaperPipe is the write end of the pipe the reaper reads: it stays open
// (referenced here, so never finalized) until this process exits, and then
// the reaper reads end-of-file.
//
//lint:ignore U1000 never read: holding it keeps the pipe open until exit
var reaperPipe *os.File

// startReaper starts, once per test binary, a copy of this binary as a
// reaper: in its own session (so an interrupt of the tests does not stop it),
// it waits for this process to exit, however it exits, and removes every
// container labelled with this run's session. TerminateAll removes them
// sooner; the reaper covers test binaries without it, and crashes. It works
// with testcontainers' Ryuk turned off (TESTCONTAINERS_RYUK_DISABLED=true).
var startReaper = sync.OnceFunc(func() {
	if err := spawnReaper(); err != nil {
		fmt.Fprintf(os.Stderr, "brokers: cannot start the container reaper (containers of this run outlive it: "+
			"remove them with `docker rm -f $(docker ps -aq --filter label=%s=%s)`): %v\n", labelSession, session(), err)
	}
})

func spawnReaper() error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	// -test.run=^$: should the binary not act as the reaper, it runs no test.
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), reaperEnv+"="+session())
	cmd.Stdin = r
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		_ = w.Close()
		return err
	}
	reaperPipe = w
	return cmd.Process.Release()
}

func init() {
	if s := os.Getenv(reaperEnv); s != "" {
		os.Exit(reap(s, os.Stdin))
	}
}

// reap waits for end-of-file on parent (the test binary exited), then
// removes the session's containers.
func reap(sess string, parent io.Reader) int {
	_, _ = io.Copy(io.Discard, parent)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return 1
	}
	defer cli.Close()
	list, err := cli.ContainerList(ctx, client.ContainerListOptions{
		All: true, Filters: make(client.Filters).Add("label", labelSession+"="+sess),
	})
	if err != nil {
		return 1
	}
	code := 0
	for _, c := range list.Items {
		s := Service(c.Labels[labelBroker])
		_, err := cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil {
			record("reap-failed", s, c.Image, c.ID, err.Error(), 0)
			code = 1
			continue
		}
		record("reaped", s, c.Image, c.ID, "test binary exited", 0)
	}
	return code
}

var recordMu sync.Mutex

// record appends an event to the file RecordEnv names, if any.
func record(event string, s Service, image, id, detail string, took time.Duration) {
	path := os.Getenv(RecordEnv)
	if path == "" {
		return
	}
	if len(id) > 12 {
		id = id[:12]
	}
	line := strings.Join([]string{
		time.Now().UTC().Format(time.RFC3339), event, filepath.Base(os.Args[0]), fmt.Sprint(os.Getpid()),
		string(s), image, id, strings.ReplaceAll(detail, "\t", " "), took.Round(time.Millisecond).String(),
	}, "\t") + "\n"
	recordMu.Lock()
	defer recordMu.Unlock()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return
	}
	_, _ = f.WriteString(line)
	_ = f.Close()
}
