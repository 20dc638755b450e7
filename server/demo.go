package server

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"unicode"
	"unicode/utf8"

	gozmq "github.com/go-zeromq/zmq4"
)

// DemoRequest is the request `seal-ttt demo` sends: an invented passage (so
// no model can know it beforehand), self-edits that state its facts as
// question/answer pairs in the answer prompt's own format, the passage
// itself as SEAL appends it, and questions answerable only from the passage.
//
//go:embed demo.json
var DemoRequest []byte

// Demo starts a server with h on a free loopback port, sends DemoRequest
// through a real ZeroMQ REQ client, shuts the server down, and prints the
// baseline and adapter answers with their accuracies to w. It fails unless
// the adapter beats the baseline.
func Demo(ctx context.Context, h *Handler, w io.Writer) (*Reply, error) {
	sock, err := Listen("tcp://127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer sock.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, sock, h) }()

	fmt.Fprintf(w, "server listening on %s (%s transport); sending the demo request\n\n", sock.Endpoint(), DefaultTransport)
	if req, err := ParseRequest([][]byte{DemoRequest}); err == nil {
		t := req.Train
		fmt.Fprintf(w, "Settings: LoRA rank %d, alpha %g on %s, %d epochs at lr %g, batch %d, seed %d; max_seq_length %d, padding %s.\n"+
			"They are the demo request's own, not SEAL's defaults (rank 32, alpha 64 on q_proj/v_proj, 10 epochs at lr 1e-3):\n"+
			"on this tiny untrained model SEAL's defaults, with the EOS padding kept in the loss, mostly train it towards empty answers.\n\n",
			t.Rank, t.Alpha, strings.Join(t.TargetModules, ","), t.Epochs, t.LR, t.BatchSize, t.Seed, h.Config.MaxSeqLength, h.Config.Padding)
	}
	raw, err := roundTrip(ctx, sock.Endpoint(), DemoRequest)
	if err != nil {
		return nil, err
	}
	if _, err := roundTrip(ctx, sock.Endpoint(), []byte(`{"cmd": "shutdown"}`)); err != nil {
		return nil, fmt.Errorf("shutting the server down: %w", err)
	}
	if err := <-served; err != nil {
		return nil, err
	}
	var failure struct{ Error string }
	if json.Unmarshal(raw, &failure) == nil && failure.Error != "" {
		return nil, fmt.Errorf("the server replied with an error: %s", failure.Error)
	}
	var rep Reply
	if err := json.Unmarshal(raw, &rep); err != nil {
		return nil, fmt.Errorf("decoding the reply: %w", err)
	}
	req, err := ParseRequest([][]byte{DemoRequest})
	if err != nil {
		return nil, err
	}
	if len(rep.BaselineTexts) != len(req.Questions) || len(rep.AdapterTexts) != len(req.Questions) {
		return nil, fmt.Errorf("the reply has %d/%d answers for %d questions", len(rep.BaselineTexts), len(rep.AdapterTexts), len(req.Questions))
	}
	printDemo(w, req, &rep)
	if rep.AdapterAccuracy <= rep.BaselineAccuracy {
		return &rep, errors.New("the adapter did not beat the baseline")
	}
	fmt.Fprintln(w, "\nThe adapter beats the baseline: during test-time training the model memorised the passage's facts from the self-edits, then answered from its weights alone (the passage was not in the prompt).")
	return &rep, nil
}

func printDemo(w io.Writer, req *Request, rep *Reply) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "question\tgold\tbaseline answer\t\tadapter answer\t")
	mark := map[bool]string{true: "right", false: "wrong"}
	for i, q := range req.Questions {
		question := q.Question[strings.LastIndex(q.Question, "\n")+1:]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", question, q.Answer,
			oneLine(rep.BaselineTexts[i]), mark[rep.BaselineCorrect[i]],
			oneLine(rep.AdapterTexts[i]), mark[rep.AdapterCorrect[i]])
	}
	tw.Flush()
	fmt.Fprintf(w, "\nbaseline accuracy %.4f, adapter accuracy %.4f, gain %+.4f\n",
		float64(rep.BaselineAccuracy), float64(rep.AdapterAccuracy), float64(rep.AdapterGain))
}

// oneLine shows a generated answer on one short line of printable
// characters (an untrained model's bytes are shown as '?').
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == utf8.RuneError || !unicode.IsPrint(r) && !unicode.IsSpace(r) {
			return '?'
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 40 {
		s = string(r[:40]) + "..."
	}
	if s == "" {
		s = `""`
	}
	return s
}

// roundTrip sends one request through a fresh REQ socket, as SEAL's
// clients do, and waits for the reply or for ctx.
func roundTrip(ctx context.Context, endpoint string, payload []byte) ([]byte, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req := gozmq.NewReq(ctx)
	defer req.Close()
	if err := req.Dial(endpoint); err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", endpoint, err)
	}
	if err := req.Send(gozmq.NewMsg(payload)); err != nil {
		return nil, fmt.Errorf("sending to %s: %w", endpoint, err)
	}
	msg, err := req.Recv()
	if err != nil {
		return nil, fmt.Errorf("waiting for the reply from %s: %w", endpoint, err)
	}
	if len(msg.Frames) != 1 {
		return nil, fmt.Errorf("reply from %s has %d frames, want 1", endpoint, len(msg.Frames))
	}
	return msg.Frames[0], nil
}
