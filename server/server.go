package server

import (
	"context"
	"log/slog"
	"time"
)

// Serve answers the requests arriving on sock with h, one at a time, until a
// shutdown command has been answered or ctx is done; it returns nil then.
// When ctx is done mid-request, the request is abandoned and its client gets
// an error reply before Serve returns. Serve does not close sock.
//
// No request can stop Serve: a malformed message gets an error reply, a
// client that vanished before its reply is simply not answered, and a
// transport error while waiting is logged and waiting resumes.
func Serve(ctx context.Context, sock Socket, h *Handler) error {
	log := h.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	transportLog.Store(log)
	log.Info("listening", "endpoint", sock.Endpoint())
	for {
		frames, err := sock.Recv(ctx)
		if ctx.Err() != nil {
			if err == nil { // a request arrived as the server was stopping
				sock.Send(errorReply(errInterrupted))
			}
			log.Info("stopping", "reason", context.Cause(ctx).Error())
			return nil
		}
		if err != nil {
			log.Warn("receiving a request", "error", err.Error())
			if sleep(ctx, recvErrorPause) != nil {
				return nil
			}
			continue
		}
		reply, stop := h.Handle(ctx, frames)
		if err := sock.Send(reply); err != nil {
			log.Warn("sending a reply", "error", err.Error())
		}
		if stop {
			return nil
		}
		if ctx.Err() != nil {
			log.Info("stopping", "reason", context.Cause(ctx).Error())
			return nil
		}
	}
}

// recvErrorPause keeps a transport that fails at once from spinning.
const recvErrorPause = 10 * time.Millisecond
