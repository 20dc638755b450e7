package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestRound4(t *testing.T) {
	tests := []struct {
		x    float64
		want string
	}{
		{0, "0.0"},
		{1, "1.0"},
		{1.0 / 3, "0.3333"},
		{2.0 / 3, "0.6667"},
		{1.0 / 32, "0.0312"}, // an exact tie rounds to even, as Python's round
		{3.0 / 32, "0.0938"},
		{-1.0 / 3, "-0.3333"},
		{0.5 - 0.5, "0.0"},
		{-0.0, "0.0"},
		{1.0 / 7, "0.1429"},
	}
	for _, tt := range tests {
		got, _ := round4(tt.x).MarshalJSON()
		if string(got) != tt.want {
			t.Errorf("round4(%v) = %s, want %s", tt.x, got, tt.want)
		}
	}
}

func TestGains(t *testing.T) {
	r := newReply([]string{"a", "b", "c", "d"}, []string{"a", "b", "c", "d"},
		[]bool{false, true, true, false}, []bool{true, false, true, false})
	if !reflect.DeepEqual(r.Gains, []int{1, -1, 0, 0}) || r.AdapterGain != 0 || r.BaselineAccuracy != 0.5 {
		t.Errorf("reply %+v", r)
	}
}

func TestFinalAnswer(t *testing.T) {
	tests := []struct{ text, want string }{
		{"", "idk"},
		{"Some reasoning.\nFinal answer: Paris", "Paris"},
		{"  FINAL ANSWER - Paris, France.\n\n", "Paris, France."},
		{"Final answer:Paris", "Paris"},
		{"reasoning\n  final   answer :  two\nlines  ", "two\nlines"},
		{"The final answer: in line", "idk"}, // the marker must start a line
		{"no marker at all", "idk"},
		{"Final answer: one\nFinal answer: two", "one\nFinal answer: two"},
	}
	for _, tt := range tests {
		if got := finalAnswer(tt.text); got != tt.want {
			t.Errorf("finalAnswer(%q) = %q, want %q", tt.text, got, tt.want)
		}
	}
}

func TestParseVerdict(t *testing.T) {
	tests := []struct {
		reply string
		want  bool
	}{
		{"yes", true}, {"Yes.", true}, {" YES\n", true}, {"no", false}, {"No, yes", false},
		{"yesterday", false}, {"", false}, {"I cannot tell", false}, {"Answer: yes!", true}, {"nope", false},
	}
	for _, tt := range tests {
		if got := parseVerdict(tt.reply); got != tt.want {
			t.Errorf("parseVerdict(%q) = %v, want %v", tt.reply, got, tt.want)
		}
	}
}

func TestContainsGrader(t *testing.T) {
	items := []GradeItem{
		{Gold: "Denver Broncos", Answer: "The Denver Broncos won."},
		{Gold: "the Copper Eye", Answer: "copper-eye"},
		{Gold: "Copper Eye", Answer: "It is called the Copper   Eye!"},
		{Gold: "1873", Answer: "In 18734."},
		{Gold: "Marrow", Answer: "Ilse Marrow"},
		{Gold: "Ilse Marrow", Answer: "Marrow"},
		{Gold: "The", Answer: "the"}, // normalises to nothing: never correct
		{Gold: "Perihelion", Answer: "PERIHELION"},
	}
	got, err := ContainsGrader{}.Grade(context.Background(), items)
	want := []bool{true, false, true, false, true, false, false, true}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("verdicts %v (%v), want %v", got, err, want)
	}
}

func TestNormalizeAnswer(t *testing.T) {
	if got := normalizeAnswer("  The Quick, brown fox's   AN apple\ta "); got != "quick brown foxs apple" {
		t.Errorf("normalizeAnswer = %q", got)
	}
}

func TestGradePrompt(t *testing.T) {
	got := gradePrompt("Q 100%?", "G", "  pred\n")
	want := "You are a grading assistant. Your job is to determine whether a student's answer correctly answers the question based solely on the provided gold answer. Do not use any outside knowledge. The student answer can include additional information, but it must at least fully convey the gold answer and must not contradict it. Ignore style, phrasing, or extra details that do not affect correctness. Respond ONLY with 'yes' or 'no'.\n\nQuestion: Q 100%?\nGold answer: G\nStudent answer: pred\nIs the student answer correct based solely on the gold answer? Respond 'yes' or 'no'."
	if got != want {
		t.Errorf("gradePrompt =\n%q\nwant\n%q", got, want)
	}
}

func TestNewGrader(t *testing.T) {
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	tests := []struct {
		name    string
		env     map[string]string
		want    string // type of grader, or "error"
		wantWhy string
	}{
		{"auto", nil, "server.ContainsGrader", "OPENAI_API_KEY is not set"},
		{"auto", map[string]string{"OPENAI_API_KEY": "k"}, "*server.OpenAIGrader", "OPENAI_API_KEY is set"},
		{"openai", nil, "error", ""},
		{"openai", map[string]string{"OPENAI_BASE_URL": "http://127.0.0.1:8080/v1"}, "*server.OpenAIGrader", "http://127.0.0.1:8080/v1"},
		{"model", nil, "*server.ModelGrader", "base model"},
		{"contains", nil, "server.ContainsGrader", "normalised"},
		{"exact", nil, "error", ""},
	}
	for _, tt := range tests {
		g, why, err := NewGrader(tt.name, "gpt-4.1", &fakeModel{}, false, env(tt.env))
		got := fmt.Sprintf("%T", g)
		if err != nil {
			got = "error"
		}
		if got != tt.want || !strings.Contains(why, tt.wantWhy) {
			t.Errorf("NewGrader(%s, %v) = %s %q (%v), want %s %q", tt.name, tt.env, got, why, err, tt.want, tt.wantWhy)
		}
	}
}

// fakeOpenAI is an OpenAI-compatible test server. It answers "yes" when the
// student answer contains the gold answer.
type fakeOpenAI struct {
	responses  bool  // serve /responses (else 404)
	failFirst  int32 // fail this many calls with 500 before answering
	status     int   // when set, every call fails with it
	calls      atomic.Int32
	inFlight   atomic.Int32
	maxFlight  atomic.Int32
	mu         sync.Mutex
	paths      []string
	authHeader string
}

func (f *fakeOpenAI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for {
		m := f.maxFlight.Load()
		if n <= m || f.maxFlight.CompareAndSwap(m, n) {
			break
		}
	}
	time.Sleep(2 * time.Millisecond) // let concurrent calls overlap
	f.mu.Lock()
	f.paths = append(f.paths, r.URL.Path)
	f.authHeader = r.Header.Get("Authorization")
	f.mu.Unlock()
	call := f.calls.Add(1)
	body, _ := io.ReadAll(r.Body)
	var req struct {
		Model    string `json:"model"`
		Input    string `json:"input"`
		Messages []struct{ Role, Content string }
	}
	json.Unmarshal(body, &req)
	switch {
	case f.status != 0:
		http.Error(w, `{"error": "nope"}`, f.status)
		return
	case call <= f.failFirst:
		http.Error(w, `{"error": "overloaded"}`, http.StatusInternalServerError)
		return
	}
	prompt := req.Input
	if len(req.Messages) == 1 {
		prompt = req.Messages[0].Content
	}
	verdict := "no"
	gold, pred := between(prompt, "Gold answer: ", "\n"), between(prompt, "Student answer: ", "\n")
	if req.Model == "gpt-4.1" && gold != "" && strings.Contains(pred, gold) {
		verdict = "Yes."
	}
	switch r.URL.Path {
	case "/v1/responses":
		if !f.responses {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, `{"id": "resp_1", "output": [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": %q}]}]}`, verdict)
	case "/v1/chat/completions":
		fmt.Fprintf(w, `{"choices": [{"index": 0, "message": {"role": "assistant", "content": %q}}]}`, verdict)
	default:
		http.NotFound(w, r)
	}
}

func gradeItems(n int) ([]GradeItem, []bool) {
	items := make([]GradeItem, n)
	want := make([]bool, n)
	for i := range items {
		items[i] = GradeItem{Question: fmt.Sprintf("q%d?", i), Gold: "gold", Answer: "wrong"}
		if i%3 == 0 {
			items[i].Answer, want[i] = "the gold answer", true
		}
	}
	return items, want
}

func TestOpenAIGrader(t *testing.T) {
	tests := []struct {
		name      string
		fake      *fakeOpenAI
		items     int
		responses int // most calls to the Responses API
		waits     int // backoff waits
		wantErr   string
	}{
		{"responses API", &fakeOpenAI{responses: true}, 10, 10, 0, ""},
		// The Responses API is given up at its first 404; up to Concurrency
		// calls may have been sent by then.
		{"chat fallback", &fakeOpenAI{}, 10, 3, 0, ""},
		// Attempt 1: responses and chat fail; attempt 2: responses fails,
		// chat answers.
		{"retries", &fakeOpenAI{responses: true, failFirst: 3}, 1, 2, 1, ""},
		{"gives up", &fakeOpenAI{status: http.StatusInternalServerError}, 1, 3, 2, "HTTP 500"},
		{"bad key", &fakeOpenAI{status: http.StatusUnauthorized}, 1, 1, 0, "HTTP 401"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.fake
			srv := httptest.NewServer(f)
			defer srv.Close()
			var waits []time.Duration
			var mu sync.Mutex
			g := &OpenAIGrader{BaseURL: srv.URL + "/v1/", APIKey: "sk-test", Model: "gpt-4.1", Concurrency: 3,
				Backoff: func(n int) time.Duration {
					mu.Lock()
					waits = append(waits, time.Duration(n)*time.Millisecond)
					mu.Unlock()
					return time.Millisecond
				}}
			items, want := gradeItems(tt.items)
			got, err := g.Grade(context.Background(), items)
			responses := 0
			for _, p := range f.paths {
				if p == "/v1/responses" {
					responses++
				}
			}
			if responses > tt.responses || len(waits) != tt.waits {
				t.Errorf("%d Responses API calls, %d backoff waits, want at most %d and %d (%v)", responses, len(waits), tt.responses, tt.waits, f.paths)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				wantCalls := int32(2 * openAIAttempts) // responses and chat per attempt
				if tt.fake.status == http.StatusUnauthorized {
					wantCalls = 1 // a bad key is not retried
				}
				if c := f.calls.Load(); c != wantCalls {
					t.Errorf("%d calls, want %d", c, wantCalls)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("verdicts %v (%v), want %v", got, err, want)
			}
			if m := f.maxFlight.Load(); m > 3 {
				t.Errorf("%d calls in flight, want at most 3", m)
			}
			if f.authHeader != "Bearer sk-test" {
				t.Errorf("Authorization %q", f.authHeader)
			}
		})
	}
}

// TestOpenAIGraderErrorCountsWrong: an OpenAI grader that keeps failing
// counts the answers wrong, as SEAL's grade_with_gpt4 does, and the request
// still gets a normal reply.
func TestOpenAIGraderErrorCountsWrong(t *testing.T) {
	srv := httptest.NewServer(&fakeOpenAI{status: http.StatusBadGateway})
	defer srv.Close()
	h, _ := newHandler(t)
	h.Grader = &OpenAIGrader{BaseURL: srv.URL + "/v1", Model: "gpt-4.1", Backoff: func(int) time.Duration { return 0 }}
	out := handle(t, h, twoFacts+`}`)
	if _, failed := out["error"]; failed || out["adapter_accuracy"] != 0.0 || !reflect.DeepEqual(out["adapter_correct"], []any{false, false}) {
		t.Errorf("reply %v, want every answer counted wrong", out)
	}
}
