package main

// brokerHelp is the paragraph `seal-ttt broker -h` prints.
const brokerHelp = `Serves SEAL's endpoint (--zmq_port) for several servers: each joins with
` + "`seal-ttt serve --connect tcp://BROKER:5556`" + ` (--workers_port), from any machine
that can reach the broker, and leaves by stopping. SEAL's clients connect to
the broker as to one server. Each request goes to an idle server, the one
idle longest; while all are busy, requests wait in the broker in arrival
order. A server that dies mid-request costs its client a ConnectionError
reply (SEAL's clients retry it, landing on a live server). {"cmd":
"shutdown"} is refused with an error reply: stop servers and the broker with
SIGTERM or Ctrl-C. The broker uses libzmq (a cgo build); servers of either
build can join it.`
