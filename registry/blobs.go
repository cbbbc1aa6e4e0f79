package registry

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/berth-registry/berth/registry/store"
	"github.com/opencontainers/go-digest"
)

// errRangeHeader is a Range header that cannot be satisfied.
var errRangeHeader = errors.New("requested range not satisfiable")

// parseDigest validates a digest from a path or query.
func parseDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err != nil {
		if len(s) > 80 {
			s = s[:80] + "…"
		}
		return "", &store.DetailError{Err: store.ErrDigestInvalid, Detail: s, Msg: fmt.Sprintf("invalid digest %q: %v", s, err)}
	}
	return d, nil
}

// parseByteRange parses a single "bytes=" range against size. ok is false
// when the header should be ignored (absent, other unit, several ranges).
func parseByteRange(h string, size int64) (start, end int64, ok bool, err error) {
	spec, found := strings.CutPrefix(strings.TrimSpace(h), "bytes=")
	if h == "" || !found || strings.Contains(spec, ",") {
		return 0, 0, false, nil
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false, errRangeHeader
	}
	if first == "" { // suffix: the last n bytes
		n, perr := strconv.ParseInt(last, 10, 64)
		if perr != nil || n <= 0 || size == 0 {
			return 0, 0, false, errRangeHeader
		}
		n = min(n, size)
		return size - n, size - 1, true, nil
	}
	start, perr := strconv.ParseInt(first, 10, 64)
	if perr != nil || start < 0 || start >= size {
		return 0, 0, false, errRangeHeader
	}
	end = size - 1
	if last != "" {
		e, perr := strconv.ParseInt(last, 10, 64)
		if perr != nil || e < start {
			return 0, 0, false, errRangeHeader
		}
		end = min(e, size-1)
	}
	return start, end, true, nil
}

func (h *handler) getBlob(w http.ResponseWriter, r *http.Request, rt route) {
	d, err := parseDigest(rt.ref)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	ctx := r.Context()
	stat := h.st.StatBlob
	if r.Method == http.MethodGet {
		stat = h.st.StatBlobForRead
	}
	size, err := stat(ctx, rt.name, d)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	hdr := w.Header()
	hdr.Set("Docker-Content-Digest", d.String())
	hdr.Set("ETag", `"`+d.String()+`"`)
	hdr.Set("Accept-Ranges", "bytes")
	hdr.Set("Cache-Control", "max-age=31536000")
	if r.Method == http.MethodHead {
		hdr.Set("Content-Type", "application/octet-stream")
		hdr.Set("Content-Length", itoa(size))
		return
	}
	if u, err := h.st.BlobURL(ctx, r.Method, d); err != nil {
		h.writeError(w, r, err)
		return
	} else if u != "" {
		http.Redirect(w, r, u, http.StatusTemporaryRedirect)
		return
	}
	start, end, partial, err := parseByteRange(r.Header.Get("Range"), size)
	if err != nil {
		hdr.Set("Content-Range", "bytes */"+itoa(size))
		h.writeError(w, r, err)
		return
	}
	if !partial {
		start, end = 0, size-1
	}
	rc, err := h.st.OpenBlobAt(ctx, d, start)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	defer rc.Close()
	n := end - start + 1
	hdr.Set("Content-Type", "application/octet-stream")
	hdr.Set("Content-Length", itoa(n))
	if partial {
		hdr.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end, size))
		w.WriteHeader(http.StatusPartialContent)
	}
	if n > 0 {
		if _, err := io.Copy(w, &io.LimitedReader{R: rc, N: n}); err != nil {
			h.log.Debug("blob body interrupted", "digest", d, "err", err)
		}
	}
}

func (h *handler) deleteBlob(w http.ResponseWriter, r *http.Request, rt route) {
	d, err := parseDigest(rt.ref)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if err := h.st.DeleteBlob(r.Context(), rt.name, d); err != nil {
		h.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
}
