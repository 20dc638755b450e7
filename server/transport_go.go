package server

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	gozmq "github.com/go-zeromq/zmq4"
	"github.com/go-zeromq/zmq4/transport"
)

func init() {
	transports["go"] = listenGo
	connectors["go"] = connectGo
	if err := gozmq.RegisterTransport(gatedTCP, gatedTransport{}); err != nil {
		panic(err) // only a second registration of the name can fail
	}
}

// goSocket is a REP socket built on a ROUTER socket of
// github.com/go-zeromq/zmq4. That package's own REP socket mistakes an
// empty payload frame for the envelope delimiter and sends replies
// asynchronously (a reply can be lost when the socket closes right after);
// the ROUTER lets this type keep the envelope exactly as libzmq's REP does
// (routing frames up to the first empty frame) and send synchronously.
type goSocket struct {
	sock     gozmq.Socket
	cancel   context.CancelFunc
	endpoint string
	envelope [][]byte // of the request being answered; nil when none
}

func listenGo(endpoint string) (Socket, error) {
	rest, ok := strings.CutPrefix(endpoint, "tcp://")
	if !ok {
		return nil, fmt.Errorf("binding %s: the pure-Go transport serves tcp:// endpoints only", endpoint)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sock := gozmq.NewRouter(ctx, gozmq.WithLogger(log.New(io.Discard, "", 0)))
	if err := sock.Listen(gatedTCP + "://" + rest); err != nil {
		cancel()
		sock.Close()
		return nil, fmt.Errorf("binding %s: %w", endpoint, err)
	}
	return &goSocket{sock: sock, cancel: cancel, endpoint: "tcp://" + sock.Addr().String()}, nil
}

// Recv implements Socket. go-zeromq's Recv cannot be interrupted on its
// own, so a done ctx closes the socket; the caller stops serving then.
func (s *goSocket) Recv(ctx context.Context) ([][]byte, error) {
	stop := context.AfterFunc(ctx, s.cancel)
	defer stop()
	for {
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
		// Frames: the peer's identity, then the REQ envelope up to and
		// including the first empty frame, then the request. A message with
		// no delimiter is not from a REQ peer: libzmq's REP drops it too.
		f := msg.Frames
		for i := 1; i < len(f); i++ {
			if len(f[i]) == 0 {
				s.envelope = f[:i+1]
				return f[i+1:], nil
			}
		}
	}
}

// Send implements Socket. It returns once the reply is written to the
// connection, or at once when the requesting peer has gone.
func (s *goSocket) Send(reply []byte) error {
	if s.envelope == nil {
		return errors.New("send without a request")
	}
	frames := append(s.envelope[:len(s.envelope):len(s.envelope)], reply)
	s.envelope = nil
	return s.sock.Send(gozmq.NewMsgFrom(frames...))
}

// Endpoint implements Socket.
func (s *goSocket) Endpoint() string { return s.endpoint }

// Close implements Socket.
func (s *goSocket) Close() error {
	err := s.sock.Close()
	s.cancel()
	return err
}

// gatedTCP names the TCP transport registered with go-zeromq for the
// server: plain TCP whose connections must finish the ZeroMQ handshake
// within handshakeTimeout. go-zeromq performs the handshake of each new
// connection inside its accept loop, so without a deadline a peer that
// connects and sends nothing would stop every later client from connecting.
const gatedTCP = "seal-ttt-tcp"

// handshakeTimeout bounds a new connection's ZeroMQ handshake (a variable
// so that tests can shorten it).
var handshakeTimeout = 5 * time.Second

// gatedTransport implements go-zeromq's transport.Transport.
type gatedTransport struct{}

func (gatedTransport) Dial(ctx context.Context, d transport.Dialer, addr string) (net.Conn, error) {
	return d.DialContext(ctx, "tcp", addr)
}

func (gatedTransport) Listen(ctx context.Context, addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &gatedListener{Listener: l}, nil
}

func (gatedTransport) Addr(ep string) (string, error) {
	host, port, err := net.SplitHostPort(ep)
	if err != nil {
		return "", err
	}
	if port == "*" {
		port = "0"
	}
	if host == "*" {
		host = ""
	}
	return net.JoinHostPort(host, port), nil
}

// gatedListener gives each accepted connection a read deadline for its
// handshake. go-zeromq calls Accept again only once the previous
// connection's handshake has ended, so that is when the deadline is lifted.
// Accept is only ever called by go-zeromq's accept loop, one call at a time.
type gatedListener struct {
	net.Listener
	last net.Conn
}

func (l *gatedListener) Accept() (net.Conn, error) {
	if l.last != nil {
		l.last.SetReadDeadline(time.Time{})
		l.last = nil
	}
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	c.SetReadDeadline(time.Now().Add(handshakeTimeout))
	l.last = c
	return &frameLimitConn{Conn: c, skip: zmtpGreetingBytes}, nil
}

// zmtpGreetingBytes is the size of a ZMTP 3 greeting, the only version
// go-zeromq speaks.
const zmtpGreetingBytes = 64

// transportLog receives the pure-Go transport's warnings about peers it
// drops; Serve sets it to the handler's logger.
var transportLog atomic.Pointer[slog.Logger]

// maxMessageBytes bounds one ZeroMQ message, all its frames together (a
// variable so that tests can lower it). libzmq's ZMQ_MAXMSGSIZE bounds each
// frame alone.
var maxMessageBytes uint64 = MaxRequestBytes + 1

// frameLimitConn follows the ZMTP framing of what go-zeromq reads and closes
// the connection at a frame header that takes the message it belongs to
// past maxMessageBytes: go-zeromq allocates a frame's announced size before
// reading it, so a single header could otherwise make it allocate exabytes
// and crash, and many frames of one message could add up to as much.
type frameLimitConn struct {
	net.Conn
	skip  uint64  // bytes of the greeting or of a frame body still to pass
	hdr   [9]byte // the frame header read so far: flags, then a 1- or 8-byte size
	nhdr  int
	total uint64 // bytes of the current message's frames so far
}

func (c *frameLimitConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	for b := p[:n]; len(b) > 0; {
		if c.skip > 0 {
			k := min(uint64(len(b)), c.skip)
			c.skip -= k
			b = b[k:]
			continue
		}
		c.hdr[c.nhdr] = b[0]
		c.nhdr++
		b = b[1:]
		need, size := 2, uint64(0)
		if c.hdr[0]&0x02 != 0 { // long frame: 8-byte size
			need = 9
		}
		if c.nhdr < need {
			continue
		}
		if need == 2 {
			size = uint64(c.hdr[1])
		} else {
			size = binary.BigEndian.Uint64(c.hdr[1:9])
		}
		c.nhdr = 0
		if c.hdr[0]&0x04 == 0 { // a message frame, not a command
			c.total += size
			if size > maxMessageBytes || c.total > maxMessageBytes {
				c.Conn.Close()
				err := fmt.Errorf("a ZeroMQ message of %d bytes or more exceeds the limit of %d", max(size, c.total), maxMessageBytes)
				if log := transportLog.Load(); log != nil {
					log.Warn("message over the size limit: peer dropped without a reply", "peer", c.RemoteAddr().String(), "error", err.Error())
				}
				return 0, err
			}
			if c.hdr[0]&0x01 == 0 { // no MORE flag: the message ends with this frame
				c.total = 0
			}
		}
		c.skip = size
	}
	return n, err
}

// goDealer is a go-zeromq DEALER socket connected to a broker. go-zeromq's
// Recv cannot wait with a timeout, so one goroutine receives into a channel.
type goDealer struct {
	sock   gozmq.Socket
	cancel context.CancelFunc
	msgs   chan [][]byte
	done   chan struct{} // closed when the receiving goroutine has ended
}

// dialRetry is the pause between attempts to reach the broker.
const dialRetry = 250 * time.Millisecond

func connectGo(endpoint string) (dealerConn, error) {
	if !strings.HasPrefix(endpoint, "tcp://") {
		return nil, fmt.Errorf("the pure-Go transport connects to tcp:// endpoints only")
	}
	ctx, cancel := context.WithCancel(context.Background())
	sock := gozmq.NewDealer(ctx, gozmq.WithLogger(log.New(io.Discard, "", 0)),
		gozmq.WithAutomaticReconnect(true), gozmq.WithDialerRetry(dialRetry), gozmq.WithDialerMaxRetries(-1))
	d := &goDealer{sock: sock, cancel: cancel, msgs: make(chan [][]byte), done: make(chan struct{})}
	// Dialing retries until the broker answers or the socket closes;
	// sends wait for the connection meanwhile.
	go sock.Dial(endpoint)
	go d.receive(ctx)
	return d, nil
}

// receive passes every message to d.msgs until ctx is done.
func (d *goDealer) receive(ctx context.Context) {
	defer close(d.done)
	for {
		msg, err := d.sock.Recv()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			time.Sleep(dialRetry) // the connection broke: it is being remade
			continue
		}
		select {
		case d.msgs <- msg.Frames:
		case <-ctx.Done():
			return
		}
	}
}

// send waits for a connection to the broker while ctx lasts (go-zeromq's
// Send waits for one until the socket closes).
func (d *goDealer) send(ctx context.Context, frames [][]byte) error {
	errc := make(chan error, 1)
	go func() { errc <- d.sock.SendMulti(gozmq.NewMsgFrom(frames...)) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return fmt.Errorf("the broker is not reachable: %w", context.Cause(ctx))
	}
}

func (d *goDealer) recv(ctx context.Context, wait time.Duration) ([][]byte, error) {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case m := <-d.msgs:
		return m, nil
	case <-t.C:
		return nil, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (d *goDealer) close() error {
	err := d.sock.Close()
	d.cancel()
	<-d.done
	return err
}
