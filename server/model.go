package server

import (
	"context"
	"fmt"
)

// Model is the loaded base model as the TTT cycle sees it. The base weights
// are read-only: nothing a request does may change what Generate returns for
// a nil adapter. Implementations must return promptly with ctx.Err() once ctx
// is done; the server cancels ctx when it shuts down mid-request.
//
// An error whose message a researcher should see as a request problem (for
// example an unknown target module or a rank larger than a layer) should be
// an *Error with Type "ValueError"; any other error is reported as a
// RuntimeError.
type Model interface {
	// Generate completes every prompt in one batch and returns one
	// Completion per prompt, in order. adapter nil means the base model.
	// Generation stops at the end-of-sequence token, at any special token
	// named in p.Stop, or after p.MaxTokens new tokens; the stop token is not
	// part of the text.
	Generate(ctx context.Context, adapter Adapter, prompts []string, p GenParams) ([]Completion, error)

	// FineTune trains a fresh LoRA adapter on seqs (one training example
	// each) with the semantics of PEFT and the Hugging Face Trainer. It
	// calls progress, if not nil, at least every few seconds and after the
	// last step.
	FineTune(ctx context.Context, seqs []string, p TrainParams, progress func(TrainProgress)) (Adapter, TrainStats, error)

	// Check runs before any work on a request: it checks that every prompt
	// fits the model's context with gen.MaxTokens new tokens, that train
	// (nil when the request does not train) is valid for the model, and
	// that the work fits the memory budget. A failure is an *Error of type
	// ValueError that names the limit.
	Check(prompts, seqs []string, gen GenParams, train *TrainParams) error
}

// Adapter is a trained LoRA adapter. It lives as long as one request: the
// cycle calls Release once the reply is built and never uses it again.
type Adapter interface {
	// SavePEFT writes the adapter to dir (created if needed) in the PEFT
	// format: adapter_config.json and adapter_model.safetensors.
	SavePEFT(dir string) error
	// Release frees the adapter's memory.
	Release()
}

// GenParams controls one batch of generation.
type GenParams struct {
	// Temperature 0 means greedy decoding.
	Temperature float64
	// TopP is the nucleus-sampling mass; 1 keeps every token.
	TopP float64
	// MaxTokens bounds the number of new tokens per prompt.
	MaxTokens int
	// Stop lists special tokens, by their text (e.g. "<|im_end|>"), that end
	// a completion in addition to the end-of-sequence token.
	Stop []string
	// Seed seeds sampling when Temperature > 0.
	Seed int64
}

// Completion is the text generated for one prompt.
type Completion struct {
	// Text is the raw decoded text, not stripped, without the stop token.
	Text string
	// Tokens is the number of tokens generated, the stop token included.
	Tokens int
}

// TrainParams are the fine-tuning hyperparameters of one request.
type TrainParams struct {
	// Rank is the LoRA rank r (>= 1).
	Rank int
	// Alpha is the LoRA alpha; the adapter's scale is Alpha / Rank.
	Alpha float64
	// Dropout is the LoRA dropout probability in [0, 1).
	Dropout float64
	// Epochs is the number of passes over seqs (>= 1).
	Epochs int
	// LR is the peak learning rate, decayed linearly to 0 over all steps.
	LR float64
	// BatchSize is the number of sequences per micro-batch (>= 1).
	BatchSize int
	// GradAccum is the number of micro-batches per optimizer step (>= 1).
	GradAccum int
	// EndMaskSubstring, when not empty, masks the labels of every token up
	// to and including the first occurrence of its token ids.
	EndMaskSubstring string
	// MaxSeqLength truncates every sequence to this many tokens.
	MaxSeqLength int
	// Padding is "max_length" (pad every sequence to MaxSeqLength with EOS,
	// pads included in the loss, as the original) or "longest" (pad each
	// batch to its longest sequence, pads excluded from the loss).
	Padding string
	// TargetModules names the adapted linear layers (e.g. "q_proj");
	// nil means the architecture's PEFT default, and the single name
	// "all-linear" means every linear layer but the output head.
	TargetModules []string
	// LoRALayers adapts only the last LoRALayers transformer blocks; 0 means
	// all of them.
	LoRALayers int
	// Seed seeds adapter initialisation, dropout and data shuffling. The
	// server always sets it: from the request's "seed" or, as the original,
	// freshly from the clock.
	Seed int64
}

// TrainStats summarises a finished fine-tuning run.
type TrainStats struct {
	// Steps is the number of optimizer steps taken.
	Steps int
	// Tokens is the number of tokens processed (pads included), all epochs.
	Tokens int
	// FirstLoss and LastLoss are the training losses of the first and last
	// optimizer steps.
	FirstLoss, LastLoss float64
	// Recompute says activations were recomputed in the backward pass
	// (checkpointing), as the memory plan chose.
	Recompute bool
}

// TrainProgress reports a fine-tuning run in progress.
type TrainProgress struct {
	// Step is the number of optimizer steps done, out of Steps.
	Step, Steps int
	// Loss is the loss of the latest step.
	Loss float64
	// TokensPerSecond is the training throughput so far.
	TokensPerSecond float64
}

// Error is a failure reported to the client as {"error": "Type: Msg"}, with
// Type a Python exception name as SEAL's server would produce it
// (ValueError, TypeError, KeyError, JSONDecodeError, UnicodeDecodeError,
// RuntimeError, KeyboardInterrupt).
type Error struct {
	// Type is the Python exception name, e.g. "ValueError".
	Type string
	// Msg says what is wrong and where, e.g. "lora_rank = 0 is out of range".
	Msg string
}

func (e *Error) Error() string { return e.Type + ": " + e.Msg }

// errorf returns an *Error of the given Python exception type.
func errorf(typ, format string, args ...any) *Error {
	return &Error{Type: typ, Msg: fmt.Sprintf(format, args...)}
}
