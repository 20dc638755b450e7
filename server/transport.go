package server

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Socket is a bound ZeroMQ REP socket: Recv and Send strictly alternate, and
// a reply goes to the peer of the last request (dropped when that peer has
// gone). A Socket is used by one goroutine at a time: Close it only once
// Recv and Send have returned (after Serve has returned).
type Socket interface {
	// Recv waits for the next request and returns all its frames. It
	// returns ctx.Err() once ctx is done.
	Recv(ctx context.Context) ([][]byte, error)
	// Send sends the reply to the last request as one frame.
	Send(reply []byte) error
	// Endpoint is the bound address, with the actual port when the
	// endpoint asked for any free one (port 0).
	Endpoint() string
	// Close releases the socket without waiting for unsent replies.
	Close() error
}

// transports holds the ZeroMQ implementations compiled in, by name:
// "go" (github.com/go-zeromq/zmq4, pure Go) always, "libzmq"
// (github.com/pebbe/zmq4) when cgo is on.
var transports = map[string]func(endpoint string) (Socket, error){}

// Listen binds a REP socket to endpoint (e.g. "tcp://*:5555") with the
// default transport: libzmq when built with cgo, pure Go otherwise.
func Listen(endpoint string) (Socket, error) {
	return transports[DefaultTransport](endpoint)
}

// BindEndpoint returns the tcp:// endpoint that binds host and port: "*"
// and IP addresses as given, a host name (such as localhost) resolved to its
// first address, since ZeroMQ binds addresses and interfaces, not names.
func BindEndpoint(host string, port int) (string, error) {
	if host == "*" || net.ParseIP(strings.Trim(host, "[]")) != nil {
		return "tcp://" + joinHost(host) + ":" + strconv.Itoa(port), nil
	}
	addrs, err := net.LookupHost(host)
	if err != nil || len(addrs) == 0 {
		return "", fmt.Errorf("--zmq_host %q: not an address, and it does not resolve: %v", host, err)
	}
	return "tcp://" + joinHost(addrs[0]) + ":" + strconv.Itoa(port), nil
}

// joinHost brackets an IPv6 address for an endpoint.
func joinHost(h string) string {
	if strings.Contains(h, ":") && !strings.HasPrefix(h, "[") {
		return "[" + h + "]"
	}
	return h
}

// AllInterfaces reports whether binding host accepts connections on every
// network interface.
func AllInterfaces(host string) bool {
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return host == "*" || host == "" || ip != nil && ip.IsUnspecified()
}
