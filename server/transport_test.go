package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gozmq "github.com/go-zeromq/zmq4"

	"github.com/goseal/ttt/cpu"
	"github.com/goseal/ttt/nn"
	"github.com/goseal/ttt/tokenizer"
)

// clientTimeout bounds every wait of a test client for a reply.
const clientTimeout = 30 * time.Second

// forEachTransport runs f once per transport compiled in.
func forEachTransport(t *testing.T, f func(t *testing.T, transport string)) {
	names := make([]string, 0, len(transports))
	for name := range transports {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) { f(t, name) })
	}
}

// startServer serves h on a free loopback port with the given transport. It
// returns the endpoint and a function that stops the server and reports
// what Serve returned.
func startServer(t *testing.T, transport string, h *Handler) (string, func() error) {
	t.Helper()
	sock, err := transports[transport]("tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, sock, h) }()
	stopped := false
	var serveErr error
	stop := func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case serveErr = <-done:
			case <-time.After(clientTimeout):
				serveErr = errors.New("Serve did not return after its context was cancelled")
			}
			sock.Close()
		}
		return serveErr
	}
	t.Cleanup(func() { stop() })
	return sock.Endpoint(), stop
}

// dealer is a test client that can see every reply the server sends,
// duplicates included (a REQ socket would hide them).
type dealer struct {
	t    *testing.T
	sock gozmq.Socket
}

func newDealer(t *testing.T, endpoint string) *dealer {
	t.Helper()
	sock := gozmq.NewDealer(context.Background())
	if err := sock.Dial(endpoint); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sock.Close() })
	return &dealer{t: t, sock: sock}
}

// send sends one request of the given frames behind the REQ delimiter.
func (d *dealer) send(frames [][]byte) {
	d.t.Helper()
	if err := d.sock.Send(gozmq.NewMsgFrom(append([][]byte{{}}, frames...)...)); err != nil {
		d.t.Fatal(err)
	}
}

// recv returns the next reply's payload.
func (d *dealer) recv() []byte {
	d.t.Helper()
	type result struct {
		msg gozmq.Msg
		err error
	}
	ch := make(chan result, 1)
	go func() {
		msg, err := d.sock.Recv()
		ch <- result{msg, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			d.t.Fatal(r.err)
		}
		if len(r.msg.Frames) != 2 || len(r.msg.Frames[0]) != 0 {
			d.t.Fatalf("reply frames %q, want a delimiter and one payload", r.msg.Frames)
		}
		return r.msg.Frames[1]
	case <-time.After(clientTimeout):
		d.t.Fatal("no reply")
		return nil
	}
}

func TestTransportBadRequests(t *testing.T) {
	forEachTransport(t, func(t *testing.T, transport string) {
		h, _ := newHandler(t)
		endpoint, _ := startServer(t, transport, h)
		d := newDealer(t, endpoint)
		good := [][]byte{[]byte(twoFacts + `}`)}
		for _, bad := range badRequests {
			d.send(bad.frames)
			var reply map[string]string
			if err := json.Unmarshal(d.recv(), &reply); err != nil || len(reply) != 1 || !strings.HasPrefix(reply["error"], bad.want+": ") {
				t.Fatalf("%s: reply %v (%v), want one %s error", bad.name, reply, err, bad.want)
			}
			// The next reply must be the good request's: a second reply to
			// the bad request would show up here.
			d.send(good)
			var rep Reply
			if err := json.Unmarshal(d.recv(), &rep); err != nil || rep.AdapterAccuracy != 1 {
				t.Fatalf("after %s: good request got %+v (%v)", bad.name, rep, err)
			}
		}
	})
}

func TestClientDisconnectsMidRequest(t *testing.T) {
	forEachTransport(t, func(t *testing.T, transport string) {
		h, m := newHandler(t)
		m.block, m.started = make(chan struct{}), make(chan struct{}, 1)
		endpoint, _ := startServer(t, transport, h)

		ctx, cancel := context.WithCancel(context.Background())
		gone := gozmq.NewReq(ctx)
		if err := gone.Dial(endpoint); err != nil {
			t.Fatal(err)
		}
		if err := gone.Send(gozmq.NewMsgString(twoFacts + `}`)); err != nil {
			t.Fatal(err)
		}
		<-m.started // the server is training for the client...
		gone.Close()
		cancel()       // ...which vanishes
		close(m.block) // training ends, for this request and all later ones

		reply, err := roundTrip(context.Background(), endpoint, []byte(twoFacts+`}`))
		var rep Reply
		if err != nil || json.Unmarshal(reply, &rep) != nil || rep.AdapterAccuracy != 1 {
			t.Fatalf("next client got %s (%v)", reply, err)
		}
	})
}

func TestStopMidRequest(t *testing.T) {
	forEachTransport(t, func(t *testing.T, transport string) {
		h, m := newHandler(t)
		m.block, m.started = make(chan struct{}), make(chan struct{}, 1)
		endpoint, stop := startServer(t, transport, h)
		d := newDealer(t, endpoint)
		d.send([][]byte{[]byte(twoFacts + `}`)})
		<-m.started
		// What SIGINT or SIGTERM does to `seal-ttt serve`: cancel the context.
		serveErr := make(chan error, 1)
		go func() { serveErr <- stop() }()
		reply := d.recv()
		want := `{"error":"KeyboardInterrupt: the server is shutting down; the request was abandoned"}`
		if string(reply) != want {
			t.Errorf("reply %s, want %s", reply, want)
		}
		if err := <-serveErr; err != nil {
			t.Errorf("Serve returned %v, want nil", err)
		}
		if m.released.Load() != 0 {
			t.Errorf("no adapter was trained, yet %d were released", m.released.Load())
		}
	})
}

func TestStopWhileIdle(t *testing.T) {
	forEachTransport(t, func(t *testing.T, transport string) {
		h, _ := newHandler(t)
		endpoint, stop := startServer(t, transport, h)
		if _, err := roundTrip(context.Background(), endpoint, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		if err := stop(); err != nil {
			t.Errorf("Serve returned %v, want nil", err)
		}
	})
}

func TestShutdownCommand(t *testing.T) {
	forEachTransport(t, func(t *testing.T, transport string) {
		h, _ := newHandler(t)
		sock, err := transports[transport]("tcp://127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer sock.Close()
		done := make(chan error, 1)
		go func() { done <- Serve(context.Background(), sock, h) }()
		reply, err := roundTrip(context.Background(), sock.Endpoint(), []byte(`{"cmd": "shutdown"}`))
		if err != nil || string(reply) != `{"status":"bye"}` {
			t.Fatalf("reply %s (%v)", reply, err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve returned %v, want nil", err)
			}
		case <-time.After(clientTimeout):
			t.Fatal("Serve did not return after the shutdown command")
		}
	})
}

// TestSEALClient runs the Python client in testdata, which behaves as
// SEAL's query_server.py (a new REQ socket per attempt, LINGER 0, poll,
// retry on an error reply), against the server over real TCP.
func TestSEALClient(t *testing.T) {
	// Debian's python3, which has python3-zmq (`make deps`); elsewhere, set
	// SEAL_TTT_PYTHON to a Python with pyzmq.
	python := "/usr/bin/python3"
	if p := os.Getenv("SEAL_TTT_PYTHON"); p != "" {
		python = p
	}
	if err := exec.Command(python, "-c", "import zmq").Run(); err != nil {
		t.Fatalf("%s with pyzmq is needed (make deps installs python3-zmq, or set SEAL_TTT_PYTHON): %v", python, err)
	}
	forEachTransport(t, func(t *testing.T, transport string) {
		h, _ := newHandler(t)
		endpoint, _ := startServer(t, transport, h)
		good := json.RawMessage(twoFacts + `}`)
		script, _ := json.Marshal([]map[string]any{
			{"op": "round_trip", "payload": good},
			{"op": "abandon", "payload": good},
			{"op": "round_trip", "payload": json.RawMessage(twoFacts + `, "lora_rank": 0}`)},
			{"op": "round_trip", "payload": json.RawMessage(twoFacts + `, "skip_training": true}`)},
			{"op": "shutdown"},
		})
		cmd := exec.Command(python, filepath.Join("testdata", "seal_client.py"), endpoint, strconv.Itoa(int(clientTimeout/time.Millisecond)))
		cmd.Stdin = strings.NewReader(string(script))
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("client: %v\n%s", err, out)
		}
		var results []map[string]any
		if err := json.Unmarshal(out, &results); err != nil || len(results) != 5 {
			t.Fatalf("client output %s (%v)", out, err)
		}
		if r := results[0]["reply"].(map[string]any); r["adapter_accuracy"] != 1.0 || r["baseline_accuracy"] != 0.0 ||
			!reflect.DeepEqual(r["adapter_texts"], []any{" Ada lives in Brindle.\n", " Pim.\n"}) {
			t.Errorf("round trip: %v", results[0])
		}
		wantErr := "TTT server error: ValueError: lora_rank = 0 is out of range: it must be between 1 and 4096"
		if r := results[2]; r["raised"] != "TTT server unreachable after 2 attempts" ||
			!reflect.DeepEqual(r["printed"], []any{wantErr, wantErr}) {
			t.Errorf("error reply, retried: %v", r)
		}
		if r := results[3]["reply"].(map[string]any); r["adapter_gain"] != 0.0 || !reflect.DeepEqual(r["gains"], []any{0.0, 0.0}) {
			t.Errorf("skip_training: %v", results[3])
		}
		if r := results[4]["reply"]; !reflect.DeepEqual(r, map[string]any{"status": "bye"}) {
			t.Errorf("shutdown: %v", results[4])
		}
	})
}

// TestMemoryFlat checks that serving does not accumulate memory: the
// resident set after 200 small requests (each from a new client, as SEAL's
// clients connect) is within 10% of that after 20.
func TestMemoryFlat(t *testing.T) {
	forEachTransport(t, func(t *testing.T, transport string) {
		h, _ := newHandler(t)
		endpoint, _ := startServer(t, transport, h)
		checkMemoryFlat(t, endpoint, []byte(twoFacts+`}`))
	})
}

// TestMemoryFlatBuiltinModel is TestMemoryFlat with the built-in model, so
// that every request really trains, uses and drops an adapter.
func TestMemoryFlatBuiltinModel(t *testing.T) {
	e, err := NewEngine(nn.Builtin(cpu.Backend{}), tokenizer.Bytes(), "builtin", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.MaxSeqLength, cfg.MaxTokens, cfg.Padding = 32, 4, "longest"
	h := &Handler{Model: e, Grader: ContainsGrader{}, Config: cfg}
	endpoint, _ := startServer(t, DefaultTransport, h)
	checkMemoryFlat(t, endpoint, []byte(`{"train_sequences": ["Ada lives in Brindle."],
		"eval_questions": [{"question": "Where does Ada live?", "answer": "Brindle"}],
		"lora_rank": 4, "lora_alpha": 8, "finetune_epochs": 1}`))
}

// checkMemoryFlat sends 200 requests to endpoint, each from a new client as
// SEAL's clients connect, and fails if the resident set after 200 is more
// than 10% above that after 20, or goroutines accumulate.
func checkMemoryFlat(t *testing.T, endpoint string, req []byte) {
	if runtime.GOOS != "linux" {
		t.Skip("reads the resident set size from /proc")
	}
	var rss, goroutines [2]int
	for i := 1; i <= 200; i++ {
		reply, err := roundTrip(context.Background(), endpoint, req)
		if err != nil || !strings.HasPrefix(string(reply), `{"baseline_accuracy"`) {
			t.Fatalf("request %d: %s (%v)", i, reply, err)
		}
		if i == 20 || i == 200 {
			time.Sleep(100 * time.Millisecond) // let closed connections wind down
			debug.FreeOSMemory()
			k := i / 200
			rss[k], goroutines[k] = residentKB(t), runtime.NumGoroutine()
		}
	}
	t.Logf("RSS after 20 requests %d KiB, after 200 %d KiB (%+.1f%%); goroutines %d, %d",
		rss[0], rss[1], 100*float64(rss[1]-rss[0])/float64(rss[0]), goroutines[0], goroutines[1])
	if float64(rss[1]) > 1.1*float64(rss[0]) {
		t.Errorf("RSS grew from %d KiB to %d KiB", rss[0], rss[1])
	}
	if goroutines[1] > goroutines[0]+5 {
		t.Errorf("goroutines grew from %d to %d", goroutines[0], goroutines[1])
	}
}

// residentKB reads this process's resident set size.
func residentKB(t *testing.T) int {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int
			if _, err := fmt.Sscanf(rest, "%d", &kb); err == nil {
				return kb
			}
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// TestStrayConnections checks that TCP peers that are not ZeroMQ clients (a
// port scanner that connects and says nothing, an HTTP client) do not stop
// the server from serving the next real client.
func TestStrayConnections(t *testing.T) {
	defer func(d time.Duration) { handshakeTimeout = d }(handshakeTimeout)
	handshakeTimeout = 200 * time.Millisecond
	forEachTransport(t, func(t *testing.T, transport string) {
		h, _ := newHandler(t)
		endpoint, _ := startServer(t, transport, h)
		addr := strings.TrimPrefix(endpoint, "tcp://")
		silent, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer silent.Close()
		web, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(web, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
		defer web.Close()
		// go-zeromq's client handshake ignores its context: wait here.
		done := make(chan error, 1)
		go func() {
			reply, err := roundTrip(context.Background(), endpoint, []byte(twoFacts+`}`))
			var rep Reply
			if err == nil && (json.Unmarshal(reply, &rep) != nil || rep.AdapterAccuracy != 1) {
				err = fmt.Errorf("reply %s", reply)
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("client after stray connections: %v", err)
			}
		case <-time.After(clientTimeout):
			t.Fatal("client after stray connections got no reply")
		}
	})
}

// TestLargeRequest sends a request of the size CPT.py sends (thousands of
// sequences, a thousand questions) through each transport.
func TestLargeRequest(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"train_sequences": [`)
	for i := range 5000 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"Question: What is item %d?\nAnswer: item %d is thing%d. %s"`, i, i, i, strings.Repeat("padding ", 100))
	}
	b.WriteString(`], "eval_questions": [`)
	for i := range 1000 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"question": "What is item %d?", "answer": "thing%d"}`, i, i)
	}
	b.WriteString(`], "finetune_epochs": 1}`)
	forEachTransport(t, func(t *testing.T, transport string) {
		h, _ := newHandler(t)
		endpoint, _ := startServer(t, transport, h)
		d := newDealer(t, endpoint)
		d.send([][]byte{[]byte(b.String())})
		var rep Reply
		if err := json.Unmarshal(d.recv(), &rep); err != nil || len(rep.AdapterCorrect) != 1000 || rep.AdapterAccuracy != 1 {
			t.Fatalf("reply %.200v (%v)", rep, err)
		}
	})
}

// BenchmarkRoundTrip measures the server's per-request overhead: a small
// request over loopback from a new client each time, as SEAL's clients
// connect, with the fake model.
func BenchmarkRoundTrip(b *testing.B) {
	for _, transport := range []string{"go", "libzmq"} {
		listen, ok := transports[transport]
		if !ok {
			continue
		}
		b.Run(transport, func(b *testing.B) {
			h := &Handler{Model: &fakeModel{}, Grader: ContainsGrader{}, Config: DefaultConfig()}
			sock, err := listen("tcp://127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			served := make(chan error, 1)
			go func() { served <- Serve(ctx, sock, h) }()
			req := []byte(twoFacts + `}`)
			for b.Loop() {
				if _, err := roundTrip(ctx, sock.Endpoint(), req); err != nil {
					b.Fatal(err)
				}
			}
			cancel()
			<-served // a socket is closed only once nothing uses it
			sock.Close()
		})
	}
}

// TestHugeFrameHeader sends a ZeroMQ greeting and then a frame header that
// announces 2^62 bytes: the server must drop that peer, not try to allocate
// the frame, and serve the next client.
func TestHugeFrameHeader(t *testing.T) {
	greeting := make([]byte, 64)
	greeting[0], greeting[9], greeting[10] = 0xff, 0x7f, 3 // signature, ZMTP 3.0
	copy(greeting[12:], "NULL")
	for _, afterGreeting := range []string{"handshake", "message"} {
		t.Run(afterGreeting, func(t *testing.T) {
			forEachTransport(t, func(t *testing.T, transport string) {
				h, _ := newHandler(t)
				endpoint, _ := startServer(t, transport, h)
				c, err := net.Dial("tcp", strings.TrimPrefix(endpoint, "tcp://"))
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				c.Write(greeting)
				if afterGreeting == "message" {
					// A proper READY command for a REQ socket first.
					ready := []byte("\x05READY\x0bSocket-Type\x00\x00\x00\x03REQ")
					c.Write(append([]byte{0x04, byte(len(ready))}, ready...))
				}
				c.Write([]byte{0x02, 0x40, 0, 0, 0, 0, 0, 0, 0}) // long frame, 2^62 bytes
				reply, err := roundTrip(context.Background(), endpoint, []byte(`{}`))
				if err != nil || !strings.HasPrefix(string(reply), `{"baseline_accuracy"`) {
					t.Fatalf("next client got %s (%v)", reply, err)
				}
			})
		})
	}
}

// TestMessageTotalBound: the pure-Go transport bounds a message's frames
// together, so a multipart message cannot get around the limit on one
// frame. (libzmq's ZMQ_MAXMSGSIZE bounds each frame alone; see
// docs/decisions.md.)
func TestMessageTotalBound(t *testing.T) {
	defer func(old uint64) { maxMessageBytes = old }(maxMessageBytes)
	maxMessageBytes = 1000
	h, _ := newHandler(t)
	var logBuf syncLog
	h.Log = slog.New(slog.NewTextHandler(&logBuf, nil))
	endpoint, _ := startServer(t, "go", h)
	part := []byte(strings.Repeat("x", 400))

	// Two frames of 400 bytes: under the limit, answered (as a multipart error).
	d := newDealer(t, endpoint)
	d.send([][]byte{part, part})
	if reply := string(d.recv()); !strings.Contains(reply, "ValueError: multipart message with 2 frames") {
		t.Fatalf("reply %s", reply)
	}
	// Three: 1200 bytes together; the peer is dropped and gets no reply.
	// On the same, connected peer. The server may close the connection
	// before the last frame is written.
	d.sock.Send(gozmq.NewMsgFrom([]byte{}, part, part, part))
	got := make(chan error, 1)
	go func() { _, err := d.sock.Recv(); got <- err }()
	select {
	case err := <-got:
		if err == nil {
			t.Fatal("a message over the limit was answered")
		}
	case <-time.After(500 * time.Millisecond): // dropped: no reply comes
	}
	// The server goes on serving others.
	reply, err := roundTrip(context.Background(), endpoint, []byte(`{}`))
	if err != nil || !strings.HasPrefix(string(reply), `{"baseline_accuracy"`) {
		t.Fatalf("next client got %s (%v)", reply, err)
	}
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(logBuf.String(), "message over the size limit"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no log line for the dropped peer:\n%s", logBuf.String())
		}
	}
}

// syncLog is a log destination safe for concurrent writers.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestBindEndpoint(t *testing.T) {
	cases := []struct {
		host string
		want string // "" means any address of localhost
		all  bool
	}{
		{"*", "tcp://*:5555", true},
		{"0.0.0.0", "tcp://0.0.0.0:5555", true},
		{"::", "tcp://[::]:5555", true},
		{"127.0.0.1", "tcp://127.0.0.1:5555", false},
		{"::1", "tcp://[::1]:5555", false},
		{"localhost", "", false},
	}
	for _, c := range cases {
		got, err := BindEndpoint(c.host, 5555)
		if err != nil {
			t.Errorf("%s: %v", c.host, err)
			continue
		}
		if c.want != "" && got != c.want || c.want == "" && got != "tcp://127.0.0.1:5555" && got != "tcp://[::1]:5555" {
			t.Errorf("BindEndpoint(%q) = %q, want %q", c.host, got, c.want)
		}
		if AllInterfaces(c.host) != c.all {
			t.Errorf("AllInterfaces(%q) = %v", c.host, !c.all)
		}
	}
	// A name that resolves binds: localhost works where libzmq wants an address.
	ep, _ := BindEndpoint("localhost", 0)
	sock, err := Listen(ep)
	if err != nil {
		t.Fatalf("binding %s: %v", ep, err)
	}
	sock.Close()
	if _, err := BindEndpoint("no-such-host.invalid", 1); err == nil {
		t.Error("an unknown host name was accepted")
	}
}
