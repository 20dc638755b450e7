//go:build cgo

package server

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	zmq "github.com/pebbe/zmq4"
)

func init() {
	transports["libzmq"] = listenLibzmq
	connectors["libzmq"] = connectLibzmq
}

// DefaultTransport is the transport Listen uses: libzmq, the reference
// ZeroMQ (the one pyzmq uses), since this build has cgo.
const DefaultTransport = "libzmq"

// libzmqSocket is a REP socket of libzmq through github.com/pebbe/zmq4.
type libzmqSocket struct {
	ctx      *zmq.Context
	sock     *zmq.Socket
	endpoint string
}

// recvPoll is how often a waiting Recv looks at its context.
const recvPoll = 100 * time.Millisecond

func listenLibzmq(endpoint string) (Socket, error) {
	zctx, err := zmq.NewContext()
	if err != nil {
		return nil, fmt.Errorf("libzmq context: %w", err)
	}
	sock, err := zctx.NewSocket(zmq.REP)
	if err == nil {
		err = errors.Join(
			sock.SetLinger(0),
			sock.SetRcvtimeo(recvPoll),
			// A bigger message disconnects its sender instead of filling memory.
			sock.SetMaxmsgsize(MaxRequestBytes+1),
			sock.Bind(endpoint))
	}
	var ep string
	if err == nil {
		ep, err = sock.GetLastEndpoint()
	}
	if err != nil {
		if sock != nil {
			sock.Close()
		}
		zctx.Term()
		return nil, fmt.Errorf("binding %s: %w", endpoint, err)
	}
	return &libzmqSocket{ctx: zctx, sock: sock, endpoint: ep}, nil
}

// Recv implements Socket.
func (s *libzmqSocket) Recv(ctx context.Context) ([][]byte, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		frames, err := s.sock.RecvMessageBytes(0)
		if err == nil {
			return frames, nil
		}
		switch zmq.AsErrno(err) {
		case zmq.Errno(syscall.EAGAIN), zmq.Errno(syscall.EINTR):
			// no request within recvPoll, or a signal: look at ctx again
		default:
			return nil, err
		}
	}
}

// Send implements Socket.
func (s *libzmqSocket) Send(reply []byte) error {
	_, err := s.sock.SendBytes(reply, 0)
	return err
}

// Endpoint implements Socket.
func (s *libzmqSocket) Endpoint() string { return s.endpoint }

// Close implements Socket.
func (s *libzmqSocket) Close() error {
	return errors.Join(s.sock.Close(), s.ctx.Term())
}

// libzmqDealer is a libzmq DEALER socket connected to a broker.
type libzmqDealer struct {
	ctx  *zmq.Context
	sock *zmq.Socket
}

// flushLinger is how long closing a connected socket waits to send what is
// queued (the last reply, the goodbye).
const flushLinger = time.Second

func connectLibzmq(endpoint string) (dealerConn, error) {
	zctx, err := zmq.NewContext()
	if err != nil {
		return nil, fmt.Errorf("libzmq context: %w", err)
	}
	sock, err := zctx.NewSocket(zmq.DEALER)
	if err == nil {
		err = errors.Join(
			sock.SetLinger(flushLinger),
			sock.SetRcvtimeo(recvPoll),
			sock.SetMaxmsgsize(MaxRequestBytes+1),
			sock.Connect(endpoint))
	}
	if err != nil {
		if sock != nil {
			sock.Close()
		}
		zctx.Term()
		return nil, err
	}
	return &libzmqDealer{ctx: zctx, sock: sock}, nil
}

// send queues the message; libzmq sends it once connected, so ctx is not
// needed.
func (d *libzmqDealer) send(_ context.Context, frames [][]byte) error {
	parts := make([]any, len(frames))
	for i, f := range frames {
		parts[i] = f
	}
	_, err := d.sock.SendMessage(parts...)
	return err
}

func (d *libzmqDealer) recv(ctx context.Context, wait time.Duration) ([][]byte, error) {
	for deadline := time.Now().Add(wait); time.Now().Before(deadline); {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		frames, err := d.sock.RecvMessageBytes(0)
		if err == nil {
			return frames, nil
		}
		switch zmq.AsErrno(err) {
		case zmq.Errno(syscall.EAGAIN), zmq.Errno(syscall.EINTR):
		default:
			return nil, err
		}
	}
	return nil, ctx.Err()
}

func (d *libzmqDealer) close() error {
	return errors.Join(d.sock.Close(), d.ctx.Term())
}
