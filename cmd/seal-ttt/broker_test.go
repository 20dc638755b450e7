//go:build cgo

package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	gozmq "github.com/go-zeromq/zmq4"
)

// TestBrokerFleet runs `seal-ttt broker` and `seal-ttt serve --connect` as
// processes: a server killed (SIGKILL) mid-request costs its client a
// ConnectionError reply; a server that joins next serves SEAL's client
// through the broker; shutdown through the broker is refused; SIGTERM stops
// the server and the broker with status 0.
func TestBrokerFleet(t *testing.T) {
	front, workers := freePort(t), freePort(t)
	broker, brokerLog := seal(t, "broker", "--zmq_host", "127.0.0.1", "--zmq_port", front,
		"--workers_host", "127.0.0.1", "--workers_port", workers, "--log_format", "json")
	brokerLog.waitFor(t, `"msg":"broker listening"`)
	join := append(serveArgs(freePort(t)), "--connect", "tcp://127.0.0.1:"+workers)

	doomed, doomedLog := seal(t, join...)
	brokerLog.waitFor(t, `"msg":"server joined"`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := gozmq.NewReq(ctx)
	defer req.Close()
	if err := req.Dial("tcp://127.0.0.1:" + front); err != nil {
		t.Fatal(err)
	}
	long := strings.Replace(smallRequest, `"finetune_epochs": 1`, `"finetune_epochs": 100000`, 1)
	if err := req.Send(gozmq.NewMsgString(long)); err != nil {
		t.Fatal(err)
	}
	doomedLog.waitFor(t, `"msg":"training"`)
	doomed.Process.Signal(syscall.SIGKILL)
	doomed.Wait()
	reply := make(chan string, 1)
	go func() {
		msg, err := req.Recv()
		if err != nil {
			reply <- err.Error()
			return
		}
		reply <- string(msg.Frames[0])
	}()
	select {
	case r := <-reply:
		if !strings.HasPrefix(r, `{"error":"ConnectionError: the server running this request went away`) {
			t.Errorf("reply after the server was killed: %s", r)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("no reply after the server was killed\n%s", brokerLog.String())
	}

	live, liveLog := seal(t, join...)
	liveLog.waitFor(t, `"msg":"listening"`)
	script := `[{"op": "round_trip", "payload": ` + smallRequest + `}, {"op": "shutdown"}]`
	python := "/usr/bin/python3" // Debian's, with python3-zmq (`make deps`)
	if p := os.Getenv("SEAL_TTT_PYTHON"); p != "" {
		python = p
	}
	client := exec.Command(python, "../../server/testdata/seal_client.py", "tcp://127.0.0.1:"+front, "60000")
	client.Stdin = strings.NewReader(script)
	out, err := client.Output()
	if err != nil {
		t.Fatalf("client: %v\n%s\n%s", err, out, brokerLog.String())
	}
	var results []struct {
		Reply   map[string]any
		Printed []string
	}
	if err := json.Unmarshal(out, &results); err != nil || len(results) != 2 {
		t.Fatalf("client output %s (%v)", out, err)
	}
	if texts, ok := results[0].Reply["adapter_texts"].([]any); !ok || len(texts) != 2 || len(results[0].Printed) != 0 {
		t.Errorf("round trip through the broker: %+v", results[0])
	}
	if e, _ := results[1].Reply["error"].(string); !strings.HasPrefix(e, `ValueError: {"cmd": "shutdown"} is not forwarded`) {
		t.Errorf("shutdown through the broker: %v", results[1].Reply)
	}
	live.Process.Signal(syscall.SIGTERM)
	waitExit(t, live, liveLog)
	brokerLog.waitFor(t, `"msg":"server left"`)
	broker.Process.Signal(syscall.SIGTERM)
	waitExit(t, broker, brokerLog)
}
