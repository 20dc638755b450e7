//go:build cgo

package main

import (
	"fmt"
	"os"

	"github.com/goseal/ttt/server"
)

func init() {
	commands["broker"] = command{summary: "put several servers behind one ZeroMQ endpoint (`serve --connect` joins one)", run: runBroker, help: brokerHelp}
}

func runBroker(args []string) error {
	fs := flagSet("broker", "[flags]")
	port := fs.Int("zmq_port", 5555, "TCP port for SEAL's clients (REQ sockets), as one server's")
	host := fs.String("zmq_host", "*", "address for clients: * (every interface) or an address such as 127.0.0.1")
	workersPort := fs.Int("workers_port", 5556, "TCP port that servers connect to with `seal-ttt serve --connect tcp://HOST:PORT`")
	workersHost := fs.String("workers_host", "*", "address for servers: * (every interface) or an address")
	logFormat := fs.String("log_format", "text", "log format on stderr: text or json")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, p := range []struct {
		name string
		port int
	}{{"--zmq_port", *port}, {"--workers_port", *workersPort}} {
		if p.port < 0 || p.port > 65535 {
			return fmt.Errorf("%s must be a TCP port, got %d", p.name, p.port)
		}
	}
	log, err := (&cycleFlags{logFormat: *logFormat}).logger(os.Stderr)
	if err != nil {
		return err
	}
	front, err := server.BindEndpoint(*host, *port)
	if err != nil {
		return err
	}
	back, err := server.BindEndpoint(*workersHost, *workersPort)
	if err != nil {
		return fmt.Errorf("--workers_host: %w", err)
	}
	b, err := server.NewBroker(front, back)
	if err != nil {
		return err
	}
	defer b.Close()
	b.Log = log
	if server.AllInterfaces(*host) || server.AllInterfaces(*workersHost) {
		log.Warn("the broker accepts connections from every network interface: anyone who can reach its ports can run requests, or pose as a server and read them; bind with --zmq_host and --workers_host to limit that")
	}
	ctx, stop := signalContext()
	defer stop()
	return b.Run(ctx)
}
