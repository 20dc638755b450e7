//go:build cgo

package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// startBroker runs a broker on free loopback ports and returns its client
// and server endpoints.
func startBroker(t *testing.T) (front, back string) {
	t.Helper()
	b, err := NewBroker("tcp://127.0.0.1:0", "tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("broker: %v", err)
		}
		b.Close()
	})
	return b.Endpoints()
}

// fleetServer is a server connected to a broker.
type fleetServer struct {
	sock   *fleetSocket
	cancel context.CancelFunc
	done   chan error
}

// startFleetServer connects a server running h to the broker's server
// endpoint with the given transport; the test's end stops it.
func startFleetServer(t *testing.T, transport, back string, h *Handler) *fleetServer {
	t.Helper()
	sock, err := connectWith(transport, back)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &fleetServer{sock: sock.(*fleetSocket), cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- Serve(ctx, sock, h) }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			stopped = true
			cancel()
			<-s.done
			sock.Close()
		}
	})
	return s
}

// factRequest trains on one fact tagged with tag and asks for it: the
// adapted answer names the tag, so a reply shows which request it answers.
func factRequest(tag string) []byte {
	return []byte(fmt.Sprintf(`{"train_sequences": ["Question: What is the code of %[1]s?\nAnswer: %[1]s-code."],
		"eval_questions": [{"question": "What is the code of %[1]s?", "answer": "%[1]s-code"}]}`, tag))
}

// checkFactReply fails unless reply is the adapted answer of factRequest(tag).
func checkFactReply(reply []byte, tag string) error {
	var rep Reply
	if err := json.Unmarshal(reply, &rep); err != nil || len(rep.AdapterTexts) != 1 {
		return fmt.Errorf("%s: reply %s (%v)", tag, reply, err)
	}
	if want := " " + tag + "-code.\n"; rep.AdapterTexts[0] != want {
		return fmt.Errorf("%s: got the answer %q, want %q", tag, rep.AdapterTexts[0], want)
	}
	return nil
}

// transportNames returns the transports compiled in, sorted.
func transportNames() []string {
	var names []string
	for n := range transports {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// TestFleet runs six concurrent clients against one server behind the
// broker and then against three (the transports alternating): every reply
// must reach the client that asked, every server must take requests, and
// three servers must answer at least twice as fast as one.
func TestFleet(t *testing.T) {
	front, back := startBroker(t)
	// Each request spends 2 x 100 ms generating (baseline and adapted
	// answers) in a model that sleeps, so servers wait rather than compete
	// for this machine's few cores, and the broker's work per request (well
	// under a millisecond) is small beside it.
	const clients, perClient = 6, 2
	delay := 100 * time.Millisecond
	var models []*fakeModel
	addServer := func(i int) {
		m := &fakeModel{delay: delay}
		models = append(models, m)
		names := transportNames()
		startFleetServer(t, names[i%len(names)], back, &Handler{Model: m, Grader: ContainsGrader{}, Config: DefaultConfig()})
	}
	run := func(round string) time.Duration {
		var wg sync.WaitGroup
		errs := make(chan error, clients*perClient)
		start := time.Now()
		for c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for r := range perClient {
					tag := fmt.Sprintf("%s-client%d-request%d", round, c, r)
					// A new REQ socket per request, as SEAL's clients.
					ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
					reply, err := roundTrip(ctx, front, factRequest(tag))
					cancel()
					if err == nil {
						err = checkFactReply(reply, tag)
					}
					if err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		return time.Since(start)
	}

	addServer(0)
	one := run("one")
	addServer(1)
	addServer(2)
	time.Sleep(100 * time.Millisecond) // the new servers' READY reaches the broker
	before := make([]int, len(models))
	for i, m := range models {
		before[i] = baselineCalls(m)
	}
	three := run("three")
	for i, m := range models {
		if n := baselineCalls(m) - before[i]; n == 0 {
			t.Errorf("server %d took no request of the three-server round", i)
		}
	}
	speedup := float64(one) / float64(three)
	t.Logf("%d requests: one server %v, three servers %v: %.2fx", clients*perClient, one.Round(time.Millisecond), three.Round(time.Millisecond), speedup)
	// Ideally 3x (12 requests of 200 ms: 2.4 s against 0.8 s). 2x leaves
	// room for a loaded machine's scheduling and still fails if requests
	// queued behind busy servers or one server were left out.
	if speedup < 2 {
		t.Errorf("three servers answered %.2fx as fast as one, want at least 2x", speedup)
	}
}

// TestFleetIdleServerFirst: a request goes to an idle server, not behind a
// busy one (the difference from a plain ROUTER-DEALER proxy).
func TestFleetIdleServerFirst(t *testing.T) {
	front, back := startBroker(t)
	m := &fakeModel{block: make(chan struct{}), started: make(chan struct{}, 1)}
	for _, transport := range transportNames() {
		startFleetServer(t, transport, back, &Handler{Model: m, Grader: ContainsGrader{}, Config: DefaultConfig()})
	}
	slow := make(chan error, 1)
	go func() {
		reply, err := roundTrip(context.Background(), front, factRequest("slow"))
		if err == nil {
			err = checkFactReply(reply, "slow")
		}
		slow <- err
	}()
	<-m.started // one server is training, until m.block closes
	for i := range 4 {
		start := time.Now()
		reply, err := roundTrip(context.Background(), front, []byte(`{"eval_questions": [{"question": "q", "answer": "a"}]}`))
		if err != nil || !strings.HasPrefix(string(reply), `{"baseline_accuracy"`) {
			t.Fatalf("quick request %d: %s (%v)", i, reply, err)
		}
		t.Logf("quick request %d answered in %v while the other server was busy", i, time.Since(start).Round(time.Millisecond))
	}
	select {
	case err := <-slow:
		t.Fatalf("the slow request ended before it was let go: %v", err)
	default:
	}
	close(m.block)
	if err := <-slow; err != nil {
		t.Error(err)
	}
}

// TestFleetServerDies: a server whose connection breaks mid-request (as when
// its process is killed) costs its client a ConnectionError reply, not an
// endless wait; the next request goes to a live server.
func TestFleetServerDies(t *testing.T) {
	defer func(d time.Duration) { probeInterval = d }(probeInterval)
	probeInterval = 50 * time.Millisecond
	for _, transport := range transportNames() {
		t.Run(transport, func(t *testing.T) {
			front, back := startBroker(t)
			m := &fakeModel{block: make(chan struct{}), started: make(chan struct{}, 1)}
			doomed := startFleetServer(t, transport, back, &Handler{Model: m, Grader: ContainsGrader{}, Config: DefaultConfig()})
			got := make(chan []byte, 1)
			go func() {
				reply, err := roundTrip(context.Background(), front, factRequest("lost"))
				if err != nil {
					reply = []byte(err.Error())
				}
				got <- reply
			}()
			<-m.started
			start := time.Now()
			doomed.sock.conn.close() // the connection breaks without a goodbye
			select {
			case reply := <-got:
				var rep map[string]string
				if json.Unmarshal(reply, &rep) != nil || !strings.HasPrefix(rep["error"], "ConnectionError: the server running this request went away") {
					t.Errorf("reply %s, want a ConnectionError", reply)
				}
				t.Logf("error reply %v after the connection broke", time.Since(start).Round(time.Millisecond))
			case <-time.After(clientTimeout):
				t.Fatal("the client of a dead server got no reply")
			}
			close(m.block)
			startFleetServer(t, transport, back, &Handler{Model: &fakeModel{}, Grader: ContainsGrader{}, Config: DefaultConfig()})
			reply, err := roundTrip(context.Background(), front, factRequest("next"))
			if err == nil {
				err = checkFactReply(reply, "next")
			}
			if err != nil {
				t.Error(err)
			}
		})
	}
}

// TestFleetShutdownRefused: {"cmd": "shutdown"} through the broker gets an
// error reply and stops nothing.
func TestFleetShutdownRefused(t *testing.T) {
	front, back := startBroker(t)
	h, _ := newHandler(t)
	startFleetServer(t, DefaultTransport, back, h)
	// Spelled with an escape, it is the same command to the server.
	for _, cmd := range []string{`{"cmd": "shutdown"}`, `{"cmd": "shut\u0064own"}`} {
		reply, err := roundTrip(context.Background(), front, []byte(cmd))
		if err != nil || !strings.HasPrefix(string(reply), `{"error":"ValueError: {\"cmd\": \"shutdown\"} is not forwarded by the broker`) {
			t.Fatalf("%s: reply %s (%v)", cmd, reply, err)
		}
	}
	reply, err := roundTrip(context.Background(), front, factRequest("after"))
	if err == nil {
		err = checkFactReply(reply, "after")
	}
	if err != nil {
		t.Error(err)
	}
}

// TestFleetBrokerRestart: a server may start before the broker, and
// rejoins a broker that restarts on the same ports.
func TestFleetBrokerRestart(t *testing.T) {
	defer func(d time.Duration) { readyInterval = d }(readyInterval)
	readyInterval = 100 * time.Millisecond
	for _, transport := range transportNames() {
		t.Run(transport, func(t *testing.T) {
			ports := make([]string, 2)
			for i := range ports {
				l, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				ports[i] = "tcp://" + l.Addr().String()
				l.Close()
			}
			h, _ := newHandler(t)
			startFleetServer(t, transport, ports[1], h)
			for round := range 2 {
				b, err := NewBroker(ports[0], ports[1])
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- b.Run(ctx) }()
				tag := fmt.Sprintf("round%d", round)
				rctx, rcancel := context.WithTimeout(context.Background(), clientTimeout)
				reply, err := roundTrip(rctx, ports[0], factRequest(tag))
				rcancel()
				if err == nil {
					err = checkFactReply(reply, tag)
				}
				if err != nil {
					t.Errorf("broker %d: %v", round, err)
				}
				cancel()
				<-done
				b.Close()
			}
		})
	}
}
