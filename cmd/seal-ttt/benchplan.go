package main

import (
	"flag"
	"fmt"
	"io"
	"runtime"
	"strings"
	"text/tabwriter"

	"github.com/goseal/ttt/hf"
	"github.com/goseal/ttt/lora"
	"github.com/goseal/ttt/metal"
	"github.com/goseal/ttt/nn"
	"github.com/goseal/ttt/plan"
)

// planOpts are bench --plan's flags: the request's shape, with SEAL's
// defaults, and where it runs.
type planOpts struct {
	plan                       bool
	model, backend, chip       string
	maxMemory, targets         string
	sequences, seqLen, epochs  int
	batch, accum, rank, layers int
	dropout                    float64
	questions, prompt, answer  int
}

// planFlags adds --plan and the request-shape flags to fs (lora_rank,
// model and backend are bench's own).
func planFlags(fs *flag.FlagSet) *planOpts {
	o := &planOpts{}
	fs.BoolVar(&o.plan, "plan", false, "print the plan of a SEAL request instead of measuring (config.json only, no weights)")
	fs.StringVar(&o.chip, "chip", "", "plan: the Apple chip to bound on, e.g. \"M2 Max\" (default: every chip of docs/apple-chips.md)")
	fs.StringVar(&o.maxMemory, "max_memory", "", "plan: the memory limit, weights included, e.g. 32GB (default: the GPU's recommended working set on a Mac, else 3/4 of physical memory)")
	fs.IntVar(&o.sequences, "sequences", 2, "plan: train_sequences in the request")
	fs.IntVar(&o.seqLen, "max_seq_length", 2048, "plan: tokens per training sequence (SEAL pads every sequence to --max_seq_length)")
	fs.IntVar(&o.epochs, "finetune_epochs", 10, "plan: finetune_epochs")
	fs.IntVar(&o.batch, "batch_size", 1, "plan: batch_size")
	fs.IntVar(&o.accum, "gradient_accumulation_steps", 1, "plan: gradient_accumulation_steps")
	fs.StringVar(&o.targets, "target_modules", "default", "plan: target_modules (default: q_proj,v_proj; all-linear; or a list)")
	fs.IntVar(&o.layers, "lora_layers", 0, "plan: adapt only the last n blocks (0: all)")
	fs.Float64Var(&o.dropout, "lora_dropout", 0, "plan: lora_dropout")
	fs.IntVar(&o.questions, "questions", 5, "plan: eval_questions in the request")
	fs.IntVar(&o.prompt, "question_tokens", 64, "plan: tokens of each question's prompt")
	fs.IntVar(&o.answer, "eval_max_tokens", 64, "plan: new tokens per answer (each is taken to run to the limit)")
	return o
}

// runPlan prints the plan of o's request for o's model.
func runPlan(w io.Writer, o *planOpts) error {
	cfg, desc := nn.BuiltinConfig(), builtinName
	if o.model != "" {
		dir, err := hf.ResolveModel(o.model)
		if err != nil {
			return err
		}
		if cfg, err = hf.LoadConfig(dir); err != nil {
			return err
		}
		desc = o.model
	}
	backend, why := plan.Metal, "auto: every chip of the table is an Apple7+ GPU"
	if o.backend != "" && o.backend != "auto" {
		b, err := plan.ParseBackend(o.backend)
		if err != nil {
			return fmt.Errorf("--backend: %w", err)
		}
		backend, why = b, "asked for"
	}
	chips := plan.Chips
	if o.chip != "" {
		c, err := plan.ChipByName(o.chip)
		if err != nil {
			return fmt.Errorf("--chip: %w", err)
		}
		chips = []plan.Chip{c}
	}
	limit, limitWhy, err := planLimit(o.maxMemory)
	if err != nil {
		return err
	}
	targets, err := lora.ParseTargets(o.targets)
	if err != nil {
		return fmt.Errorf("--target_modules: %w", err)
	}
	if len(targets) == 0 {
		targets = lora.DefaultTargets(cfg.Arch)
	}
	m := plan.Model{Cfg: cfg, Backend: backend, DType: plan.StoredDType(cfg)}
	p, err := plan.New(m, limit)
	if err != nil {
		return err
	}
	r := plan.Request{Sequences: o.sequences, SeqLen: o.seqLen, Epochs: o.epochs, BatchSize: o.batch, GradAccum: o.accum,
		LoRA:      plan.LoRA{Rank: o.rank, Targets: targets, Layers: o.layers, Dropout: o.dropout > 0},
		Questions: o.questions, PromptLen: o.prompt, AnswerLen: o.answer}
	e, err := p.Estimate(r)
	if err != nil {
		return err
	}

	names := make([]string, len(targets))
	for i, t := range targets {
		names[i] = t.String()
	}
	fmt.Fprintf(w, "model: %s (%s: %d layers, hidden %d, vocab %d), %.3g parameters\n", desc, cfg.Arch, cfg.Layers, cfg.Hidden, cfg.VocabSize, float64(plan.Params(cfg)))
	fmt.Fprintf(w, "backend: %s (%s): weights %s at %d bytes per parameter\n", backend, why, plan.FormatBytes(m.WeightBytes()), m.WeightSize())
	fmt.Fprintf(w, "request: %d sequences × %d tokens, %d epochs, batch %d × accumulation %d (%d micro-batches, %d optimizer steps); LoRA rank %d on %s (%.3g parameters); %d questions of %d prompt tokens, %d answer tokens (in groups of %d)\n",
		r.Sequences, r.SeqLen, r.Epochs, r.BatchSize, r.GradAccum, e.Micro, e.Steps, r.LoRA.Rank, strings.Join(names, ","), float64(r.LoRA.Params(cfg)), r.Questions, r.PromptLen, r.AnswerLen, e.Group)
	fmt.Fprintf(w, "memory limit: %s (%s)\n", plan.FormatBytes(limit), limitWhy)
	if r.Sequences > 0 && r.Epochs > 0 {
		mb := plan.Micro{Rows: min(r.BatchSize, r.Sequences), Width: r.SeqLen, LoRA: r.LoRA}
		keep, redo := m.WeightBytes()+p.TrainBytes(mb, false), m.WeightBytes()+p.TrainBytes(mb, true)
		verdict := "not needed"
		if e.Recompute {
			verdict = "chosen: training does not fit without it"
		}
		fmt.Fprintf(w, "activation checkpointing: %s (training peak %s keeping every block's activations, %s recomputing them)\n", verdict, plan.FormatBytes(keep), plan.FormatBytes(redo))
	}
	fits := "fits the limit"
	if !e.Fits {
		fits = "DOES NOT FIT the limit"
	}
	fmt.Fprintf(w, "peak memory: %s, %s\n\n", plan.FormatBytes(e.Peak), fits)

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	head := "phase\tpasses\tFLOPs\tbytes moved\tpeak memory\t"
	if len(chips) == 1 {
		head += chips[0].Name + " bound\tlimited by\t"
	}
	fmt.Fprintln(tw, head)
	row := func(ph plan.Phase) {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t", ph.Name, ph.Passes, si(ph.FLOPs, "FLOP"), si(ph.Bytes, "B"), plan.FormatBytes(ph.Peak))
	}
	for _, ph := range e.Phases {
		row(ph)
		if len(chips) == 1 {
			side := "bandwidth"
			if ph.ComputeBound(chips[0]) {
				side = "compute"
			}
			fmt.Fprintf(tw, "%s\t%s\t", seconds(ph.Bound(chips[0])), side)
		}
		fmt.Fprintln(tw)
	}
	// The total's bound is the sum of the phases' (they run one after
	// another), not the bound of the summed work.
	row(e.Total())
	if len(chips) == 1 {
		fmt.Fprintf(tw, "%s\t\t", seconds(e.Bound(chips[0])))
	}
	fmt.Fprintln(tw)
	tw.Flush()
	if len(chips) > 1 {
		fmt.Fprintln(w, "\nroofline lower bound, max(FLOPs / FP32 peak, bytes / bandwidth), per phase:")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprint(tw, "chip\tTFLOPS\tGB/s\t")
		for _, ph := range e.Phases {
			fmt.Fprintf(tw, "%s\t", ph.Name)
		}
		fmt.Fprintln(tw, "total\t")
		for _, c := range chips {
			fmt.Fprintf(tw, "%s\t%.2f\t%g\t", c.Name, c.FP32TFLOPS, c.BandwidthGBs)
			for _, ph := range e.Phases {
				fmt.Fprintf(tw, "%s\t", seconds(ph.Bound(c)))
			}
			fmt.Fprintf(tw, "%s\t\n", seconds(e.Bound(c)))
		}
		tw.Flush()
	}
	if backend == plan.CPU {
		fmt.Fprintln(w, "\nThe FLOPS side of the bounds is the Apple GPU's (the metal backend); the CPU backend computes on the CPU cores, whose peak the table does not give, so for it only the bandwidth side holds.")
	}
	fmt.Fprintln(w, "\nA plan, not a measurement: lower bounds from published peak rates (docs/apple-chips.md).")
	return nil
}

// planLimit is the plan's memory limit: --max_memory, else Metal's
// recommended working set on a Mac, else three quarters of this machine's
// memory.
func planLimit(flag string) (int64, string, error) {
	if flag != "" {
		n, err := plan.ParseBytes(flag)
		if err != nil {
			return 0, "", fmt.Errorf("--max_memory: %w", err)
		}
		return n, "--max_memory", nil
	}
	if runtime.GOOS == "darwin" {
		if dev, err := metal.Open(); err == nil {
			defer dev.Close()
			return int64(dev.RecommendedWorkingSet()), dev.Name() + "'s recommended working set", nil
		}
	}
	if n := plan.DefaultMaxMemory(); n > 0 {
		return n, "3/4 of this machine's memory; set --max_memory for another machine", nil
	}
	return 0, "", fmt.Errorf("this machine's memory size cannot be read: set --max_memory")
}

// si writes x with a decimal prefix, e.g. "1.24 PFLOP".
func si(x float64, unit string) string {
	const prefixes = " kMGTPE"
	i := 0
	for x >= 1000 && i < len(prefixes)-1 {
		x /= 1000
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.3g %s", x, unit)
	}
	return fmt.Sprintf("%.3g %c%s", x, prefixes[i], unit)
}

// seconds writes a duration in seconds with three significant digits.
func seconds(s float64) string {
	switch {
	case s < 1e-3:
		return fmt.Sprintf("%.3g µs", s*1e6)
	case s < 1:
		return fmt.Sprintf("%.3g ms", s*1e3)
	}
	return fmt.Sprintf("%.3g s", s)
}
