package tokenizer

import (
	"sync"
)

// bpe is a byte-level BPE model. It works on raw bytes: the vocabulary's
// byte-level strings are mapped back to bytes once, at load time.
type bpe struct {
	byteID       [256]int32           // id of each single-byte token
	merges       map[uint64]mergeRule // pair of ids (left<<32 | right) -> rule
	words        map[string]int32     // whole-word lookup, raw bytes -> id (with ignoreMerges)
	ignoreMerges bool                 // a word that is itself a token is not merged (Llama 3)

	mu    sync.RWMutex       // guards cache
	cache map[string][]int32 // raw word -> its ids
}

// mergeRule is one merge: its priority (lower first) and the id it makes.
type mergeRule struct {
	rank int32
	id   int32
}

// Words longer than maxCachedWord bytes are not cached, and the cache is
// emptied when it reaches maxCacheEntries, which bounds its memory to a few
// MB whatever the text.
const (
	maxCachedWord   = 128
	maxCacheEntries = 1 << 14
)

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// encode appends the ids of one pre-tokenized word (raw bytes) to dst.
func (m *bpe) encode(word string, dst []int) []int {
	if len(word) == 0 {
		return dst
	}
	if len(word) == 1 || len(m.merges) == 0 {
		for i := 0; i < len(word); i++ {
			dst = append(dst, int(m.byteID[word[i]]))
		}
		return dst
	}
	if m.ignoreMerges {
		if id, ok := m.words[word]; ok {
			return append(dst, int(id))
		}
	}
	if len(word) <= maxCachedWord {
		m.mu.RLock()
		ids, ok := m.cache[word]
		m.mu.RUnlock()
		if ok {
			for _, id := range ids {
				dst = append(dst, int(id))
			}
			return dst
		}
	}
	ids := m.merge(word)
	if len(word) <= maxCachedWord {
		m.mu.Lock()
		if len(m.cache) >= maxCacheEntries || m.cache == nil {
			m.cache = make(map[string][]int32)
		}
		m.cache[word] = ids
		m.mu.Unlock()
	}
	for _, id := range ids {
		dst = append(dst, int(id))
	}
	return dst
}

// merge applies the merges to the bytes of word, lowest rank first and, among
// equal ranks, leftmost first, as Hugging Face's BPE does. A heap of
// candidate merges keeps this O(n log n) in the word's length.
func (m *bpe) merge(word string) []int32 {
	n := len(word)
	ids := make([]int32, n)
	next := make([]int32, n) // index of the next live symbol, -1 at the end
	prev := make([]int32, n) // index of the previous live symbol, -1 at the start
	for i := 0; i < n; i++ {
		ids[i] = m.byteID[word[i]]
		next[i] = int32(i + 1)
		prev[i] = int32(i - 1)
	}
	next[n-1] = -1
	h := mergeHeap(make([]candidate, 0, n))
	for i := 0; i+1 < n; i++ {
		if r, ok := m.merges[pairKey(ids[i], ids[i+1])]; ok {
			h.push(candidate{rank: r.rank, pos: int32(i)})
		}
	}
	for len(h) > 0 {
		c := h.pop()
		nx := next[c.pos]
		if ids[c.pos] < 0 || nx < 0 {
			continue // the symbol was merged into its left neighbour, or is last
		}
		r, ok := m.merges[pairKey(ids[c.pos], ids[nx])]
		if !ok || r.rank != c.rank {
			continue // stale: a neighbour changed since this was queued
		}
		ids[c.pos] = r.id
		ids[nx] = -1
		next[c.pos] = next[nx]
		if next[nx] >= 0 {
			prev[next[nx]] = c.pos
		}
		if p := prev[c.pos]; p >= 0 {
			if r, ok := m.merges[pairKey(ids[p], ids[c.pos])]; ok {
				h.push(candidate{rank: r.rank, pos: p})
			}
		}
		if q := next[c.pos]; q >= 0 {
			if r, ok := m.merges[pairKey(ids[c.pos], ids[q])]; ok {
				h.push(candidate{rank: r.rank, pos: c.pos})
			}
		}
	}
	out := ids[:0]
	for i := int32(0); i >= 0; i = next[i] {
		out = append(out, ids[i])
	}
	return out
}

// candidate is a queued merge of the symbol at pos with the one after it.
type candidate struct {
	rank, pos int32
}

// mergeHeap is a binary min-heap of candidates by (rank, pos).
type mergeHeap []candidate

func (c candidate) less(d candidate) bool {
	return c.rank < d.rank || c.rank == d.rank && c.pos < d.pos
}

func (h *mergeHeap) push(c candidate) {
	*h = append(*h, c)
	s := *h
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !s[i].less(s[p]) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *mergeHeap) pop() candidate {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s = s[:last]
	i := 0
	for {
		l := 2*i + 1
		if l >= len(s) {
			break
		}
		m := l
		if r := l + 1; r < len(s) && s[r].less(s[l]) {
			m = r
		}
		if !s[m].less(s[i]) {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}
