package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/goseal/ttt/hf"
)

// Limits on a request. They exist so that a malformed request gets an error
// reply instead of exhausting memory; a real SEAL request (even CPT.py's, with
// thousands of sequences) is far below all of them.
const (
	// MaxRequestBytes bounds the size of one request message.
	MaxRequestBytes = 256 << 20
	// MaxStringBytes bounds one training sequence, question or answer.
	MaxStringBytes = 1 << 20
	// MaxItems bounds the number of training sequences and of questions.
	MaxItems = 1 << 20
)

// Request is one decoded and validated TTT request.
type Request struct {
	// Shutdown is set by {"cmd": "shutdown"}; every other field is then zero.
	Shutdown bool
	// TrainSequences are the sequences to fine-tune on; none means no training.
	TrainSequences []string
	// Questions are the evaluation questions.
	Questions []Question
	// Train holds the request's hyperparameters. MaxSeqLength, and Padding
	// when the request leaves it empty, come from the server's flags; Seed
	// is meaningful only when HasSeed.
	Train TrainParams
	// HasSeed reports whether the request fixed Train.Seed.
	HasSeed bool
	// SkipTraining answers with the baseline only (key skip_training).
	SkipTraining bool
	// BaselineEval is false when the client asked to skip the baseline.
	BaselineEval bool
	// ChainOfThought selects the reasoning prompt and final-answer extraction.
	ChainOfThought bool
	// Unknown lists the request's keys that this server does not read, sorted;
	// the cycle logs them as a warning.
	Unknown []string
	// nullTraining lists training keys set to null: SEAL's msg.get passes
	// None to PEFT and the Trainer, which fail, so a request that trains
	// with one of them is a TypeError.
	nullTraining []string
}

// Question is one evaluation question and its gold answer.
type Question struct {
	Question string
	Answer   string
}

// ParseRequest decodes and validates one request message (all its frames).
// Keys take the values SEAL's server would see through msg.get: an absent
// key takes its default, and a key set to null is None (see docs/decisions.md
// for each key). Unknown keys are listed in Unknown. Every problem is an
// *Error.
func ParseRequest(frames [][]byte) (*Request, error) {
	obj, err := decodeMessage(frames)
	if err != nil {
		return nil, err
	}
	return parseObject(obj)
}

// decodeMessage decodes a message into a JSON object: the part of the work
// SEAL's server does before its cycle (recv_json), whose failures do not
// count as a request.
func decodeMessage(frames [][]byte) (map[string]json.RawMessage, error) {
	switch {
	case len(frames) == 0:
		return nil, errorf("ValueError", "empty message: send the request as one JSON frame")
	case len(frames) > 1:
		return nil, errorf("ValueError", "multipart message with %d frames: send the request as one JSON frame", len(frames))
	}
	data := frames[0]
	if len(data) > MaxRequestBytes {
		return nil, errorf("ValueError", "request of %d bytes exceeds the limit of %d bytes", len(data), MaxRequestBytes)
	}
	if !utf8.Valid(data) {
		i := firstInvalidUTF8(data)
		return nil, errorf("UnicodeDecodeError", "'utf-8' codec can't decode byte 0x%02x in position %d: the request must be UTF-8 JSON", data[i], i)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return nil, decodeError(data, err)
	}
	if obj == nil { // the message was the JSON literal null
		return nil, errorf("TypeError", "the request must be a JSON object, got None")
	}
	return obj, nil
}

// requestKeys are the keys the server reads.
var requestKeys = map[string]bool{
	"cmd": true, "train_sequences": true, "eval_questions": true, "lora_rank": true, "lora_alpha": true,
	"lora_dropout": true, "finetune_epochs": true, "finetune_lr": true, "batch_size": true,
	"gradient_accumulation_steps": true, "end_mask_substring": true, "skip_training": true,
	"baseline_eval": true, "chain_of_thought": true, "seed": true, "padding": true,
	"target_modules": true, "lora_layers": true,
}

// trainingKeys are SEAL's keys that only its fine-tuning reads.
var trainingKeys = []string{"lora_rank", "lora_alpha", "lora_dropout", "finetune_epochs", "finetune_lr",
	"batch_size", "gradient_accumulation_steps"}

// MaxBatch bounds batch_size and gradient_accumulation_steps, as the trainer does.
const MaxBatch = 4096

// parseObject reads the request's keys from a decoded message.
func parseObject(obj map[string]json.RawMessage) (*Request, error) {
	d := decoder{obj: obj}
	r := &Request{}
	if cmd, ok := d.str("cmd"); ok {
		if cmd != "shutdown" {
			return nil, errorf("ValueError", "unknown cmd %q: the only command is \"shutdown\"", cmd)
		}
		return &Request{Shutdown: true}, nil
	}
	if d.err != nil {
		return nil, d.err
	}
	for k := range obj {
		if !requestKeys[k] {
			r.Unknown = append(r.Unknown, k)
		}
	}
	sort.Strings(r.Unknown)
	r.TrainSequences = d.strings("train_sequences")
	if d.isNull("eval_questions") {
		d.fail("TypeError", "eval_questions must be a list of objects, got None")
	}
	r.Questions = d.questions("eval_questions")
	r.Train = TrainParams{
		Rank:             d.integer("lora_rank", 32, 1, 4096),
		Alpha:            d.float("lora_alpha", 64, 0, 1e6, false),
		Dropout:          d.float("lora_dropout", 0, 0, 1, true),
		Epochs:           d.integer("finetune_epochs", 10, 1, 100000),
		LR:               d.float("finetune_lr", 1e-3, 0, 1, false),
		BatchSize:        d.integer("batch_size", 1, 1, MaxBatch),
		GradAccum:        d.integer("gradient_accumulation_steps", 1, 1, MaxBatch),
		EndMaskSubstring: d.optString("end_mask_substring"),
		LoRALayers:       d.integer("lora_layers", 0, 0, 1<<16),
		TargetModules:    d.targetModules("target_modules"),
		Padding:          d.padding("padding"),
	}
	for _, k := range trainingKeys {
		if d.isNull(k) {
			r.nullTraining = append(r.nullTraining, k)
		}
	}
	if d.present("seed") {
		r.Train.Seed = int64(d.integer("seed", 0, -1<<53, 1<<53))
		r.HasSeed = true
	}
	r.SkipTraining = d.truthy("skip_training", false)
	r.BaselineEval = d.truthy("baseline_eval", true)
	r.ChainOfThought = d.truthy("chain_of_thought", false)
	if d.err != nil {
		return nil, d.err
	}
	if r.Training() && len(r.nullTraining) > 0 {
		return nil, errorf("TypeError", "%s is null: SEAL's trainer would get None; leave the key out for its default", r.nullTraining[0])
	}
	return r, nil
}

// Training reports whether the request asks for fine-tuning.
func (r *Request) Training() bool {
	return !r.SkipTraining && len(r.TrainSequences) > 0
}

// decoder reads typed fields from a request object, keeping the first error.
type decoder struct {
	obj map[string]json.RawMessage
	err error
}

// present reports whether key is set to something other than null.
func (d *decoder) present(key string) bool {
	v, ok := d.obj[key]
	return ok && !bytes.Equal(v, []byte("null"))
}

// isNull reports whether key is set to null.
func (d *decoder) isNull(key string) bool {
	v, ok := d.obj[key]
	return ok && bytes.Equal(v, []byte("null"))
}

func (d *decoder) fail(typ, format string, args ...any) {
	if d.err == nil {
		d.err = errorf(typ, format, args...)
	}
}

// integer reads a whole number in [lo, hi]. An integral float such as 10.0
// is accepted, as Python's json would pass it through to the trainer.
func (d *decoder) integer(key string, def, lo, hi int) int {
	if !d.present(key) || d.err != nil {
		return def
	}
	raw := d.obj[key]
	if !isNumber(raw) {
		d.fail("TypeError", "%s must be an integer, got %s", key, pyType(raw))
		return def
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		d.fail("ValueError", "%s = %s is out of range: it must be between %d and %d", key, clip(raw), lo, hi)
		return def
	}
	if f != math.Trunc(f) {
		d.fail("ValueError", "%s must be a whole number, got %s", key, clip(raw))
		return def
	}
	if f < float64(lo) || f > float64(hi) {
		d.fail("ValueError", "%s = %s is out of range: it must be between %d and %d", key, clip(raw), lo, hi)
		return def
	}
	return int(f)
}

// float reads a finite number in (lo, hi], or in [lo, hi) when lowClosed
// (dropout may be 0 but not 1; alpha and the learning rate must be > 0).
func (d *decoder) float(key string, def, lo, hi float64, lowClosed bool) float64 {
	if !d.present(key) || d.err != nil {
		return def
	}
	raw := d.obj[key]
	if !isNumber(raw) {
		d.fail("TypeError", "%s must be a number, got %s", key, pyType(raw))
		return def
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	switch {
	case err != nil:
		d.fail("ValueError", "%s = %s is out of range", key, clip(raw))
	case lowClosed && (f < lo || f >= hi):
		d.fail("ValueError", "%s = %s is out of range: it must be >= %g and < %g", key, clip(raw), lo, hi)
	case !lowClosed && (f <= lo || f > hi):
		d.fail("ValueError", "%s = %s is out of range: it must be > %g and <= %g", key, clip(raw), lo, hi)
	default:
		return f
	}
	return def
}

// truthy reads key as Python's bool() reads the value json.loads gives:
// false, null, 0, "", [] and {} are false, anything else true; absent is def.
func (d *decoder) truthy(key string, def bool) bool {
	raw, ok := d.obj[key]
	if !ok || d.err != nil {
		return def
	}
	switch v := strings.TrimSpace(string(raw)); {
	case v == "false" || v == "null" || v == `""`:
		return false
	case isNumber(raw):
		f, err := strconv.ParseFloat(v, 64)
		return err != nil || f != 0 // a number too large for a float is not 0
	case v[0] == '[' || v[0] == '{':
		var items []json.RawMessage
		var obj map[string]json.RawMessage
		return json.Unmarshal(raw, &items) == nil && len(items) > 0 || json.Unmarshal(raw, &obj) == nil && len(obj) > 0
	}
	return true
}

// str reads a string; ok is false when the key is absent or null.
func (d *decoder) str(key string) (s string, ok bool) {
	if !d.present(key) || d.err != nil {
		return "", false
	}
	if err := json.Unmarshal(d.obj[key], &s); err != nil {
		d.fail("TypeError", "%s must be a string, got %s", key, pyType(d.obj[key]))
		return "", false
	}
	return s, true
}

// optString reads a string that may be absent, null or empty.
func (d *decoder) optString(key string) string {
	s, _ := d.str(key)
	if len(s) > MaxStringBytes {
		d.fail("ValueError", "%s is %d bytes long; the limit is %d", key, len(s), MaxStringBytes)
		return ""
	}
	return s
}

func (d *decoder) padding(key string) string {
	s, ok := d.str(key)
	if ok && s != "max_length" && s != "longest" {
		d.fail("ValueError", "unknown padding mode %q: use \"max_length\" or \"longest\"", clip([]byte(s)))
	}
	return s
}

// list reads a JSON array of raw elements.
func (d *decoder) list(key, what string) []json.RawMessage {
	if !d.present(key) || d.err != nil {
		return nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(d.obj[key], &items); err != nil {
		d.fail("TypeError", "%s must be a list of %s, got %s", key, what, pyType(d.obj[key]))
		return nil
	}
	if len(items) > MaxItems {
		d.fail("ValueError", "%s has %d items; the limit is %d", key, len(items), MaxItems)
		return nil
	}
	return items
}

// text reads one string element (blank strings are accepted, as SEAL
// accepts them), where is its name for messages.
func (d *decoder) text(raw json.RawMessage, where string) string {
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		d.fail("TypeError", "%s must be a string, got %s", where, pyType(raw))
		return ""
	}
	if len(s) > MaxStringBytes {
		d.fail("ValueError", "%s is %d bytes long; the limit is %d", where, len(s), MaxStringBytes)
	}
	return s
}

func (d *decoder) strings(key string) []string {
	items := d.list(key, "strings")
	var out []string
	for i, raw := range items {
		if d.err != nil {
			return nil
		}
		out = append(out, d.text(raw, key+"["+strconv.Itoa(i)+"]"))
	}
	return out
}

func (d *decoder) questions(key string) []Question {
	if raw := d.obj[key]; d.err == nil && strings.TrimSpace(string(raw)) == "{}" {
		return nil // iterating an empty dict, as SEAL does, gives no questions
	}
	items := d.list(key, "objects")
	var out []Question
	for i, raw := range items {
		if d.err != nil {
			return nil
		}
		where := key + "[" + strconv.Itoa(i) + "]"
		var q map[string]json.RawMessage
		if err := json.Unmarshal(raw, &q); err != nil || q == nil {
			d.fail("TypeError", "%s must be an object with \"question\" and \"answer\", got %s", where, pyType(raw))
			return nil
		}
		var fields [2]string
		for j, name := range []string{"question", "answer"} {
			v, ok := q[name]
			if !ok {
				d.fail("KeyError", "'%s' (%s has no %q)", name, where, name)
				return nil
			}
			fields[j] = d.text(v, where+"."+name)
		}
		out = append(out, Question{Question: fields[0], Answer: fields[1]})
	}
	return out
}

// targetModules reads target_modules ("all-linear" or a list of module
// names) and checks every name.
func (d *decoder) targetModules(key string) []string {
	if !d.present(key) || d.err != nil {
		return nil
	}
	if d.obj[key][0] == '"' {
		if s, _ := d.str(key); s != "all-linear" {
			d.fail("ValueError", "target_modules must be a list of module names or \"all-linear\", got %q", clip([]byte(s)))
		}
		return []string{"all-linear"}
	}
	items := d.list(key, "module names")
	if d.err == nil && len(items) == 0 {
		d.fail("ValueError", "target_modules is an empty list")
	}
	var out []string
	for i, raw := range items {
		if d.err != nil {
			return nil
		}
		name := d.text(raw, key+"["+strconv.Itoa(i)+"]")
		if _, ok := hf.ParseModule(name); d.err == nil && !ok {
			d.fail("ValueError", "target_modules[%d] = %q is not a linear module of the model (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)", i, clip([]byte(name)))
		}
		out = append(out, name)
	}
	return out
}

// isNumber reports whether a raw JSON value is a number.
func isNumber(raw json.RawMessage) bool {
	return len(raw) > 0 && (raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9')
}

// pyType names the Python type json.loads would produce for a raw value.
func pyType(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch c := raw[0]; {
	case c == '"':
		return "str " + clip(raw)
	case c == '{':
		return "dict"
	case c == '[':
		return "list"
	case c == 't' || c == 'f':
		return "bool " + string(raw)
	case c == 'n':
		return "None"
	case bytes.ContainsAny(raw, ".eE"):
		return "float " + clip(raw)
	default:
		return "int " + clip(raw)
	}
}

// clip shortens a value quoted in an error message.
func clip(b []byte) string {
	const n = 40
	if len(b) <= n {
		return string(b)
	}
	return strings.ToValidUTF8(string(b[:n]), "") + "..."
}

// decodeError turns a JSON decoding failure of the whole message into the
// error Python's json module would raise, with the position.
func decodeError(data []byte, err error) error {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		off := int(syn.Offset) - 1
		if off < 0 {
			off = 0
		}
		if off >= len(data) {
			return errorf("JSONDecodeError", "unexpected end of data at char %d: %v", len(data), err)
		}
		rest := data[off:]
		for _, lit := range []string{"NaN", "Infinity", "-Infinity"} {
			if bytes.HasPrefix(rest, []byte(lit)) {
				return errorf("ValueError", "%s at char %d is not a number JSON allows: every number must be finite", lit, off)
			}
		}
		return errorf("JSONDecodeError", "%v (char %d)", err, off)
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		trimmed := bytes.TrimSpace(data)
		return errorf("TypeError", "the request must be a JSON object, got %s", pyType(trimmed))
	}
	return errorf("JSONDecodeError", "%v", err)
}

// firstInvalidUTF8 returns the offset of the first byte that is not part of
// valid UTF-8.
func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return 0
}
