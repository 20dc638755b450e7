package server

import (
	"container/list"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"sync"
)

// BaselineCache keeps the graded baseline answers of recent requests, so
// that the repeats SEAL's outer loop sends (k completions times eval_times
// requests per article, every one with the same questions) answer the
// baseline once. An entry is keyed by everything that determines it (see
// baselineKey); only deterministic decoding is cached, so a reply built from
// an entry is byte for byte the reply the model would have produced. It is
// least-recently-used, bounded in entries and in bytes, and safe for
// concurrent use.
type BaselineCache struct {
	maxEntries int
	maxBytes   int64

	mu    sync.Mutex
	bytes int64
	order *list.List // of *baselineEntry, most recently used first
	index map[[sha256.Size]byte]*list.Element
}

// baselineEntry is one request's graded baseline.
type baselineEntry struct {
	key   [sha256.Size]byte
	texts []string
	ok    []bool
	size  int64
}

// Defaults of the baseline cache (--baseline_cache): a thousand entries
// hold every repeat of a run of query_server.py, which finishes one
// article's requests before the next; 256 MiB bounds it whatever the
// requests (a 1000-question CPT.py request of 64-token answers takes about
// half a MiB).
const (
	DefaultBaselineEntries = 1024
	DefaultBaselineBytes   = 256 << 20
)

// NewBaselineCache returns a cache of at most maxEntries entries and
// maxBytes bytes of answers (an entry larger than maxBytes is not kept).
func NewBaselineCache(maxEntries int, maxBytes int64) *BaselineCache {
	return &BaselineCache{maxEntries: maxEntries, maxBytes: maxBytes, order: list.New(), index: map[[sha256.Size]byte]*list.Element{}}
}

// Len returns the number of entries and their bytes.
func (c *BaselineCache) Len() (entries int, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len(), c.bytes
}

// get returns the entry of key, marking it recently used.
func (c *BaselineCache) get(key [sha256.Size]byte) (texts []string, ok []bool, found bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, found := c.index[key]
	if !found {
		return nil, nil, false
	}
	c.order.MoveToFront(el)
	e := el.Value.(*baselineEntry)
	return e.texts, e.ok, true
}

// put stores copies of texts and ok under key and evicts the least recently
// used entries beyond the bounds.
func (c *BaselineCache) put(key [sha256.Size]byte, texts []string, ok []bool) {
	e := &baselineEntry{key: key, texts: append([]string(nil), texts...), ok: append([]bool(nil), ok...)}
	// The answers, their string headers and verdicts, the key and the
	// bookkeeping of the list and the map.
	e.size = int64(len(ok)) + int64(len(texts))*16 + sha256.Size + 128
	for _, t := range texts {
		e.size += int64(len(t))
	}
	if e.size > c.maxBytes || c.maxEntries <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, dup := c.index[key]; dup {
		c.order.MoveToFront(el)
		return
	}
	c.index[key] = c.order.PushFront(e)
	c.bytes += e.size
	for c.order.Len() > c.maxEntries || c.bytes > c.maxBytes {
		old := c.order.Remove(c.order.Back()).(*baselineEntry)
		delete(c.index, old.key)
		c.bytes -= old.size
	}
}

// Identifier is implemented by a Model or Grader that can name itself and
// every setting that changes its output; the baseline cache keys entries by
// it. A Model or Grader without it is identified by its type and address,
// which is as good within one process.
type Identifier interface {
	// Identity names the model or grader and its output-changing settings.
	Identity() string
}

// identity returns v's Identifier string or its type and address.
func identity(v any) string {
	if id, ok := v.(Identifier); ok {
		return id.Identity()
	}
	return fmt.Sprintf("%T@%p", v, v)
}

// Identity implements Identifier: the grader compares text, nothing else.
func (ContainsGrader) Identity() string { return "contains" }

// Identity implements Identifier: the grading model and its template.
func (g *ModelGrader) Identity() string {
	return fmt.Sprintf("model(%s, instruct=%t)", identity(g.Model), g.Instruct)
}

// Identity implements Identifier: the endpoint and the grading model.
func (g *OpenAIGrader) Identity() string {
	return fmt.Sprintf("openai(%s, %s)", g.baseURL(), g.Model)
}

// Identity implements Identifier: the model's name and the address of its
// loaded weights (two loads of one name in a process are kept apart).
func (e *Engine) Identity() string { return fmt.Sprintf("engine(%s)@%p", e.name, e.m) }

// baselineKey returns the cache key of a request's baseline, and false when
// the baseline is not deterministic (sampling without a request seed) and
// must not be cached. The key covers the model, the grader, the generation
// settings (the sampling seed when sampling), chain of thought (which
// changes the prompt and what is graded), every prompt (which holds the
// question and the template) and every gold answer.
func baselineKey(model, grader string, gen GenParams, req *Request, prompts []string) ([sha256.Size]byte, bool) {
	if gen.Temperature != 0 && !req.HasSeed {
		return [sha256.Size]byte{}, false
	}
	h := sha256.New()
	var num [8]byte
	writeInt := func(x uint64) {
		binary.LittleEndian.PutUint64(num[:], x)
		h.Write(num[:])
	}
	// Every string is length-prefixed, so no two lists of strings hash alike.
	writeStr := func(s string) {
		writeInt(uint64(len(s)))
		h.Write([]byte(s))
	}
	writeStr(model)
	writeStr(grader)
	writeInt(math.Float64bits(gen.Temperature))
	writeInt(math.Float64bits(gen.TopP))
	writeInt(uint64(gen.MaxTokens))
	writeInt(uint64(len(gen.Stop)))
	for _, s := range gen.Stop {
		writeStr(s)
	}
	if gen.Temperature != 0 {
		writeInt(uint64(gen.Seed))
	}
	if req.ChainOfThought {
		writeInt(1)
	} else {
		writeInt(0)
	}
	writeInt(uint64(len(prompts)))
	for i, p := range prompts {
		writeStr(p)
		writeStr(req.Questions[i].Question)
		writeStr(req.Questions[i].Answer)
	}
	var key [sha256.Size]byte
	h.Sum(key[:0])
	return key, true
}
