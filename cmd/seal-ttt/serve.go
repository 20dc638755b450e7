package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/goseal/ttt/plan"
	"github.com/goseal/ttt/server"
)

func init() {
	commands["serve"] = command{summary: "serve SEAL's TTT cycle over ZeroMQ (SEAL's TTT_server.py flags)", run: runServe,
		help: "Binds a ZeroMQ REP socket, loads the model, and answers SEAL's requests one\nat a time: each gets baseline answers, a LoRA adapter fine-tuned on its\ntrain_sequences, adapted answers, and both graded (see `seal-ttt ttt -h`\nand the README for the request's keys). {\"cmd\": \"shutdown\"} or SIGTERM\nstops it. With --connect it joins a broker (`seal-ttt broker`) instead\nof binding. Every request's memory is planned before any work and refused\nwith a ValueError when it would exceed --max_memory."}
}

// cycleFlags are the flags shared by serve, ttt and demo: the model and the
// cycle's configuration.
type cycleFlags struct {
	model, backend          string
	instruct, keepAdapters  bool
	maxSeqLength, maxTokens int
	temperature, topP       float64
	grader, graderModel     string
	padding, logFormat      string
	maxMemory               string
	requestTimeout          time.Duration
	baselineCache           int
}

// register defines the flags on fs with SEAL's names; d holds their
// defaults, SEAL's except for the demo's.
func (c *cycleFlags) register(fs *flag.FlagSet, d server.Config, defaultGrader string) {
	fs.StringVar(&c.model, "model", "", "model directory or Hugging Face id (default: the built-in demo model)")
	addOfflineFlag(fs)
	fs.StringVar(&c.backend, "backend", "auto", backendUsage)
	fs.BoolVar(&c.instruct, "instruct_model", false, "the model is an instruct model: ChatML answer prompts, stop at <|im_end|>")
	fs.IntVar(&c.maxSeqLength, "max_seq_length", d.MaxSeqLength, "truncate (and pad) training sequences to this many tokens")
	fs.Float64Var(&c.temperature, "eval_temperature", d.Temperature, "answer sampling temperature (0: greedy)")
	fs.Float64Var(&c.topP, "eval_top_p", d.TopP, "answer nucleus sampling mass")
	fs.IntVar(&c.maxTokens, "eval_max_tokens", d.MaxTokens, "most new tokens per answer")
	fs.BoolVar(&c.keepAdapters, "keep_adapter_dir", false, "keep each trained adapter at models/tmp_{port}_inner_TTT_{step}/final_adapter (PEFT format)")
	fs.StringVar(&c.grader, "grader", defaultGrader, "grader: "+strings.Join(server.GraderNames, ", ")+" (auto: openai when OPENAI_API_KEY is set, else contains)")
	fs.StringVar(&c.graderModel, "grader_model", "gpt-4.1", "model of the openai grader (base URL from OPENAI_BASE_URL)")
	fs.StringVar(&c.padding, "padding", d.Padding, "training padding: max_length (as the original: pad to --max_seq_length, pads in the loss) or longest (faster: pad to the longest sequence of a batch, pads not in the loss)")
	fs.StringVar(&c.logFormat, "log_format", "text", "log format on stderr: text or json")
	fs.StringVar(&c.maxMemory, "max_memory", "", "memory the process may use, weights included, e.g. 24GiB; a request planned to need more is refused (default: the GPU's recommended working set on a Mac's Metal backend, else 3/4 of physical memory)")
	fs.DurationVar(&c.requestTimeout, "request_timeout", 0, "abandon a request that runs longer, e.g. 30m, with a TimeoutError reply (default: no limit)")
	fs.IntVar(&c.baselineCache, "baseline_cache", server.DefaultBaselineEntries, "keep the graded baseline answers of this many recent requests (at most 256 MiB) and reuse them for repeats when decoding is deterministic (greedy, or a request seed); replies are the same bytes; 0 turns it off")
}

// logger returns the structured logger on stderr in the chosen format.
func (c *cycleFlags) logger(w io.Writer) (*slog.Logger, error) {
	switch c.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, nil)), nil
	}
	return nil, fmt.Errorf("unknown --log_format %q: use text or json", c.logFormat)
}

// handler validates the flags, loads the model and builds the cycle.
func (c *cycleFlags) handler(log *slog.Logger, port int) (*server.Handler, error) {
	switch {
	case c.maxSeqLength < 1:
		return nil, fmt.Errorf("--max_seq_length must be >= 1, got %d", c.maxSeqLength)
	case c.maxTokens < 1:
		return nil, fmt.Errorf("--eval_max_tokens must be >= 1, got %d", c.maxTokens)
	case c.temperature < 0:
		return nil, fmt.Errorf("--eval_temperature must be >= 0, got %g", c.temperature)
	case c.topP <= 0 || c.topP > 1:
		return nil, fmt.Errorf("--eval_top_p must be in (0, 1], got %g", c.topP)
	case c.padding != "max_length" && c.padding != "longest":
		return nil, fmt.Errorf("unknown --padding %q: use max_length or longest", c.padding)
	case c.requestTimeout < 0:
		return nil, fmt.Errorf("--request_timeout must be >= 0, got %s", c.requestTimeout)
	case c.baselineCache < 0:
		return nil, fmt.Errorf("--baseline_cache must be >= 0 (0: off), got %d", c.baselineCache)
	}
	var maxMemory int64
	if c.maxMemory != "" {
		var err error
		if maxMemory, err = plan.ParseBytes(c.maxMemory); err != nil {
			return nil, fmt.Errorf("--max_memory: %w", err)
		}
	}
	cfg := server.Config{
		Instruct:       c.instruct,
		MaxSeqLength:   c.maxSeqLength,
		Temperature:    c.temperature,
		TopP:           c.topP,
		MaxTokens:      c.maxTokens,
		Padding:        c.padding,
		KeepAdapters:   c.keepAdapters,
		Port:           port,
		RequestTimeout: c.requestTimeout,
	}
	model, desc, err := loadModel(c.model, c.backend, maxMemory, log)
	if err != nil {
		return nil, err
	}
	if err := model.CheckConfig(cfg); err != nil {
		return nil, err
	}
	log.Info("model loaded", "model", desc, "request_memory_budget", plan.FormatBytes(model.Budget()))
	grader, why, err := server.NewGrader(c.grader, c.graderModel, model, c.instruct, os.Getenv)
	if err != nil {
		return nil, err
	}
	log.Info("grader", "grader", why)
	if c.padding == "longest" {
		log.Info("padding longest: batches are padded to their longest sequence and pads are left out of the loss (the original pads to --max_seq_length and trains on the pads)")
	}
	h := &server.Handler{Model: model, Grader: grader, Log: log, Config: cfg}
	if c.baselineCache > 0 {
		h.Baselines = server.NewBaselineCache(c.baselineCache, server.DefaultBaselineBytes)
	}
	return h, nil
}

// openSocket binds the REP socket at host:port or, with connect, joins the
// broker there. It runs before the model loads, so a port in use fails at
// once.
func openSocket(connect, host string, port int, log *slog.Logger) (server.Socket, error) {
	if connect != "" {
		sock, err := server.Connect(connect)
		if err != nil {
			return nil, err
		}
		log.Info("joining the broker", "broker", connect, "transport", server.DefaultTransport)
		return sock, nil
	}
	endpoint, err := server.BindEndpoint(host, port)
	if err != nil {
		return nil, err
	}
	sock, err := server.Listen(endpoint)
	if err != nil {
		return nil, err
	}
	log.Info("ZeroMQ REP socket bound", "endpoint", sock.Endpoint(), "transport", server.DefaultTransport)
	if server.AllInterfaces(host) {
		log.Warn("the socket accepts requests from every network interface, as SEAL's server does; anyone who can reach this port can run requests: use --zmq_host 127.0.0.1 to serve this machine only")
	}
	return sock, nil
}

// signalContext is done at the first SIGINT or SIGTERM; a second one kills
// the process at once.
func signalContext() (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	return ctx, stop
}

func runServe(args []string) error {
	fs := flagSet("serve", "[flags]")
	var c cycleFlags
	c.register(fs, server.DefaultConfig(), "auto")
	port := fs.Int("zmq_port", 5555, "TCP port of the ZeroMQ REP socket")
	host := fs.String("zmq_host", "*", "address to bind: * (every interface, as SEAL's server), an address such as 127.0.0.1 (this machine only) or a host name")
	connect := fs.String("connect", "", "join the broker at this endpoint (e.g. tcp://broker.lan:5556, see `seal-ttt broker`) instead of binding --zmq_host:--zmq_port; --zmq_port still names kept adapters")
	vllm := fs.String("vllm_api_url", "", "accepted for compatibility with SEAL's launch scripts; not used (generation runs in this process)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *port < 0 || *port > 65535 {
		return fmt.Errorf("--zmq_port must be a TCP port, got %d", *port)
	}
	log, err := c.logger(os.Stderr)
	if err != nil {
		return err
	}
	if *vllm != "" {
		log.Info("--vllm_api_url is ignored: generation runs in this process", "vllm_api_url", *vllm)
	}
	sock, err := openSocket(*connect, *host, *port, log)
	if err != nil {
		return err
	}
	defer sock.Close()
	h, err := c.handler(log, *port)
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	if err := server.Serve(ctx, sock, h); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info("server stopped")
	return nil
}
