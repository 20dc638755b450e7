package server

import (
	"regexp"
	"strings"
)

// The answer and grading prompts of SEAL's knowledge-incorporation code.
// They are part of the protocol: a model fine-tuned by SEAL's outer loop
// expects exactly these strings.
const (
	answerTemplate = "Let's answer a question directly and concisely.\nQuestion: %s\nAnswer:\n"

	chainOfThoughtTemplate = "Let's think step by step and then answer the question directly and concisely. " +
		"Let's first give reasoning under \"Reasoning:\" and then the final answer under \"Final answer:\".\n" +
		"Question: %s\nReasoning:"

	chatMLAnswerTemplate = "<|im_start|>system\nYou are an assistant to answer a question directly and concisely.<|im_end|>\n" +
		"<|im_start|>user\n%s<|im_end|>\n<|im_start|>assistant\n"

	chatMLGradeTemplate = "<|im_start|>user\n%s<|im_end|>\n<|im_start|>assistant\n"

	gradeTemplate = "You are a grading assistant. Your job is to determine whether a student's answer correctly answers the question based solely on the provided gold answer. " +
		"Do not use any outside knowledge. The student answer can include additional information, but it must at least fully convey the gold answer and must not contradict it. " +
		"Ignore style, phrasing, or extra details that do not affect correctness. Respond ONLY with 'yes' or 'no'.\n\n" +
		"Question: %s\nGold answer: %s\nStudent answer: %s\n" +
		"Is the student answer correct based solely on the gold answer? Respond 'yes' or 'no'."

	// imEnd ends a ChatML turn; generation for an instruct model stops there.
	imEnd = "<|im_end|>"
)

// answerPrompt is the prompt that asks the model one question. The chain of
// thought prompt takes precedence over the instruct template, as in SEAL.
func answerPrompt(question string, instruct, chainOfThought bool) string {
	switch {
	case chainOfThought:
		return fill(chainOfThoughtTemplate, question)
	case instruct:
		return fill(chatMLAnswerTemplate, question)
	default:
		return fill(answerTemplate, question)
	}
}

// gradePrompt is SEAL's grading prompt for one answer; pred is stripped of
// surrounding whitespace.
func gradePrompt(question, gold, pred string) string {
	return fill(gradeTemplate, question, gold, strings.TrimSpace(pred))
}

// fill substitutes args for the %s verbs of tmpl in order. Unlike
// fmt.Sprintf it leaves a '%' inside args or the template's text alone.
func fill(tmpl string, args ...string) string {
	var b strings.Builder
	for _, a := range args {
		i := strings.Index(tmpl, "%s")
		b.WriteString(tmpl[:i])
		b.WriteString(a)
		tmpl = tmpl[i+2:]
	}
	b.WriteString(tmpl)
	return b.String()
}

var finalAnswerRE = regexp.MustCompile(`(?is)(?:\A|\n)\s*final\s*answer\s*[:\-]\s*(.*)`)

// finalAnswer extracts what follows the first "Final answer:" marker (any
// case, ':' or '-') of a chain-of-thought completion, stripped; "idk" when
// there is no marker, so that the answer grades as wrong.
func finalAnswer(text string) string {
	m := finalAnswerRE.FindStringSubmatch(strings.TrimSpace(text))
	if m == nil {
		return "idk"
	}
	return strings.TrimSpace(m[1])
}

var (
	yesRE = regexp.MustCompile(`(?i)\byes\b`)
	noRE  = regexp.MustCompile(`(?i)\bno\b`)
)

// parseVerdict is SEAL's rule: a grader's reply means "correct" when it
// contains the word yes and not the word no.
func parseVerdict(reply string) bool {
	return yesRE.MatchString(reply) && !noRE.MatchString(reply)
}

var articlesRE = regexp.MustCompile(`\b(a|an|the)\b`)

// normalizeAnswer is the SQuAD answer normalisation: lower case, ASCII
// punctuation removed, the articles a/an/the removed, whitespace collapsed
// to single spaces.
func normalizeAnswer(s string) string {
	s = strings.ToLower(s)
	s = strings.Map(func(r rune) rune {
		if r < 128 && strings.ContainsRune("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", r) {
			return -1
		}
		return r
	}, s)
	s = articlesRE.ReplaceAllString(s, " ")
	return strings.Join(strings.Fields(s), " ")
}
