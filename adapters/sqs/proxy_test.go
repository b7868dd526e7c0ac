package sqs_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fault is an error response the proxy returns instead of forwarding a request.
type fault struct {
	status int
	typ    string // JSON "__type", e.g. "com.amazon.coral.availability#ThrottlingException"
	query  string // X-Amzn-Query-Error header, e.g. "RequestThrottled;Sender"
	msg    string
}

// sqsProxy sits between the adapter and the emulator: it can answer an operation with a fault
// (the AWS JSON protocol's error shape) and rewrite GetQueueAttributes answers.
type sqsProxy struct {
	*httptest.Server
	mu    sync.Mutex
	calls map[string]int // operation → requests seen
	// fail decides, for the n-th request (from 1) of operation op, whether to answer it with
	// a fault.
	fail func(op string, n int) *fault
	// queueAttrs are added to every GetQueueAttributes answer (MaximumMessageSize, say).
	queueAttrs map[string]string
	// entryFaults turns the listed entries (by batch entry Id) of every SendMessageBatch
	// answer from successful into failed, with the given code; SenderFault is true for codes
	// starting with "Invalid".
	entryFaults map[string]string
}

func newSQSProxy(t testing.TB, target string) *sqsProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &sqsProxy{calls: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = p.rewrite
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "AmazonSQS.")
		p.mu.Lock()
		p.calls[op]++
		n := p.calls[op]
		fail := p.fail
		p.mu.Unlock()
		if fail != nil {
			if f := fail(op, n); f != nil {
				_, _ = io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "application/x-amz-json-1.0")
				if f.query != "" {
					w.Header().Set("X-Amzn-Query-Error", f.query)
				}
				w.WriteHeader(f.status)
				body, _ := json.Marshal(map[string]string{"__type": f.typ, "message": f.msg})
				_, _ = w.Write(body)
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *sqsProxy) count(op string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[op]
}

func (p *sqsProxy) setFail(f func(op string, n int) *fault) {
	p.mu.Lock()
	p.fail = f
	p.mu.Unlock()
}

func (p *sqsProxy) rewrite(resp *http.Response) error {
	op := resp.Request.Header.Get("X-Amz-Target")
	switch {
	case resp.StatusCode != http.StatusOK:
		return nil
	case op == "AmazonSQS.GetQueueAttributes" && len(p.queueAttrs) > 0:
	case op == "AmazonSQS.SendMessageBatch" && len(p.entryFaults) > 0:
	default:
		return nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if op == "AmazonSQS.GetQueueAttributes" {
		var out map[string]map[string]string
		if err := json.Unmarshal(body, &out); err == nil {
			if out["Attributes"] == nil {
				out["Attributes"] = map[string]string{}
			}
			for k, v := range p.queueAttrs {
				out["Attributes"][k] = v
			}
			body, _ = json.Marshal(out)
		}
	} else {
		var out struct {
			Successful []map[string]any
			Failed     []map[string]any
		}
		if err := json.Unmarshal(body, &out); err == nil {
			var ok []map[string]any
			for _, e := range out.Successful {
				id, _ := e["Id"].(string)
				if code, bad := p.entryFaults[id]; bad {
					out.Failed = append(out.Failed, map[string]any{"Id": id, "Code": code,
						"Message": "injected by the test proxy", "SenderFault": strings.HasPrefix(code, "Invalid")})
					continue
				}
				ok = append(ok, e)
			}
			out.Successful = ok
			body, _ = json.Marshal(out)
		}
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return nil
}

// httptestServer serves h until the test ends and returns its URL.
func httptestServer(t testing.TB, h http.Handler) string {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.URL
}
