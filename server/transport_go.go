package server

import (
	"context"
	"errors"
	"fmt"
	"strings"

	gozmq "github.com/go-zeromq/zmq4"
)

func init() { transports["go"] = listenGo }

// goSocket is a REP socket of github.com/go-zeromq/zmq4.
type goSocket struct {
	sock     gozmq.Socket
	cancel   context.CancelFunc
	endpoint string
}

func listenGo(endpoint string) (Socket, error) {
	ctx, cancel := context.WithCancel(context.Background())
	sock := gozmq.NewRep(ctx)
	if err := sock.Listen(endpoint); err != nil {
		cancel()
		sock.Close()
		return nil, fmt.Errorf("binding %s: %w", endpoint, err)
	}
	ep := endpoint
	if addr := sock.Addr(); addr != nil {
		ep = addr.Network() + "://" + addr.String()
		if i := strings.Index(endpoint, "://"); i >= 0 {
			ep = endpoint[:i] + "://" + addr.String()
		}
	}
	return &goSocket{sock: sock, cancel: cancel, endpoint: ep}, nil
}

// Recv implements Socket. go-zeromq's Recv cannot be interrupted on its
// own, so a done ctx closes the socket; the caller stops serving then.
func (s *goSocket) Recv(ctx context.Context) ([][]byte, error) {
	stop := context.AfterFunc(ctx, s.cancel)
	defer stop()
	msg, err := s.sock.Recv()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil, errors.New("socket closed")
		}
		return nil, err
	}
	return msg.Frames, nil
}

// Send implements Socket.
func (s *goSocket) Send(reply []byte) error {
	return s.sock.Send(gozmq.NewMsg(reply))
}

// Endpoint implements Socket.
func (s *goSocket) Endpoint() string { return s.endpoint }

// Close implements Socket.
func (s *goSocket) Close() error {
	err := s.sock.Close()
	s.cancel()
	return err
}
