package registry

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/berth-registry/berth/registry/store"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func (h *handler) getManifest(w http.ResponseWriter, r *http.Request, rt route) {
	m, err := h.st.GetManifest(r.Context(), rt.name, rt.ref)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", m.MediaType)
	hdr.Set("Content-Length", itoa(int64(len(m.Content))))
	hdr.Set("Docker-Content-Digest", m.Digest.String())
	hdr.Set("ETag", `"`+m.Digest.String()+`"`)
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(m.Content)
}

func (h *handler) putManifest(w http.ResponseWriter, r *http.Request, rt route) {
	if r.ContentLength > store.MaxManifestSize {
		h.writeError(w, r, &store.DetailError{Err: store.ErrTooLarge, Detail: r.ContentLength,
			Msg: fmt.Sprintf("manifest is %d bytes, limit is %d", r.ContentLength, store.MaxManifestSize)})
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, store.MaxManifestSize+1))
	if err != nil {
		h.writeError(w, r, fmt.Errorf("%w: reading manifest: %w", store.ErrManifestInvalid, err))
		return
	}
	if len(body) > store.MaxManifestSize {
		h.writeError(w, r, &store.DetailError{Err: store.ErrTooLarge,
			Msg: fmt.Sprintf("manifest exceeds the limit of %d bytes", store.MaxManifestSize)})
		return
	}
	if r.ContentLength >= 0 && int64(len(body)) != r.ContentLength {
		h.writeError(w, r, &store.DetailError{Err: store.ErrSizeInvalid, Msg: "body shorter than Content-Length"})
		return
	}
	res, err := h.st.PutManifest(r.Context(), rt.name, rt.ref, r.Header.Get("Content-Type"), body, r.URL.Query()["tag"])
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	hdr := w.Header()
	hdr.Set("Location", "/v2/"+rt.name+"/manifests/"+res.Digest.String())
	hdr.Set("Docker-Content-Digest", res.Digest.String())
	if res.Subject != nil {
		hdr.Set("OCI-Subject", res.Subject.Digest.String())
	}
	for _, t := range res.Tags {
		hdr.Add("OCI-Tag", t)
	}
	hdr.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

func (h *handler) deleteManifest(w http.ResponseWriter, r *http.Request, rt route) {
	if err := h.st.DeleteManifest(r.Context(), rt.name, rt.ref); err != nil {
		h.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
}

// paginate applies n and last to a sorted list and sets the Link header for
// the next page when there is one.
func paginate(w http.ResponseWriter, r *http.Request, all []string) ([]string, error) {
	q := r.URL.Query()
	last := q.Get("last")
	out := all
	if last != "" {
		i := 0
		for i < len(all) && all[i] <= last {
			i++
		}
		out = all[i:]
	}
	if ns := q.Get("n"); ns != "" {
		n, err := strconv.Atoi(ns)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%w: n=%q", errPagination, ns)
		}
		if n < len(out) {
			out = out[:n]
			if n > 0 {
				next := url.Values{"n": {ns}, "last": {out[n-1]}}
				w.Header().Set("Link", fmt.Sprintf(`<%s?%s>; rel="next"`, r.URL.Path, next.Encode()))
			}
		}
	}
	return out, nil
}

func writeJSON(w http.ResponseWriter, contentType string, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", itoa(int64(len(b))))
	_, _ = w.Write(b)
}

func (h *handler) tags(w http.ResponseWriter, r *http.Request, rt route) {
	all, err := h.st.Tags(r.Context(), rt.name)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	page, err := paginate(w, r, all)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	writeJSON(w, "application/json", struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{rt.name, page})
}

func (h *handler) catalog(w http.ResponseWriter, r *http.Request, _ route) {
	all, err := h.st.Catalog(r.Context())
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	page, err := paginate(w, r, all)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if page == nil {
		page = []string{}
	}
	writeJSON(w, "application/json", struct {
		Repositories []string `json:"repositories"`
	}{page})
}

func (h *handler) referrers(w http.ResponseWriter, r *http.Request, rt route) {
	d, err := parseDigest(rt.ref)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	at := r.URL.Query().Get("artifactType")
	descs, err := h.st.Referrers(r.Context(), rt.name, d, at)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if at != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: descs}
	idx.SchemaVersion = 2
	writeJSON(w, ocispec.MediaTypeImageIndex, idx)
}
