package registry

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/berth-registry/berth/registry/store"
)

func uploadLocation(name, id string) string { return "/v2/" + name + "/blobs/uploads/" + id }

// setUploadHeaders describes an upload in progress to the client.
func setUploadHeaders(w http.ResponseWriter, name, id string, size int64) {
	hdr := w.Header()
	hdr.Set("Location", uploadLocation(name, id))
	hdr.Set("Docker-Upload-UUID", id)
	hdr.Set("Range", "0-"+itoa(max(size-1, 0)))
	hdr.Set("Content-Length", "0")
}

// setBlobCreated answers a finished upload or mount.
func setBlobCreated(w http.ResponseWriter, name, d string) {
	hdr := w.Header()
	hdr.Set("Location", "/v2/"+name+"/blobs/"+d)
	hdr.Set("Docker-Content-Digest", d)
	hdr.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

// contentRange parses a chunk's Content-Range ("start-end", also accepted
// as "bytes start-end/*"); -1 when absent.
func contentRange(r *http.Request) (start int64, err error) {
	h := strings.TrimSpace(r.Header.Get("Content-Range"))
	if h == "" {
		return -1, nil
	}
	h = strings.TrimPrefix(h, "bytes ")
	h = strings.TrimPrefix(h, "bytes=")
	if i := strings.IndexByte(h, '/'); i >= 0 {
		h = h[:i]
	}
	first, last, ok := strings.Cut(h, "-")
	s, err1 := strconv.ParseInt(first, 10, 64)
	e, err2 := strconv.ParseInt(last, 10, 64)
	if !ok || err1 != nil || err2 != nil || s < 0 || e < s {
		return 0, &store.DetailError{Err: store.ErrRangeInvalid, Msg: "malformed Content-Range " + strconv.Quote(r.Header.Get("Content-Range"))}
	}
	if r.ContentLength >= 0 && r.ContentLength != e-s+1 {
		return 0, &store.DetailError{Err: store.ErrRangeInvalid, Msg: "Content-Range does not match Content-Length"}
	}
	return s, nil
}

func (h *handler) startUpload(w http.ResponseWriter, r *http.Request, rt route) {
	ctx := r.Context()
	q := r.URL.Query()
	if mount := q.Get("mount"); mount != "" {
		d, err := parseDigest(mount)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		from := q.Get("from")
		if from != "" {
			if err := store.ValidateName(from); err != nil {
				h.writeError(w, r, err)
				return
			}
		}
		_, err = h.st.MountBlob(ctx, rt.name, from, d)
		if err == nil {
			setBlobCreated(w, rt.name, d.String())
			return
		}
		if !errors.Is(err, store.ErrBlobUnknown) {
			h.writeError(w, r, err)
			return
		}
		// Not mountable: fall through to an ordinary upload session.
	} else if ds := q.Get("digest"); ds != "" {
		d, err := parseDigest(ds)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		if _, err := h.st.PutBlob(ctx, rt.name, d, r.Body, r.ContentLength); err != nil {
			h.writeError(w, r, err)
			return
		}
		setBlobCreated(w, rt.name, d.String())
		return
	}
	up, err := h.st.StartUpload(ctx, rt.name)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	setUploadHeaders(w, rt.name, up.ID, 0)
	w.WriteHeader(http.StatusAccepted)
}

func (h *handler) uploadStatus(w http.ResponseWriter, r *http.Request, rt route) {
	id, err := store.ParseUploadID(rt.ref)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	up, err := h.st.UploadStatus(r.Context(), rt.name, id)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	setUploadHeaders(w, rt.name, id, up.Size)
	w.WriteHeader(http.StatusNoContent)
}

func (h *handler) patchUpload(w http.ResponseWriter, r *http.Request, rt route) {
	id, err := store.ParseUploadID(rt.ref)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	start, err := contentRange(r)
	if err != nil {
		h.uploadError(w, r, rt.name, id, err)
		return
	}
	size, err := h.st.AppendUpload(r.Context(), rt.name, id, start, r.Body, r.ContentLength)
	if err != nil {
		h.uploadError(w, r, rt.name, id, err)
		return
	}
	setUploadHeaders(w, rt.name, id, size)
	w.WriteHeader(http.StatusAccepted)
}

// uploadError answers a failed chunk; for a range error it also tells the
// client where the upload stands so it can resume.
func (h *handler) uploadError(w http.ResponseWriter, r *http.Request, name, id string, err error) {
	if errors.Is(err, store.ErrRangeInvalid) {
		if up, serr := h.st.UploadStatus(r.Context(), name, id); serr == nil {
			setUploadHeaders(w, name, id, up.Size)
		} else {
			err = serr
		}
	}
	h.writeError(w, r, err)
}

func (h *handler) putUpload(w http.ResponseWriter, r *http.Request, rt route) {
	id, err := store.ParseUploadID(rt.ref)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	ds := r.URL.Query().Get("digest")
	if ds == "" {
		h.writeError(w, r, &store.DetailError{Err: store.ErrDigestInvalid, Msg: "digest parameter missing"})
		return
	}
	d, err := parseDigest(ds)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	start, err := contentRange(r)
	if err != nil {
		h.uploadError(w, r, rt.name, id, err)
		return
	}
	if _, err := h.st.CompleteUpload(r.Context(), rt.name, id, d, start, r.Body, r.ContentLength); err != nil {
		h.uploadError(w, r, rt.name, id, err)
		return
	}
	setBlobCreated(w, rt.name, d.String())
}

func (h *handler) cancelUpload(w http.ResponseWriter, r *http.Request, rt route) {
	id, err := store.ParseUploadID(rt.ref)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if err := h.st.CancelUpload(r.Context(), rt.name, id); err != nil {
		h.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusNoContent)
}
