package server

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// badRequest is a malformed request and the Python exception type of the
// error reply it must get.
type badRequest struct {
	name   string
	frames [][]byte
	want   string // error type, e.g. "ValueError"
}

func one(s string) [][]byte { return [][]byte{[]byte(s)} }

// withKey is a valid request with key set to the raw JSON value.
func withKey(key, value string) [][]byte {
	return one(`{"eval_questions": [{"question": "q?", "answer": "a"}], "train_sequences": ["fact"], "` + key + `": ` + value + `}`)
}

func withQuestion(q string) [][]byte {
	return one(`{"eval_questions": [` + q + `]}`)
}

var (
	tenMB      = `"` + strings.Repeat("x", 10<<20) + `"`
	tooMany    = "[" + strings.Repeat(`"a",`, MaxItems) + `"a"]`
	deepNested = `{"x": ` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`
)

// badRequests lists the kinds of malformed request every transport must
// answer with exactly one error reply.
var badRequests = []badRequest{
	{"not JSON", one("hello"), "JSONDecodeError"},
	{"empty message", one(""), "JSONDecodeError"},
	{"JSON array", one(`[{"eval_questions": []}]`), "TypeError"},
	{"JSON string", one(`"shutdown"`), "TypeError"},
	{"JSON number", one(`42`), "TypeError"},
	{"JSON null", one(`null`), "TypeError"},
	{"JSON bool", one(`true`), "TypeError"},
	{"truncated", one(`{"eval_questions": [`), "JSONDecodeError"},
	{"trailing garbage", one(`{} x`), "JSONDecodeError"},
	{"two objects", one(`{}{}`), "JSONDecodeError"},
	{"single quotes", one(`{'cmd': 'shutdown'}`), "JSONDecodeError"},
	{"byte order mark", one("\ufeff{}"), "JSONDecodeError"},
	{"nested too deep", one(deepNested), "JSONDecodeError"},
	{"invalid UTF-8", one("{\"x\": \"\xff\xfe\"}"), "UnicodeDecodeError"},
	{"binary frame", [][]byte{{0, 1, 2, 0x80, 0xfe, 0xff}}, "UnicodeDecodeError"},
	{"multipart", [][]byte{[]byte(`{}`), []byte(`{}`)}, "ValueError"},
	{"multipart binary", [][]byte{{0xff}, {1, 2}, {3}}, "ValueError"},
	{"NaN", withKey("finetune_lr", "NaN"), "ValueError"},
	{"Infinity", withKey("lora_alpha", "Infinity"), "ValueError"},
	{"-Infinity", withKey("lora_dropout", "-Infinity"), "ValueError"},
	{"rank as string", withKey("lora_rank", `"32"`), "TypeError"},
	{"rank 0", withKey("lora_rank", "0"), "ValueError"},
	{"rank negative", withKey("lora_rank", "-8"), "ValueError"},
	{"rank fractional", withKey("lora_rank", "2.5"), "ValueError"},
	{"rank overflows float", withKey("lora_rank", "1e400"), "ValueError"},
	{"rank huge integer", withKey("lora_rank", "99999999999999999999999"), "ValueError"},
	{"rank bool", withKey("lora_rank", "true"), "TypeError"},
	{"rank list", withKey("lora_rank", "[32]"), "TypeError"},
	{"alpha 0", withKey("lora_alpha", "0"), "ValueError"},
	{"alpha string", withKey("lora_alpha", `"64"`), "TypeError"},
	{"dropout 1", withKey("lora_dropout", "1"), "ValueError"},
	{"dropout negative", withKey("lora_dropout", "-0.1"), "ValueError"},
	{"epochs negative", withKey("finetune_epochs", "-1"), "ValueError"},
	{"epochs 0", withKey("finetune_epochs", "0"), "ValueError"},
	{"epochs huge", withKey("finetune_epochs", "1e12"), "ValueError"},
	{"lr 0", withKey("finetune_lr", "0"), "ValueError"},
	{"lr negative", withKey("finetune_lr", "-1e-3"), "ValueError"},
	{"lr string", withKey("finetune_lr", `"1e-3"`), "TypeError"},
	{"batch size 0", withKey("batch_size", "0"), "ValueError"},
	{"accumulation 0", withKey("gradient_accumulation_steps", "0"), "ValueError"},
	{"mask substring number", withKey("end_mask_substring", "5"), "TypeError"},
	{"seed string", withKey("seed", `"abc"`), "TypeError"},
	{"seed fractional", withKey("seed", "1.5"), "ValueError"},
	{"seed huge", withKey("seed", "1e30"), "ValueError"},
	{"padding unknown", withKey("padding", `"left"`), "ValueError"},
	{"padding number", withKey("padding", "3"), "TypeError"},
	{"lora_layers negative", withKey("lora_layers", "-1"), "ValueError"},
	{"target_modules bad string", withKey("target_modules", `"q_proj"`), "ValueError"},
	{"target_modules empty", withKey("target_modules", `[]`), "ValueError"},
	{"target_modules number", withKey("target_modules", `[1]`), "TypeError"},
	{"target_modules blank name", withKey("target_modules", `[""]`), "ValueError"},
	{"target_modules name with spaces", withKey("target_modules", `[" q_proj"]`), "ValueError"},
	{"target_modules object", withKey("target_modules", `{"q_proj": true}`), "TypeError"},
	{"sequences string", withKey("train_sequences", `"one fact"`), "TypeError"},
	{"sequences numbers", withKey("train_sequences", `[1, 2]`), "TypeError"},
	{"sequence null", withKey("train_sequences", `[null]`), "TypeError"},
	{"sequences object", withKey("train_sequences", `{"a": "b"}`), "TypeError"},
	{"sequence of 10 MB", withKey("train_sequences", "["+tenMB+"]"), "ValueError"},
	{"too many sequences", withKey("train_sequences", tooMany), "ValueError"},
	{"questions object", one(`{"eval_questions": {"question": "q", "answer": "a"}}`), "TypeError"},
	{"question as string", withQuestion(`"q?"`), "TypeError"},
	{"question null", withQuestion(`null`), "TypeError"},
	{"question missing", withQuestion(`{"answer": "a"}`), "KeyError"},
	{"answer missing", withQuestion(`{"question": "q?"}`), "KeyError"},
	{"question number", withQuestion(`{"question": 5, "answer": "a"}`), "TypeError"},
	{"answer list", withQuestion(`{"question": "q?", "answer": ["a"]}`), "TypeError"},
	{"question of 10 MB", withQuestion(`{"question": ` + tenMB + `, "answer": "a"}`), "ValueError"},
	{"second question bad", withQuestion(`{"question": "q?", "answer": "a"}, {"question": "q2?"}`), "KeyError"},
	{"questions null", one(`{"eval_questions": null}`), "TypeError"},
	{"questions non-empty object", one(`{"eval_questions": {"a": 1}}`), "TypeError"},
	{"rank null when training", withKey("lora_rank", "null"), "TypeError"},
	{"epochs null when training", withKey("finetune_epochs", "null"), "TypeError"},
	{"accumulation over the trainer's cap", withKey("gradient_accumulation_steps", "4097"), "ValueError"},
	{"batch over the trainer's cap", withKey("batch_size", "65536"), "ValueError"},
	{"target module unknown", withKey("target_modules", `["qkv_proj"]`), "ValueError"},
	{"target modules comma list", withKey("target_modules", `["q_proj,v_proj"]`), "ValueError"},
	{"unknown cmd", one(`{"cmd": "restart"}`), "ValueError"},
	{"cmd number", one(`{"cmd": 1}`), "TypeError"},
}

func TestBadRequests(t *testing.T) {
	if len(badRequests) < 55 {
		t.Fatalf("only %d kinds of bad request", len(badRequests))
	}
	for _, tt := range badRequests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRequest(tt.frames)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v, want a %s", err, tt.want)
			}
			if e.Type != tt.want || e.Msg == "" || len(e.Msg) > 400 {
				t.Errorf("error %q, want a short %s", err, tt.want)
			}
		})
	}
}

func TestBadRequestMessages(t *testing.T) {
	tests := []struct {
		frames [][]byte
		want   string
	}{
		{withKey("finetune_epochs", "-1"), "ValueError: finetune_epochs = -1 is out of range: it must be between 1 and 100000"},
		{withKey("lora_rank", "0"), "ValueError: lora_rank = 0 is out of range: it must be between 1 and 4096"},
		{withKey("lora_rank", `"32"`), `TypeError: lora_rank must be an integer, got str "32"`},
		{withKey("padding", `"left"`), `ValueError: unknown padding mode "left": use "max_length" or "longest"`},
		{withQuestion(`{"question": "q?"}`), `KeyError: 'answer' (eval_questions[0] has no "answer")`},
		{withKey("finetune_lr", "NaN"), "ValueError: NaN at char 100 is not a number JSON allows: every number must be finite"},
		{one(`[]`), "TypeError: the request must be a JSON object, got list"},
		{one("{\"a\": \"\xff\"}"), "UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff in position 7: the request must be UTF-8 JSON"},
	}
	for _, tt := range tests {
		_, err := ParseRequest(tt.frames)
		if err == nil || err.Error() != tt.want {
			t.Errorf("ParseRequest(%.60q) = %v, want %s", tt.frames[0], err, tt.want)
		}
	}
}

func TestRequestDefaults(t *testing.T) {
	want := &Request{BaselineEval: true, Train: TrainParams{Rank: 32, Alpha: 64, Epochs: 10, LR: 1e-3, BatchSize: 1, GradAccum: 1}}
	r, err := ParseRequest(one(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("ParseRequest({}) = %+v, want %+v", r, want)
	}
}

// TestRequestNulls: a key set to null is None, as SEAL's msg.get returns it.
func TestRequestNulls(t *testing.T) {
	cases := []struct {
		req   string
		check func(*Request) bool
	}{
		// None sequences: no training, so null hyperparameters are never read.
		{`{"train_sequences": null, "lora_rank": null, "finetune_lr": null}`, func(r *Request) bool { return !r.Training() }},
		{`{"end_mask_substring": null}`, func(r *Request) bool { return r.Train.EndMaskSubstring == "" }},
		// bool(None) is False, also for baseline_eval, whose default is True.
		{`{"baseline_eval": null}`, func(r *Request) bool { return !r.BaselineEval }},
		{`{"skip_training": null, "chain_of_thought": null}`, func(r *Request) bool { return !r.SkipTraining && !r.ChainOfThought }},
		// Skipped training reads no hyperparameter either.
		{`{"train_sequences": ["a"], "skip_training": true, "lora_rank": null}`, func(r *Request) bool { return !r.Training() }},
		// This server's own keys take their defaults.
		{`{"seed": null, "padding": null, "target_modules": null, "lora_layers": null, "cmd": null}`,
			func(r *Request) bool {
				return !r.HasSeed && r.Train.Padding == "" && r.Train.TargetModules == nil && !r.Shutdown
			}},
	}
	for _, c := range cases {
		r, err := ParseRequest(one(c.req))
		if err != nil || !c.check(r) {
			t.Errorf("ParseRequest(%s) = %+v, %v", c.req, r, err)
		}
	}
}

// TestRequestTruthiness: skip_training, baseline_eval and chain_of_thought
// are read with Python's bool(), as SEAL's server reads them.
func TestRequestTruthiness(t *testing.T) {
	cases := []struct {
		value string
		want  bool
	}{
		{"true", true}, {"false", false}, {"null", false}, {"0", false}, {"0.0", false}, {"-0.0", false},
		{"1", true}, {"-2.5", true}, {`""`, false}, {`"false"`, true}, {`"0"`, true}, {"[]", false},
		{"[0]", true}, {"{}", false}, {`{"a": 0}`, true},
	}
	for _, c := range cases {
		for _, key := range []string{"skip_training", "baseline_eval", "chain_of_thought"} {
			r, err := ParseRequest(one(`{"` + key + `": ` + c.value + `}`))
			if err != nil {
				t.Fatalf("%s = %s: %v", key, c.value, err)
			}
			got := map[string]bool{"skip_training": r.SkipTraining, "baseline_eval": r.BaselineEval, "chain_of_thought": r.ChainOfThought}[key]
			if got != c.want {
				t.Errorf("%s = %s read as %v, want %v", key, c.value, got, c.want)
			}
		}
	}
}

// TestRequestAcceptsWhatSEALAccepts: blank strings, an empty dict of
// questions, and unknown keys (listed for the log).
func TestRequestAcceptsWhatSEALAccepts(t *testing.T) {
	r, err := ParseRequest(one(`{"train_sequences": ["", "  \n"], "eval_questions": [{"question": "", "answer": " "}], "reward_mode": "ttt", "lora_rnak": 8}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.TrainSequences) != 2 || r.Questions[0] != (Question{"", " "}) || !reflect.DeepEqual(r.Unknown, []string{"lora_rnak", "reward_mode"}) {
		t.Errorf("parsed %+v", r)
	}
	r, err = ParseRequest(one(`{"eval_questions": {}}`))
	if err != nil || len(r.Questions) != 0 {
		t.Errorf("eval_questions {}: %+v, %v", r, err)
	}
}

func TestRequestAcceptsPythonClientValues(t *testing.T) {
	// What query_server.py sends: ints and floats as argparse made them,
	// an empty end_mask_substring, an integral float for an int key.
	r, err := ParseRequest(one(`{"train_sequences": ["a"], "eval_questions": [{"title": "T", "context": "C", "question": "Topic: T\nq?", "answer": "a", "extra": 1}],
		"lora_rank": 32, "lora_alpha": 64, "lora_dropout": 0, "finetune_epochs": 10.0, "finetune_lr": 0.001, "batch_size": 1,
		"gradient_accumulation_steps": 1, "end_mask_substring": "", "target_modules": "all-linear"}`))
	if err != nil {
		t.Fatal(err)
	}
	if r.Train.Epochs != 10 || r.Train.EndMaskSubstring != "" || !reflect.DeepEqual(r.Train.TargetModules, []string{"all-linear"}) ||
		r.Questions[0] != (Question{"Topic: T\nq?", "a"}) || !r.Training() {
		t.Errorf("parsed %+v", r)
	}
}

// TestExampleRequest keeps the README's example request valid.
func TestExampleRequest(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "examples", "request.json"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseRequest([][]byte{data})
	if err != nil || len(r.Questions) != 2 || !r.Training() || len(r.Unknown) != 0 {
		t.Errorf("examples/request.json: %+v, %v", r, err)
	}
}
