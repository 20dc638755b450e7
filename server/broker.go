//go:build cgo

package server

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"syscall"
	"time"

	zmq "github.com/pebbe/zmq4"
)

// Broker puts several servers behind one endpoint: the load-balancing
// broker of the ZeroMQ guide. Clients' REQ sockets connect to its front end
// (a ROUTER, so they see one REP server); servers connect to its back end (a
// ROUTER) with Connect. Each request goes to a server that said it is idle,
// in the order they became idle; requests wait in the broker while every
// server is busy. A server whose connection breaks mid-request (it died,
// or its machine left the network) costs its client an error reply, which
// SEAL's clients retry; {"cmd": "shutdown"} is refused with an error reply.
// See docs/decisions.md for why it is not libzmq's zmq_proxy.
type Broker struct {
	// Log receives a line per server that joins or leaves and per refused
	// or failed request; nil discards.
	Log *slog.Logger

	zctx        *zmq.Context
	front, back *zmq.Socket
	endpoints   [2]string

	idle  []string        // routing ids of idle servers, longest idle first
	busy  map[string]*job // by the routing id of the server running it
	queue []*job          // waiting for an idle server, oldest first
}

// job is one client request.
type job struct {
	envelope [][]byte // the client's routing frames, delimiter included
	request  [][]byte
}

// Timing of the broker (variables so that tests can shorten them).
var (
	// probeInterval is how often busy and idle servers are probed.
	probeInterval = 500 * time.Millisecond
	// brokerPoll is the longest the broker waits before looking at its
	// context.
	brokerPoll = 100 * time.Millisecond
)

// MaxQueued bounds the requests waiting for a server; more get an error
// reply at once.
const MaxQueued = 10000

// NewBroker binds the client endpoint front (e.g. "tcp://*:5555") and the
// server endpoint back (e.g. "tcp://*:5556").
func NewBroker(front, back string) (*Broker, error) {
	zctx, err := zmq.NewContext()
	if err != nil {
		return nil, fmt.Errorf("libzmq context: %w", err)
	}
	b := &Broker{zctx: zctx, busy: map[string]*job{}}
	for i, ep := range []string{front, back} {
		sock, err := zctx.NewSocket(zmq.ROUTER)
		if err == nil {
			err = errors.Join(
				sock.SetLinger(flushLinger),
				sock.SetMaxmsgsize(MaxRequestBytes+1),
				// A server's machine that vanishes without closing its
				// connections is noticed within about a minute.
				sock.SetTcpKeepalive(1), sock.SetTcpKeepaliveIdle(30), sock.SetTcpKeepaliveIntvl(10), sock.SetTcpKeepaliveCnt(3),
				sock.Bind(ep))
		}
		if err == nil && i == 1 {
			// Sending to a server whose connection is gone fails instead
			// of dropping the message: how the broker notices dead servers.
			err = sock.SetRouterMandatory(1)
		}
		var bound string
		if err == nil {
			bound, err = sock.GetLastEndpoint()
		}
		if i == 0 {
			b.front = sock
		} else {
			b.back = sock
		}
		if err != nil {
			b.Close()
			return nil, fmt.Errorf("binding %s: %w", ep, err)
		}
		b.endpoints[i] = bound
	}
	return b, nil
}

// Endpoints returns the bound client and server endpoints, with the actual
// ports where port 0 was asked for.
func (b *Broker) Endpoints() (front, back string) { return b.endpoints[0], b.endpoints[1] }

// Close releases the sockets; call it after Run has returned.
func (b *Broker) Close() error {
	var errs []error
	for _, s := range []*zmq.Socket{b.front, b.back} {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	return errors.Join(append(errs, b.zctx.Term())...)
}

// Run routes requests and replies until ctx is done; every client still
// waiting then gets a KeyboardInterrupt error reply.
func (b *Broker) Run(ctx context.Context) error {
	if b.Log == nil {
		b.Log = slog.New(slog.DiscardHandler)
	}
	b.Log.Info("broker listening", "clients", b.endpoints[0], "servers", b.endpoints[1])
	poller := zmq.NewPoller()
	poller.Add(b.front, zmq.POLLIN)
	poller.Add(b.back, zmq.POLLIN)
	lastProbe := time.Now()
	for ctx.Err() == nil {
		polled, err := poller.Poll(brokerPoll)
		if err != nil && zmq.AsErrno(err) != zmq.Errno(syscall.EINTR) {
			return fmt.Errorf("broker: %w", err)
		}
		for _, p := range polled {
			if p.Socket == b.back {
				b.drainBack()
			} else {
				b.drainFront()
			}
		}
		if time.Since(lastProbe) >= probeInterval {
			lastProbe = time.Now()
			b.probe()
		}
		b.dispatch()
	}
	stopped := errorReply(errorf("KeyboardInterrupt", "the broker is shutting down; the request was abandoned"))
	for _, j := range b.queue {
		b.reply(j, stopped)
	}
	for _, j := range b.busy {
		b.reply(j, stopped)
	}
	b.Log.Info("broker stopped", "reason", context.Cause(ctx).Error())
	return nil
}

// drainFront takes every waiting client request.
func (b *Broker) drainFront() {
	for {
		frames, err := b.front.RecvMessageBytes(zmq.DONTWAIT)
		if err != nil {
			return
		}
		d := bytes.IndexByte(delimiterMask(frames), 1)
		if d < 0 {
			continue // not from a REQ peer: dropped, as a REP socket does
		}
		j := &job{envelope: frames[:d+1], request: frames[d+1:]}
		switch {
		case isShutdown(j.request):
			b.Log.Warn("shutdown refused: the broker does not forward it")
			b.reply(j, errorReply(errorf("ValueError", "{\"cmd\": \"shutdown\"} is not forwarded by the broker: stop each server and the broker with SIGTERM (or Ctrl-C)")))
		case len(b.queue) >= MaxQueued:
			b.reply(j, errorReply(errorf("RuntimeError", "%d requests are already waiting for a server; try again later", MaxQueued)))
		default:
			b.queue = append(b.queue, j)
		}
	}
}

// delimiterMask marks the empty frames of a message with 1, so that the
// first delimiter can be found with bytes.IndexByte.
func delimiterMask(frames [][]byte) []byte {
	m := make([]byte, len(frames))
	for i, f := range frames {
		if len(f) == 0 {
			m[i] = 1
		}
	}
	return m
}

// isShutdown reports whether a request is {"cmd": "shutdown"} as the server
// reads it.
func isShutdown(request [][]byte) bool {
	obj, err := decodeMessage(request)
	if err != nil {
		return false
	}
	d := decoder{obj: obj}
	cmd, ok := d.str("cmd")
	return ok && cmd == "shutdown"
}

// drainBack takes every waiting message from servers.
func (b *Broker) drainBack() {
	for {
		frames, err := b.back.RecvMessageBytes(zmq.DONTWAIT)
		if err != nil {
			return
		}
		if len(frames) < 2 {
			continue
		}
		id, msg := string(frames[0]), frames[1:]
		switch {
		case len(msg) == 1 && bytes.Equal(msg[0], frameReady):
			// Repeated while idle; from a busy server, it was sent before
			// the server took its request.
			if b.busy[id] == nil && !b.isIdle(id) {
				b.idle = append(b.idle, id)
				b.Log.Info("server joined", "server", shortID(id), "servers", len(b.idle)+len(b.busy))
			}
		case len(msg) == 1 && bytes.Equal(msg[0], frameBye):
			b.leave(id, "it stopped")
		case len(msg[0]) == 0:
			j := b.busy[id]
			if j == nil {
				continue // a reply the broker gave up on
			}
			delete(b.busy, id)
			b.idle = append(b.idle, id)
			b.reply(j, msg[1:]...)
		}
	}
}

// isIdle reports whether server id is in the idle list.
func (b *Broker) isIdle(id string) bool {
	for _, i := range b.idle {
		if i == id {
			return true
		}
	}
	return false
}

// leave forgets server id; its client, if any, gets an error reply.
func (b *Broker) leave(id, why string) {
	for i, x := range b.idle {
		if x == id {
			b.idle = append(b.idle[:i], b.idle[i+1:]...)
			break
		}
	}
	if j := b.busy[id]; j != nil {
		delete(b.busy, id)
		b.Log.Warn("server gone mid-request: its client gets an error reply", "server", shortID(id), "why", why)
		b.reply(j, errorReply(errorf("ConnectionError", "the server running this request went away (%s); the request was not retried", why)))
	} else {
		b.Log.Info("server left", "server", shortID(id), "why", why)
	}
}

// dispatch gives waiting requests to idle servers.
func (b *Broker) dispatch() {
	for len(b.queue) > 0 && len(b.idle) > 0 {
		id := b.idle[0]
		b.idle = b.idle[1:]
		j := b.queue[0]
		switch err := b.sendBack(id, append([][]byte{{}}, j.request...)); {
		case err == nil:
			b.queue = b.queue[1:]
			b.busy[id] = j
		case isFull(err):
			// Probes sent while it was busy are still queued to it: it
			// reads them as soon as it waits for work; try again then.
			b.idle = append(b.idle, id)
			return
		default:
			b.leave(id, "its connection is gone")
		}
	}
}

// probe checks that every known server's connection is still there. A
// server whose queue is full (a long request, many probes unread) is there.
func (b *Broker) probe() {
	for _, list := range [][]string{append([]string(nil), b.idle...), mapKeys(b.busy)} {
		for _, id := range list {
			if err := b.sendBack(id, [][]byte{framePing}); err != nil && !isFull(err) {
				b.leave(id, "its connection is gone")
			}
		}
	}
}

func mapKeys(m map[string]*job) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

// sendBack sends a message to server id without waiting. It fails when the
// server's connection is gone (EHOSTUNREACH) or its queue is full (isFull).
func (b *Broker) sendBack(id string, frames [][]byte) error {
	parts := make([]any, 0, len(frames)+1)
	parts = append(parts, id)
	for _, f := range frames {
		parts = append(parts, f)
	}
	_, err := b.back.SendMessageDontwait(parts...)
	return err
}

// isFull reports whether a send failed only because the peer's queue is full.
func isFull(err error) bool { return zmq.AsErrno(err) == zmq.Errno(syscall.EAGAIN) }

// reply sends a reply to a job's client; a client that has gone is skipped.
func (b *Broker) reply(j *job, frames ...[]byte) {
	parts := make([]any, 0, len(j.envelope)+len(frames))
	for _, f := range j.envelope {
		parts = append(parts, f)
	}
	for _, f := range frames {
		parts = append(parts, f)
	}
	b.front.SendMessageDontwait(parts...)
}

// shortID names a server's routing id in logs: as is when printable (the
// pure-Go transport's), else in hex (libzmq's five bytes).
func shortID(id string) string {
	for _, c := range []byte(id) {
		if c < 0x21 || c > 0x7e {
			return hex.EncodeToString([]byte(id))
		}
	}
	return id
}
