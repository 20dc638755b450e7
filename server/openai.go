package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// OpenAIGrader grades with an OpenAI-compatible server (OpenAI itself, or a
// local llama.cpp, Ollama or mlx_lm server): SEAL's grading prompt, one call
// per answer, through the Responses API and, when that fails, chat
// completions. Each answer gets up to three attempts with backoff; at most
// Concurrency calls are in flight.
type OpenAIGrader struct {
	// BaseURL is the API root, e.g. "https://api.openai.com/v1" (the default).
	BaseURL string
	// APIKey is sent as a bearer token when not empty.
	APIKey string
	// Model is the grading model, e.g. "gpt-4.1".
	Model string
	// Client is the HTTP client; nil means one with a two-minute timeout.
	Client *http.Client
	// Concurrency bounds the calls in flight; 0 means 8.
	Concurrency int
	// Backoff is the wait before attempt n (n = 1, 2); nil means 1.5 s * n,
	// as SEAL.
	Backoff func(n int) time.Duration

	// chatOnly is set once the server answered that it has no Responses API.
	chatOnly atomic.Bool
}

// openAIAttempts is the number of attempts per answer, as in SEAL.
const openAIAttempts = 3

func (g *OpenAIGrader) baseURL() string {
	if g.BaseURL == "" {
		return "https://api.openai.com/v1"
	}
	return strings.TrimRight(g.BaseURL, "/")
}

// Grade implements Grader. The first answer that cannot be graded after all
// attempts fails the whole call.
func (g *OpenAIGrader) Grade(ctx context.Context, items []GradeItem) ([]bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := g.Concurrency
	if n <= 0 {
		n = 8
	}
	verdicts := make([]bool, len(items))
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
		slots    = make(chan struct{}, n)
	)
	for i, it := range items {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			v, err := g.grade(ctx, gradePrompt(it.Question, it.Gold, it.Answer))
			if err != nil {
				once.Do(func() { firstErr = fmt.Errorf("grading answer %d: %w", i, err); cancel() })
				return
			}
			verdicts[i] = v
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return verdicts, nil
}

// grade asks for one verdict, retrying with backoff.
func (g *OpenAIGrader) grade(ctx context.Context, prompt string) (bool, error) {
	var err error
	for attempt := 0; attempt < openAIAttempts; attempt++ {
		if attempt > 0 {
			if werr := sleep(ctx, g.backoff(attempt)); werr != nil {
				return false, werr
			}
		}
		var text string
		text, err = g.ask(ctx, prompt)
		if err == nil {
			return parseVerdict(text), nil
		}
		var he *httpError
		if ctx.Err() != nil || errors.As(err, &he) && (he.status == http.StatusUnauthorized || he.status == http.StatusForbidden) {
			break // retrying cannot help
		}
	}
	return false, fmt.Errorf("%s at %s: %w", g.Model, g.baseURL(), err)
}

func (g *OpenAIGrader) backoff(n int) time.Duration {
	if g.Backoff != nil {
		return g.Backoff(n)
	}
	return time.Duration(n) * 1500 * time.Millisecond
}

// ask makes one attempt: the Responses API, then chat completions if that
// failed. A Responses endpoint that does not exist is not tried again.
func (g *OpenAIGrader) ask(ctx context.Context, prompt string) (string, error) {
	if g.chatOnly.Load() {
		return g.chat(ctx, prompt)
	}
	text, err := g.responses(ctx, prompt)
	if err == nil {
		return text, nil
	}
	var he *httpError
	if errors.As(err, &he) {
		switch he.status {
		case http.StatusUnauthorized, http.StatusForbidden:
			return "", err
		case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented:
			g.chatOnly.Store(true)
		}
	}
	text, cerr := g.chat(ctx, prompt)
	if cerr != nil {
		return "", fmt.Errorf("responses API: %v; chat completions: %w", err, cerr)
	}
	return text, nil
}

// responses calls POST /responses and returns the output text.
func (g *OpenAIGrader) responses(ctx context.Context, prompt string) (string, error) {
	var out struct {
		OutputText *string `json:"output_text"`
		Output     []struct {
			Content []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"content"`
		} `json:"output"`
	}
	if err := g.post(ctx, "/responses", map[string]any{"model": g.Model, "input": prompt}, &out); err != nil {
		return "", err
	}
	if out.OutputText != nil {
		return *out.OutputText, nil
	}
	var b strings.Builder
	found := false
	for _, o := range out.Output {
		for _, c := range o.Content {
			if c.Type == "output_text" {
				b.WriteString(c.Text)
				found = true
			}
		}
	}
	if !found {
		return "", errors.New("responses API: the reply has no output text")
	}
	return b.String(), nil
}

// chat calls POST /chat/completions and returns the first choice's text.
func (g *OpenAIGrader) chat(ctx context.Context, prompt string) (string, error) {
	var out struct {
		Choices []struct {
			Message struct {
				Content *string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
	}
	body := map[string]any{
		"model":    g.Model,
		"messages": []map[string]string{{"role": "user", "content": prompt}},
	}
	if err := g.post(ctx, "/chat/completions", body, &out); err != nil {
		return "", err
	}
	if len(out.Choices) == 0 || out.Choices[0].Message.Content == nil {
		return "", errors.New("chat completions: the reply has no message content")
	}
	return *out.Choices[0].Message.Content, nil
}

// httpError is a reply with a status other than 2xx.
type httpError struct {
	status int
	body   string
}

func (e *httpError) Error() string {
	return fmt.Sprintf("HTTP %d: %s", e.status, e.body)
}

// post sends body as JSON to path and decodes a 2xx reply into out.
func (g *OpenAIGrader) post(ctx context.Context, path string, body, out any) error {
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.baseURL()+path, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if g.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+g.APIKey)
	}
	client := g.Client
	if client == nil {
		client = defaultHTTPClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return &httpError{status: resp.StatusCode, body: clip(bytes.TrimSpace(raw))}
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decoding the reply of %s: %w", path, err)
	}
	return nil
}

var defaultHTTPClient = &http.Client{Timeout: 2 * time.Minute}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
