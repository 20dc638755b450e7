// Package hubtest serves model repositories over loopback HTTP the way the
// Hugging Face hub does, for tests: the API's revision info with its file
// list, resolve URLs answering HEAD with X-Repo-Commit, ETag, X-Linked-Etag
// and X-Linked-Size, .safetensors files redirected to a separate storage
// server, and range requests.
package hubtest

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path"
	"slices"
	"strings"
	"sync"
	"time"
)

// Server is a hub (its URL is the endpoint) and its storage server.
type Server struct {
	*httptest.Server                  // the hub: API and resolve URLs
	Storage          *httptest.Server // where .safetensors files are redirected
	Token            string           // when set, the hub answers 401 to requests without it
	CutAfter         map[string]int64 // file: cut the next transfer of it after this many bytes (once)
	Corrupt          map[string]bool  // file: serve it with a byte changed (its headers unchanged)
	Delay            time.Duration    // pause before each 4 KiB of file data
	mu               sync.Mutex
	repos            map[string]repo
	blobs            map[string][]byte // sha256 → data
	log              []Request
}

// Request is one request the servers saw.
type Request struct {
	Method, Path, Range string
	Auth                bool  // carried an Authorization header
	Sent                int64 // body bytes sent
}

type repo struct {
	commit string
	files  map[string][]byte
}

// NewServer starts the hub and its storage; Close stops both.
func NewServer() *Server {
	s := &Server{CutAfter: map[string]int64{}, Corrupt: map[string]bool{}, repos: map[string]repo{}, blobs: map[string][]byte{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.hub))
	s.Storage = httptest.NewServer(http.HandlerFunc(s.storage))
	return s
}

// Close stops both servers.
func (s *Server) Close() {
	s.Server.Close()
	s.Storage.Close()
}

// Add publishes files as repository id's main branch and returns the commit.
func (s *Server) Add(id string, files map[string][]byte) string {
	h := sha1.New()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(h, "%s\x00%x\x00", n, sha256.Sum256(files[n]))
	}
	commit := hex.EncodeToString(h.Sum(nil))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.repos[id] = repo{commit: commit, files: files}
	for _, d := range files {
		sum := sha256.Sum256(d)
		s.blobs[hex.EncodeToString(sum[:])] = d
	}
	return commit
}

// Commit returns the commit of repository id's main branch.
func (s *Server) Commit(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.repos[id].commit
}

// Log returns the requests seen so far.
func (s *Server) Log() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

func (s *Server) record(r *http.Request, sent int64) {
	s.mu.Lock()
	s.log = append(s.log, Request{Method: r.Method, Path: r.URL.Path, Range: r.Header.Get("Range"), Auth: r.Header.Get("Authorization") != "", Sent: sent})
	s.mu.Unlock()
}

func isLFS(name string) bool { return strings.HasSuffix(name, ".safetensors") }

// lookup finds repository ORG/NAME at rev (main or its commit).
func (s *Server) lookup(id, rev string) (repo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.repos[id]
	return r, ok && (rev == "main" || rev == r.commit)
}

func (s *Server) hub(w http.ResponseWriter, r *http.Request) {
	if s.Token != "" && r.Header.Get("Authorization") != "Bearer "+s.Token {
		s.record(r, 0)
		w.Header().Set("X-Error-Message", "Access to this model is restricted. You must have access to it and be authenticated to access it. Please log in.")
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	p := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	switch {
	case len(p) == 6 && p[0] == "api" && p[1] == "models" && p[4] == "revision":
		s.record(r, 0)
		s.info(w, p[2]+"/"+p[3], p[5])
	case len(p) >= 5 && p[2] == "resolve":
		s.record(r, 0)
		s.resolve(w, r, p[0]+"/"+p[1], p[3], strings.Join(p[4:], "/"))
	default:
		s.record(r, 0)
		http.NotFound(w, r)
	}
}

func (s *Server) info(w http.ResponseWriter, id, rev string) {
	rp, ok := s.lookup(id, rev)
	if !ok {
		w.Header().Set("X-Error-Message", "Repository not found")
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	type lfs struct {
		SHA256 string `json:"sha256"`
		Size   int    `json:"size"`
	}
	type sibling struct {
		Name string `json:"rfilename"`
		LFS  *lfs   `json:"lfs,omitempty"`
	}
	info := struct {
		ID       string    `json:"id"`
		SHA      string    `json:"sha"`
		Siblings []sibling `json:"siblings"`
	}{ID: id, SHA: rp.commit}
	for n, d := range rp.files {
		sb := sibling{Name: n}
		if isLFS(n) {
			sum := sha256.Sum256(d)
			sb.LFS = &lfs{SHA256: hex.EncodeToString(sum[:]), Size: len(d)}
		}
		info.Siblings = append(info.Siblings, sb)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(info)
}

// resolve answers as the hub does: small files from the hub itself with
// their git blob sha1 as ETag, .safetensors files by a 302 to storage with
// their sha256 as X-Linked-Etag.
func (s *Server) resolve(w http.ResponseWriter, r *http.Request, id, rev, name string) {
	rp, ok := s.lookup(id, rev)
	data, found := rp.files[name]
	if !ok || !found {
		w.Header().Set("X-Error-Message", "Entry not found")
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	w.Header().Set("X-Repo-Commit", rp.commit)
	if isLFS(name) {
		sum := sha256.Sum256(data)
		etag := hex.EncodeToString(sum[:])
		w.Header().Set("X-Linked-Etag", `"`+etag+`"`)
		w.Header().Set("X-Linked-Size", fmt.Sprint(len(data)))
		w.Header().Set("ETag", `"not-the-content-hash"`)
		http.Redirect(w, r, s.Storage.URL+"/blobs/"+etag+"?name="+name, http.StatusFound)
		return
	}
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(data))
	h.Write(data)
	w.Header().Set("ETag", `"`+hex.EncodeToString(h.Sum(nil))+`"`)
	s.serve(w, r, name, data)
}

func (s *Server) storage(w http.ResponseWriter, r *http.Request) {
	sha := path.Base(r.URL.Path)
	s.mu.Lock()
	data, ok := s.blobs[sha]
	s.mu.Unlock()
	if !ok || !strings.HasPrefix(r.URL.Path, "/blobs/") {
		s.record(r, 0)
		http.NotFound(w, r)
		return
	}
	w.Header().Set("ETag", `"`+sha+`"`)
	s.serve(w, r, r.URL.Query().Get("name"), data)
}

// serve writes data (or the range asked for), applying CutAfter, Corrupt
// and Delay, and records how many bytes went out.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, name string, data []byte) {
	s.mu.Lock()
	cut, doCut := s.CutAfter[name]
	if doCut && r.Method == http.MethodGet {
		delete(s.CutAfter, name)
	}
	if s.Corrupt[name] {
		data = slices.Clone(data)
		data[len(data)/2] ^= 0xff
	}
	s.mu.Unlock()
	cw := &countingWriter{ResponseWriter: w, cut: -1, delay: s.Delay}
	if doCut && r.Method == http.MethodGet {
		cw.cut = cut
	}
	defer func() { s.record(r, cw.n) }()
	http.ServeContent(cw, r, name, time.Time{}, strings.NewReader(string(data)))
}

// countingWriter counts the body bytes written and, when cut ≥ 0, aborts
// the connection after cut bytes, as a dropped connection would.
type countingWriter struct {
	http.ResponseWriter
	n     int64
	cut   int64
	delay time.Duration
}

func (c *countingWriter) Write(b []byte) (int, error) {
	written := 0
	for len(b) > 0 {
		chunk := b[:min(len(b), 4096)]
		if c.cut >= 0 && c.n+int64(len(chunk)) > c.cut {
			chunk = chunk[:c.cut-c.n]
			k, _ := c.ResponseWriter.Write(chunk)
			c.n += int64(k)
			c.ResponseWriter.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		if c.delay > 0 {
			time.Sleep(c.delay)
		}
		k, err := c.ResponseWriter.Write(chunk)
		c.n += int64(k)
		written += k
		if err != nil {
			return written, err
		}
		b = b[len(chunk):]
	}
	return written, nil
}
