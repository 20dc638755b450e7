package server

import (
	"context"
	"fmt"
	"strings"
)

// Grader decides whether answers are correct.
type Grader interface {
	// Grade returns one verdict per item, in order. An error means the
	// answers could not be graded; it is never turned into a false verdict.
	Grade(ctx context.Context, items []GradeItem) ([]bool, error)
}

// GradeItem is one answer to grade.
type GradeItem struct {
	// Question is the question as asked (with its "Topic:" line).
	Question string
	// Gold is the reference answer.
	Gold string
	// Answer is the model's answer: the raw text, or the extracted final
	// answer for chain of thought. It is never blank: the cycle marks blank
	// answers wrong without grading them, as SEAL does.
	Answer string
}

// Grader names accepted by NewGrader.
var GraderNames = []string{"auto", "openai", "model", "contains"}

// NewGrader returns the grader called name and a sentence for the startup
// log saying which grader is active and why. getenv reads OPENAI_API_KEY and
// OPENAI_BASE_URL; model and instruct serve the "model" grader; graderModel
// is the OpenAI model name.
func NewGrader(name, graderModel string, model Model, instruct bool, getenv func(string) string) (Grader, string, error) {
	key, base := getenv("OPENAI_API_KEY"), getenv("OPENAI_BASE_URL")
	switch name {
	case "auto":
		if key != "" {
			g, desc, err := NewGrader("openai", graderModel, model, instruct, getenv)
			return g, desc + " (auto: OPENAI_API_KEY is set)", err
		}
		return ContainsGrader{}, "contains: the normalised gold answer must appear in the normalised answer (auto: OPENAI_API_KEY is not set)", nil
	case "openai":
		if key == "" && base == "" {
			return nil, "", fmt.Errorf("grader openai needs OPENAI_API_KEY (or OPENAI_BASE_URL for a local OpenAI-compatible server)")
		}
		g := &OpenAIGrader{BaseURL: base, APIKey: key, Model: graderModel}
		return g, fmt.Sprintf("openai: model %s at %s", graderModel, g.baseURL()), nil
	case "model":
		return &ModelGrader{Model: model, Instruct: instruct}, "model: the loaded base model judges with SEAL's grading prompt", nil
	case "contains":
		return ContainsGrader{}, "contains: the normalised gold answer must appear in the normalised answer", nil
	}
	return nil, "", fmt.Errorf("unknown grader %q: use one of %s", name, strings.Join(GraderNames, ", "))
}

// ContainsGrader marks an answer correct when the SQuAD-normalised gold
// answer appears in the SQuAD-normalised answer as a run of whole words.
// It needs no network and no model.
type ContainsGrader struct{}

// Grade implements Grader.
func (ContainsGrader) Grade(_ context.Context, items []GradeItem) ([]bool, error) {
	out := make([]bool, len(items))
	for i, it := range items {
		gold := normalizeAnswer(it.Gold)
		out[i] = gold != "" && strings.Contains(" "+normalizeAnswer(it.Answer)+" ", " "+gold+" ")
	}
	return out, nil
}

// ModelGrader asks the loaded base model (no adapter) SEAL's grading
// question, greedily, all answers in one batch, and applies SEAL's yes/no
// rule to the first non-blank line of the reply.
type ModelGrader struct {
	Model Model
	// Instruct wraps the prompt in a ChatML user turn and stops at <|im_end|>.
	Instruct bool
}

// modelGradeTokens bounds the grader model's reply: "yes" or "no" and a
// little slack for a leading space or newline.
const modelGradeTokens = 8

// Grade implements Grader.
func (g *ModelGrader) Grade(ctx context.Context, items []GradeItem) ([]bool, error) {
	prompts := make([]string, len(items))
	p := GenParams{TopP: 1, MaxTokens: modelGradeTokens}
	for i, it := range items {
		prompts[i] = gradePrompt(it.Question, it.Gold, it.Answer)
		if g.Instruct {
			prompts[i] = fill(chatMLGradeTemplate, prompts[i])
		}
	}
	if g.Instruct {
		p.Stop = []string{imEnd}
	}
	outs, err := g.Model.Generate(ctx, nil, prompts, p)
	if err != nil {
		return nil, fmt.Errorf("grading with the model: %w", err)
	}
	if len(outs) != len(prompts) {
		return nil, fmt.Errorf("grading with the model: %d completions for %d prompts", len(outs), len(prompts))
	}
	verdicts := make([]bool, len(items))
	for i, o := range outs {
		verdicts[i] = parseVerdict(firstLine(o.Text))
	}
	return verdicts, nil
}

// firstLine returns the first line of s that is not blank.
func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			return l
		}
	}
	return ""
}
