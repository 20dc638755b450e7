package server

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// A fleet is several servers behind one broker (seal-ttt broker): clients
// send to the broker's REQ/REP endpoint as to one server, and each server
// connects to the broker's workers endpoint with Connect instead of binding.
//
// Between a server and the broker (a ROUTER socket that knows each
// connection by its routing id):
//
//	server -> broker  ["READY"]        idle: send me a request (also every readyInterval while idle)
//	server -> broker  ["", reply]      the reply to the request it was given; idle again
//	server -> broker  ["BYE"]          leaving (a clean stop)
//	broker -> server  ["", request...] one client request
//	broker -> server  ["PING"]         a liveness probe; discarded
//
// The broker probes every busy server; a probe that cannot be routed means
// the server's connection is gone, and its client gets an error reply.
var (
	frameReady = []byte("READY")
	frameBye   = []byte("BYE")
	framePing  = []byte("PING")
)

// readyInterval is how often an idle server says READY again, so that a
// broker that restarted learns of it (a variable so that tests can shorten
// it).
var readyInterval = time.Second

// dealerConn is one transport's DEALER socket connected to a broker.
type dealerConn interface {
	// send sends one message, waiting for a connection no longer than ctx
	// lasts.
	send(ctx context.Context, frames [][]byte) error
	// recv waits up to wait for a message; nil frames and no error mean
	// none came. It returns ctx.Err() once ctx is done.
	recv(ctx context.Context, wait time.Duration) ([][]byte, error)
	// close sends what is queued (within a second) and releases the socket.
	close() error
}

// connectors holds, by transport name, the functions that connect a
// DEALER socket to a broker's workers endpoint.
var connectors = map[string]func(endpoint string) (dealerConn, error){}

// Connect connects a server to the broker at endpoint (e.g.
// "tcp://broker.lan:5556") with the default transport and returns the
// Socket that Serve answers requests on. The connection is made in the
// background and remade when it breaks; requests arrive once the broker is
// reachable.
func Connect(endpoint string) (Socket, error) {
	return connectWith(DefaultTransport, endpoint)
}

func connectWith(transport, endpoint string) (Socket, error) {
	conn, err := connectors[transport](endpoint)
	if err != nil {
		return nil, fmt.Errorf("connecting to the broker at %s: %w", endpoint, err)
	}
	return &fleetSocket{conn: conn, endpoint: endpoint}, nil
}

// fleetSocket is the Socket of a server connected to a broker.
type fleetSocket struct {
	conn      dealerConn
	endpoint  string
	announced bool // READY was sent once
	pending   bool // a request was received and not yet answered
}

// replyWait bounds the wait for the broker's connection to send a reply or a
// goodbye. A reply that cannot go is useless anyway: a broker that lost
// this server's connection has answered the client with an error.
const replyWait = 5 * time.Second

// Recv implements Socket. It says READY first, and again every
// readyInterval while idle.
func (s *fleetSocket) Recv(ctx context.Context) ([][]byte, error) {
	for {
		var frames [][]byte
		var err error
		if s.announced {
			frames, err = s.conn.recv(ctx, readyInterval)
		}
		if err != nil {
			return nil, err
		}
		if frames == nil {
			if err := s.conn.send(ctx, [][]byte{frameReady}); err != nil {
				return nil, err
			}
			s.announced = true
			continue
		}
		if len(frames) < 2 || len(frames[0]) != 0 {
			continue // a probe
		}
		s.pending = true
		return frames[1:], nil
	}
}

// Send implements Socket.
func (s *fleetSocket) Send(reply []byte) error {
	if !s.pending {
		return errors.New("send without a request")
	}
	s.pending = false
	ctx, cancel := context.WithTimeout(context.Background(), replyWait)
	defer cancel()
	return s.conn.send(ctx, [][]byte{{}, reply})
}

// Endpoint implements Socket: the broker's address.
func (s *fleetSocket) Endpoint() string { return s.endpoint }

// Close implements Socket: the broker is told that this server leaves.
func (s *fleetSocket) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), replyWait)
	defer cancel()
	s.conn.send(ctx, [][]byte{frameBye})
	return s.conn.close()
}
