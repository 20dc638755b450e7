package hf

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
)

// DefaultEndpoint is the Hugging Face hub, used unless HF_ENDPOINT names a mirror.
const DefaultEndpoint = "https://huggingface.co"

// Hub fetches models from a Hugging Face hub into the local hub cache, in the
// layout huggingface_hub and transformers use (blobs named by the hub's ETag,
// refs naming commits, snapshots of relative links), so each program finds
// the other's files. Only the files this program reads are fetched: config,
// generation config, tokenizer files and the safetensors weights.
type Hub struct {
	Endpoint string       // the hub's base URL, without a trailing slash
	Token    string       // a bearer token for gated and private models; "" for none
	Cache    string       // the hub cache folder (holds models--ORG--NAME)
	Offline  bool         // never contact the hub; use only the cache
	Client   *http.Client // nil means one with no overall timeout
	Progress io.Writer    // where download progress goes; nil for none
}

// NewHub returns a Hub set from the environment as huggingface_hub reads it:
// HF_ENDPOINT, HF_TOKEN (else the token file at HF_TOKEN_PATH, else
// HF_HOME/token, the one `huggingface-cli login` writes), HF_HUB_CACHE (else
// HF_HOME/hub, else XDG_CACHE_HOME/huggingface/hub, else
// ~/.cache/huggingface/hub) and HF_HUB_OFFLINE.
func NewHub() *Hub {
	h := &Hub{Endpoint: DefaultEndpoint, Cache: hubCache(), Offline: envTrue("HF_HUB_OFFLINE")}
	if e := os.Getenv("HF_ENDPOINT"); e != "" {
		h.Endpoint = strings.TrimRight(e, "/")
	}
	h.Token = strings.TrimSpace(os.Getenv("HF_TOKEN"))
	if h.Token == "" {
		p := os.Getenv("HF_TOKEN_PATH")
		if p == "" {
			p = filepath.Join(hfHome(), "token")
		}
		if b, err := os.ReadFile(p); err == nil {
			h.Token = strings.TrimSpace(string(b))
		}
	}
	return h
}

// envTrue reports whether the variable is set to 1, true, yes or on, the
// values huggingface_hub takes as true.
func envTrue(name string) bool {
	switch strings.ToLower(strings.TrimSpace(os.Getenv(name))) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

// ModelID is a model repository on the hub at one revision.
type ModelID struct {
	Repo     string // ORG/NAME
	Revision string // a branch, a tag or a commit hash
}

// String writes id as ORG/NAME@REVISION.
func (id ModelID) String() string { return id.Repo + "@" + id.Revision }

var (
	repoPart = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	hexHash  = regexp.MustCompile(`^[0-9a-f]{40}$|^[0-9a-f]{64}$`)
)

// ParseModelID reads "ORG/NAME" or "ORG/NAME@REVISION"; the revision
// defaults to main.
func ParseModelID(s string) (ModelID, error) {
	repo, rev, found := strings.Cut(s, "@")
	if !found {
		rev = "main"
	}
	parts := strings.Split(repo, "/")
	if len(parts) != 2 || !repoPart.MatchString(parts[0]) || !repoPart.MatchString(parts[1]) || strings.Contains(repo, "..") {
		return ModelID{}, fmt.Errorf("model %q: not a Hugging Face id of the form ORG/NAME[@REVISION]", s)
	}
	if rev == "" || strings.Contains(rev, "..") || strings.HasPrefix(rev, "/") || strings.ContainsAny(rev, "\\\x00") {
		return ModelID{}, fmt.Errorf("model %q: bad revision %q", s, rev)
	}
	return ModelID{Repo: repo, Revision: rev}, nil
}

// isCommit reports whether a revision is a full commit hash.
func isCommit(rev string) bool { return len(rev) == 40 && hexHash.MatchString(rev) }

// repoDir is the model's folder in the cache.
func (h *Hub) repoDir(id ModelID) string {
	return filepath.Join(h.Cache, "models--"+strings.ReplaceAll(id.Repo, "/", "--"))
}

// Resolve turns a --model argument into a model folder: an existing folder is
// used as is; a hub id is taken from the cache when its snapshot there is
// complete, and is downloaded otherwise (unless h.Offline).
func (h *Hub) Resolve(ctx context.Context, arg string) (string, error) {
	if st, err := os.Stat(arg); err == nil && st.IsDir() {
		return arg, nil
	}
	id, err := ParseModelID(arg)
	if err != nil {
		return "", fmt.Errorf("%w (and no such folder)", err)
	}
	if snap, err := h.Cached(id); err == nil || h.Offline {
		return snap, err
	}
	return h.Download(ctx, id)
}

// Cached returns the folder of id's snapshot in the cache if it holds a
// config.json and every safetensors file the weights need.
func (h *Hub) Cached(id ModelID) (string, error) {
	commit, snap, err := h.snapshot(id)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(snap, "config.json")); err != nil {
		return "", h.notCached(id, "no config.json in snapshot "+commit)
	}
	weights, err := weightFiles(snap)
	if err != nil {
		return "", h.notCached(id, err.Error())
	}
	for _, w := range weights {
		if _, err := os.Stat(filepath.Join(snap, w)); err != nil {
			return "", h.notCached(id, w+" is missing from snapshot "+commit)
		}
	}
	return snap, nil
}

// snapshot returns the commit id's revision names in the cache and that
// commit's snapshot folder, which may be missing or incomplete.
func (h *Hub) snapshot(id ModelID) (commit, dir string, err error) {
	commit = id.Revision
	if !isCommit(commit) {
		ref, err := os.ReadFile(filepath.Join(h.repoDir(id), "refs", filepath.FromSlash(id.Revision)))
		if err != nil {
			return "", "", h.notCached(id, "no refs/"+id.Revision)
		}
		commit = strings.TrimSpace(string(ref))
	}
	return commit, filepath.Join(h.repoDir(id), "snapshots", commit), nil
}

func (h *Hub) notCached(id ModelID, why string) error {
	if h.Offline {
		return fmt.Errorf("model %s: not complete in the local Hugging Face cache %s (%s), and downloads are off (--offline or HF_HUB_OFFLINE=1); run `seal-ttt download %s` while online", id, h.Cache, why, id)
	}
	return fmt.Errorf("model %s: not complete in the local Hugging Face cache %s (%s)", id, h.Cache, why)
}

// weightFiles names the safetensors files of a model folder: the shards its
// index names, else model.safetensors.
func weightFiles(dir string) ([]string, error) {
	data, err := os.ReadFile(filepath.Join(dir, indexFile))
	if errors.Is(err, fs.ErrNotExist) {
		return []string{"model.safetensors"}, nil
	}
	if err != nil {
		return nil, err
	}
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, fmt.Errorf("%s: not a valid index: %w", indexFile, err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, fmt.Errorf("%s: weight_map is empty", indexFile)
	}
	var files []string
	for _, f := range idx.WeightMap {
		if f != path.Base(f) || !strings.HasSuffix(f, ".safetensors") {
			return nil, fmt.Errorf("%s: shard %q is not a plain .safetensors file name", indexFile, f)
		}
		if !slices.Contains(files, f) {
			files = append(files, f)
		}
	}
	slices.Sort(files)
	return files, nil
}

const indexFile = "model.safetensors.index.json"

// metaFiles are fetched when the repository has them; config.json is required.
var metaFiles = []string{"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", indexFile}

// Download fetches id's files into the cache, or finds them there, and
// returns the snapshot folder. It always asks the hub which commit the
// revision names, unless h.Offline, where it answers from the cache alone.
func (h *Hub) Download(ctx context.Context, id ModelID) (string, error) {
	if h.Offline {
		return h.Cached(id)
	}
	info, err := h.repoInfo(ctx, id)
	if err != nil {
		return "", err
	}
	has := map[string]bool{}
	for _, s := range info.Siblings {
		has[s.Name] = true
	}
	if !has["config.json"] {
		return "", fmt.Errorf("model %s: the repository has no config.json (not a transformers model)", id)
	}
	var meta []string
	for _, f := range metaFiles {
		if has[f] {
			meta = append(meta, f)
		}
	}
	if !has[indexFile] && !has["model.safetensors"] {
		return "", fmt.Errorf("model %s: the repository has no safetensors weights (%s); this program reads only safetensors", id, otherWeights(info))
	}
	snap := filepath.Join(h.repoDir(id), "snapshots", info.Commit)
	if err := h.fetch(ctx, id, info, meta, false); err != nil {
		return "", err
	}
	weights, err := weightFiles(snap)
	if err != nil {
		return "", fmt.Errorf("model %s: %w", id, err)
	}
	for _, w := range weights {
		if !has[w] {
			return "", fmt.Errorf("model %s: %s names %s, which the repository lacks", id, indexFile, w)
		}
	}
	if err := h.fetch(ctx, id, info, weights, true); err != nil {
		return "", err
	}
	if id.Revision != info.Commit {
		ref := filepath.Join(h.repoDir(id), "refs", filepath.FromSlash(id.Revision))
		if err := writeAtomic(ref, []byte(info.Commit)); err != nil {
			return "", fmt.Errorf("model %s: %w", id, err)
		}
	}
	return snap, nil
}

// otherWeights lists the repository's weight files of formats this program
// does not read, for the error that says so.
func otherWeights(info *repoInfo) string {
	var other []string
	for _, s := range info.Siblings {
		switch path.Ext(s.Name) {
		case ".bin", ".pth", ".pt", ".gguf", ".h5", ".msgpack", ".ckpt":
			other = append(other, s.Name)
		}
	}
	if len(other) == 0 {
		return "no weight files at all"
	}
	if len(other) > 3 {
		other = append(other[:3], "…")
	}
	return "it has " + strings.Join(other, ", ")
}

// repoInfo is what the hub's API says of a repository at a revision.
type repoInfo struct {
	Commit   string `json:"sha"`
	Siblings []struct {
		Name string `json:"rfilename"`
		LFS  *struct {
			SHA256 string `json:"sha256"`
		} `json:"lfs"`
	} `json:"siblings"`
}

func (h *Hub) client() *http.Client {
	if h.Client != nil {
		return h.Client
	}
	return &http.Client{}
}

// request builds a request that carries the token only to the hub itself,
// never to the storage a download is redirected to.
func (h *Hub) request(ctx context.Context, method, u string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "seal-ttt (Go; huggingface_hub-compatible)")
	if ep, err := url.Parse(h.Endpoint); err == nil && h.Token != "" && ep.Host == req.URL.Host {
		req.Header.Set("Authorization", "Bearer "+h.Token)
	}
	return req, nil
}

func (h *Hub) repoInfo(ctx context.Context, id ModelID) (*repoInfo, error) {
	u := fmt.Sprintf("%s/api/models/%s/revision/%s", h.Endpoint, id.Repo, url.PathEscape(id.Revision))
	req, err := h.request(ctx, http.MethodGet, u)
	if err != nil {
		return nil, err
	}
	resp, err := h.client().Do(req)
	if err != nil {
		return nil, fmt.Errorf("model %s: asking the hub at %s: %w", id, h.Endpoint, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, h.statusError(id, "", resp)
	}
	info := &repoInfo{}
	if err := json.NewDecoder(resp.Body).Decode(info); err != nil {
		return nil, fmt.Errorf("model %s: the hub's answer from %s is not valid: %w", id, u, err)
	}
	if !isCommit(info.Commit) {
		return nil, fmt.Errorf("model %s: the hub's answer from %s names no commit (sha %q)", id, u, info.Commit)
	}
	return info, nil
}

// statusError explains an unsuccessful answer from the hub; for 401 and 403
// it says what to do.
func (h *Hub) statusError(id ModelID, file string, resp *http.Response) error {
	what := "model " + id.String()
	if file != "" {
		what += ": " + file
	}
	msg := resp.Header.Get("X-Error-Message")
	if msg == "" {
		msg = resp.Status
	}
	page := h.Endpoint + "/" + id.Repo
	switch {
	case resp.StatusCode == http.StatusUnauthorized && h.Token == "":
		return fmt.Errorf("%s: the hub answered %s (%s): the model is gated or private, or the id is misspelled. Accept its licence at %s, create a read token at %s/settings/tokens, and set HF_TOKEN to it (or run `huggingface-cli login`)", what, resp.Status, msg, page, h.Endpoint)
	case resp.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("%s: the hub answered %s (%s): the token in HF_TOKEN (or the token file) was refused. Check that it is valid at %s/settings/tokens, and that the id is spelled right", what, resp.Status, msg, h.Endpoint)
	case resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("%s: the hub answered %s (%s): your token has no access to this model. Accept its licence at %s (gated models such as Llama 3 are approved per account) and use a token with read access", what, resp.Status, msg, page)
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%s: the hub answered %s (%s): no such model or revision at %s", what, resp.Status, msg, h.Endpoint)
	}
	return fmt.Errorf("%s: the hub answered %s (%s)", what, resp.Status, msg)
}

// remoteFile is one file of a commit as the hub describes it.
type remoteFile struct {
	name string
	etag string // the blob's name in the cache: a sha256 (LFS files) or a git blob sha1
	size int64
	url  string // where the bytes are, after the hub's redirect
}

// head asks the hub for a file's hash, size and location, following only
// the hub's own relative redirects (a renamed repository).
func (h *Hub) head(ctx context.Context, id ModelID, commit, name string) (remoteFile, error) {
	u := fmt.Sprintf("%s/%s/resolve/%s/%s", h.Endpoint, id.Repo, commit, url.PathEscape(name))
	c := *h.client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for range 5 {
		req, err := h.request(ctx, http.MethodHead, u)
		if err != nil {
			return remoteFile{}, err
		}
		req.Header.Set("Accept-Encoding", "identity")
		resp, err := c.Do(req)
		if err != nil {
			return remoteFile{}, fmt.Errorf("model %s: %s: %w", id, name, err)
		}
		resp.Body.Close()
		etag := resp.Header.Get("X-Linked-Etag")
		if etag == "" {
			etag = resp.Header.Get("ETag")
		}
		etag = strings.Trim(strings.TrimPrefix(etag, "W/"), `"`)
		loc := resp.Header.Get("Location")
		if resp.StatusCode >= 300 && resp.StatusCode < 400 && loc != "" {
			next, err := resp.Request.URL.Parse(loc)
			if err != nil {
				return remoteFile{}, fmt.Errorf("model %s: %s: bad redirect %q: %w", id, name, loc, err)
			}
			if etag == "" && next.Host == resp.Request.URL.Host {
				u = next.String()
				continue
			}
			loc = next.String()
		} else if resp.StatusCode != http.StatusOK {
			return remoteFile{}, h.statusError(id, name, resp)
		} else {
			loc = u
		}
		size, err := strconv.ParseInt(resp.Header.Get("X-Linked-Size"), 10, 64)
		if err != nil {
			size = resp.ContentLength
		}
		if !hexHash.MatchString(etag) {
			return remoteFile{}, fmt.Errorf("model %s: %s: the hub gave no sha256 or git hash to check it by (ETag %q)", id, name, etag)
		}
		if size < 0 {
			return remoteFile{}, fmt.Errorf("model %s: %s: the hub gave no size", id, name)
		}
		return remoteFile{name: name, etag: etag, size: size, url: loc}, nil
	}
	return remoteFile{}, fmt.Errorf("model %s: %s: too many redirects", id, name)
}

// fetch puts the named files of info's commit into the snapshot, each
// downloaded to its blob unless the blob is already there.
func (h *Hub) fetch(ctx context.Context, id ModelID, info *repoInfo, names []string, show bool) error {
	repo := h.repoDir(id)
	var files []remoteFile
	var missing int64
	for _, n := range names {
		f, err := h.head(ctx, id, info.Commit, n)
		if err != nil {
			return err
		}
		files = append(files, f)
		if _, err := os.Stat(filepath.Join(repo, "blobs", f.etag)); err != nil {
			missing += f.size
		}
	}
	var prog *progress
	if show && missing > 0 && h.Progress != nil {
		prog = newProgress(h.Progress, id.Repo, missing)
		defer prog.finish()
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, f := range files {
		g.Go(func() error {
			if err := h.fetchBlob(gctx, id, f, prog); err != nil {
				return err
			}
			return link(filepath.Join(repo, "snapshots", info.Commit, filepath.FromSlash(f.name)), filepath.Join(repo, "blobs", f.etag))
		})
	}
	return g.Wait()
}

// fetchBlob downloads f to blobs/ETAG under the cache's lock for that blob
// (the lock file huggingface_hub uses), resuming a partial .incomplete file,
// and promotes it only once its size and hash are right.
func (h *Hub) fetchBlob(ctx context.Context, id ModelID, f remoteFile, prog *progress) error {
	blob := filepath.Join(h.repoDir(id), "blobs", f.etag)
	if _, err := os.Stat(blob); err == nil {
		return nil
	}
	unlock, err := lockFile(ctx, filepath.Join(h.Cache, ".locks", filepath.Base(h.repoDir(id)), f.etag+".lock"))
	if err != nil {
		return fmt.Errorf("model %s: %s: %w", id, f.name, err)
	}
	defer unlock()
	if _, err := os.Stat(blob); err == nil {
		prog.add(f.size) // another process fetched it meanwhile
		return nil
	}
	part := blob + ".incomplete"
	if st, err := os.Stat(part); err == nil && st.Size() <= f.size {
		prog.add(st.Size()) // an earlier run's bytes, resumed
	}
	const attempts = 5
	for a := 1; ; a++ {
		err = h.transfer(ctx, id, f, part, prog)
		if err == nil || !retryable(err) || a == attempts || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(a) * 200 * time.Millisecond):
		}
	}
	if err != nil {
		return fmt.Errorf("model %s: %s: %w", id, f.name, err)
	}
	if err := verify(part, f); err != nil {
		os.Remove(part)
		return fmt.Errorf("model %s: %s: %w; the download was discarded", id, f.name, err)
	}
	return os.Rename(part, blob)
}

// transientError marks a failure worth another attempt (a cut connection,
// a server error).
type transientError struct{ err error }

func (e transientError) Error() string { return e.err.Error() }
func (e transientError) Unwrap() error { return e.err }

func retryable(err error) bool {
	var t transientError
	var ne net.Error
	return errors.As(err, &t) || errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF)
}

// transfer appends the rest of f to part, asking only for the bytes that
// part lacks.
func (h *Hub) transfer(ctx context.Context, id ModelID, f remoteFile, part string, prog *progress) error {
	if err := os.MkdirAll(filepath.Dir(part), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	st, err := out.Stat()
	if err != nil {
		return err
	}
	have := st.Size()
	if have > f.size {
		have = 0
	}
	if have == f.size {
		return nil
	}
	req, err := h.request(ctx, http.MethodGet, f.url)
	if err != nil {
		return err
	}
	req.Header.Set("Accept-Encoding", "identity")
	if have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
	}
	resp, err := h.client().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusPartialContent && have > 0:
		var start int64
		if _, err := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-", &start); err != nil || start != have {
			return fmt.Errorf("asked for bytes from %d, got Content-Range %q", have, resp.Header.Get("Content-Range"))
		}
	case resp.StatusCode == http.StatusOK:
		have = 0 // the server sent the whole file
	case resp.StatusCode >= 500:
		return transientError{h.statusError(id, f.name, resp)}
	default:
		return h.statusError(id, f.name, resp)
	}
	if err := out.Truncate(have); err != nil {
		return err
	}
	if _, err := out.Seek(have, io.SeekStart); err != nil {
		return err
	}
	n, err := io.Copy(out, io.TeeReader(io.LimitReader(resp.Body, f.size-have), prog))
	if err == nil && have+n < f.size {
		err = transientError{fmt.Errorf("the transfer ended at byte %d of %d: %w", have+n, f.size, io.ErrUnexpectedEOF)}
	}
	return err
}

// verify checks a downloaded file's size and hash: a 64-digit ETag is the
// file's sha256 (LFS files), a 40-digit one its git blob sha1.
func verify(file string, f remoteFile) error {
	in, err := os.Open(file)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if st.Size() != f.size {
		return fmt.Errorf("got %d bytes, the hub says %d", st.Size(), f.size)
	}
	var hs hash.Hash
	kind := "sha256"
	if len(f.etag) == 64 {
		hs = sha256.New()
	} else {
		kind = "git blob sha1"
		hs = sha1.New()
		fmt.Fprintf(hs, "blob %d\x00", f.size)
	}
	if _, err := io.Copy(hs, in); err != nil {
		return err
	}
	if got := hex.EncodeToString(hs.Sum(nil)); got != f.etag {
		return fmt.Errorf("%s of the downloaded bytes is %s, the hub says %s", kind, got, f.etag)
	}
	return nil
}

// link points snapshot file dst at blob by a relative symbolic link, as
// huggingface_hub does, replacing any link there atomically.
func link(dst, blob string) error {
	rel, err := filepath.Rel(filepath.Dir(dst), blob)
	if err != nil {
		return err
	}
	if cur, err := os.Readlink(dst); err == nil && cur == rel {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp := dst + ".tmp" + randSuffix()
	if err := os.Symlink(rel, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// writeAtomic replaces file with data, so that a reader sees the old or the
// new content, never a part.
func writeAtomic(file string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	tmp := file + ".tmp" + randSuffix()
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, file); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

func randSuffix() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
