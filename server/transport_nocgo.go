//go:build !cgo

package server

// DefaultTransport is the transport Listen uses: pure Go, since this build
// has no cgo.
const DefaultTransport = "go"
