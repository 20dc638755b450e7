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

func init() { transports["libzmq"] = listenLibzmq }

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
