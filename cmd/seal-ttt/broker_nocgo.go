//go:build !cgo

package main

import "errors"

func init() {
	commands["broker"] = command{summary: "put several servers behind one ZeroMQ endpoint (needs a cgo build)", run: runBroker, help: brokerHelp}
}

func runBroker([]string) error {
	return errors.New("the broker uses libzmq, and this seal-ttt was built without cgo: run the broker from a cgo build (make, with libzmq installed) on any machine; servers built without cgo join it with `seal-ttt serve --connect`")
}
