package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// PushBlob uploads the blob desc, read from r, to repository repo: a POST to
// open an upload session, then one monolithic PUT when desc.Size is at most
// Options.ChunkSize, else PATCH chunks of ChunkSize and a final PUT. A chunk
// that fails (connection error, 416, 5xx after retries) is resumed from
// what the server reports it has (the upload's Range), at most
// Options.MaxRetries times per chunk. r is checked against desc.Size
// (negative: unknown) and desc.Digest before the upload is completed; on
// mismatch the session is cancelled. PushBlob does not check whether the
// blob already exists: call BlobExists or MountBlob first.
func (c *Client) PushBlob(ctx context.Context, repo Reference, desc ocispec.Descriptor, r io.Reader) error {
	if err := repo.validate(); err != nil {
		return err
	}
	op := "pushing blob " + desc.Digest.String() + " to"
	name := repo.Name()
	if err := desc.Digest.Validate(); err != nil {
		return fmt.Errorf("%s %s: invalid digest: %w", op, name, err)
	}
	scopes := []string{repoScope(repo.Repository, true)}
	loc, err := c.startUpload(ctx, repo, "", scopes, op)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			c.cancelUpload(ctx, repo, loc, scopes)
		}
	}()
	h := desc.Digest.Algorithm().Hash()
	var total int64
	var last []byte // body of the final PUT
	if desc.Size >= 0 && desc.Size <= c.chunkSize {
		b, err := io.ReadAll(io.LimitReader(r, desc.Size+1))
		if err != nil {
			return fmt.Errorf("%s %s: reading content: %w", op, name, err)
		}
		h.Write(b)
		total = int64(len(b))
		last = b
	} else {
		buf := make([]byte, c.chunkSize)
		for {
			n, rerr := io.ReadFull(r, buf)
			if rerr != nil && rerr != io.EOF && rerr != io.ErrUnexpectedEOF {
				return fmt.Errorf("%s %s: reading content: %w", op, name, rerr)
			}
			if n > 0 {
				chunk := buf[:n]
				h.Write(chunk)
				if desc.Size >= 0 && total+int64(n) > desc.Size {
					return fmt.Errorf("%s %s: %w: the content is longer than %d bytes", op, name, ErrSizeMismatch, desc.Size)
				}
				if loc, err = c.patchChunk(ctx, repo, loc, chunk, total, scopes, op); err != nil {
					return err
				}
				total += int64(n)
			}
			if rerr != nil {
				break
			}
		}
	}
	if desc.Size >= 0 && total != desc.Size {
		return fmt.Errorf("%s %s: %w: the content is %d bytes, the descriptor says %d", op, name, ErrSizeMismatch, total, desc.Size)
	}
	if got := digest.NewDigest(desc.Digest.Algorithm(), h); got != desc.Digest {
		return fmt.Errorf("%s %s: %w: the content's digest is %s", op, name, ErrDigestMismatch, got)
	}
	u, err := url.Parse(loc)
	if err != nil {
		return fmt.Errorf("%s %s: %w: bad upload location %q", op, name, ErrInvalidResponse, loc)
	}
	q := u.Query()
	q.Set("digest", desc.Digest.String())
	u.RawQuery = q.Encode()
	hdr := http.Header{"Content-Type": {"application/octet-stream"}}
	if last == nil {
		last = []byte{}
	}
	resp, err := c.do(ctx, &request{
		method: http.MethodPut, registry: repo.Registry, target: u.String(), header: hdr, body: last,
		scopes: scopes, op: op, ref: name,
	})
	if err != nil {
		return err
	}
	if err := expectStatus(resp, op, name, http.StatusCreated, http.StatusNoContent, http.StatusOK); err != nil {
		return err
	}
	drain(resp)
	ok = true
	return nil
}

// startUpload opens an upload session (POST) and returns its Location.
// query is added to the POST (used by MountBlob); a 201 then means the
// blob was mounted and the returned location is "".
func (c *Client) startUpload(ctx context.Context, repo Reference, query string, scopes []string, op string) (string, error) {
	target := "/v2/" + repo.Repository + "/blobs/uploads/"
	if query != "" {
		target += "?" + query
	}
	resp, err := c.do(ctx, &request{
		method: http.MethodPost, registry: repo.Registry, target: target, body: []byte{},
		scopes: scopes, op: op, ref: repo.Name(),
	})
	if err != nil {
		return "", err
	}
	if query != "" && resp.StatusCode == http.StatusCreated {
		drain(resp)
		return "", nil
	}
	if err := expectStatus(resp, op, repo.Name(), http.StatusAccepted); err != nil {
		return "", err
	}
	drain(resp)
	return location(resp, op, repo.Name())
}

// location resolves a response's Location header against its request URL.
func location(resp *http.Response, op, ref string) (string, error) {
	l := resp.Header.Get("Location")
	if l == "" {
		return "", fmt.Errorf("%s %s: %w: no Location header in the %d answer", op, ref, ErrInvalidResponse, resp.StatusCode)
	}
	u, err := resp.Request.URL.Parse(l)
	if err != nil {
		return "", fmt.Errorf("%s %s: %w: bad Location header %q", op, ref, ErrInvalidResponse, sanitize(l, 200))
	}
	return u.String(), nil
}

// patchChunk sends chunk, which starts at byte offset of the upload, and
// returns the next upload location. After a failure it asks the server how
// much it has and sends the rest of the chunk from there.
func (c *Client) patchChunk(ctx context.Context, repo Reference, loc string, chunk []byte, offset int64, scopes []string, op string) (string, error) {
	name := repo.Name()
	start := offset
	end := offset + int64(len(chunk)) // exclusive
	for attempt := 0; ; attempt++ {
		hdr := http.Header{
			"Content-Type":  {"application/octet-stream"},
			"Content-Range": {strconv.FormatInt(start, 10) + "-" + strconv.FormatInt(end-1, 10)},
		}
		resp, err := c.do(ctx, &request{
			method: http.MethodPatch, registry: repo.Registry, target: loc, header: hdr, body: chunk[start-offset:],
			scopes: scopes, op: op, ref: name,
		})
		var have int64 = -1
		if err == nil {
			if resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusNoContent {
				drain(resp)
				return location(resp, op, name)
			}
			if resp.StatusCode == http.StatusRequestedRangeNotSatisfiable {
				if n, ok := uploadRange(resp.Header.Get("Range")); ok {
					have = n
					if l, lerr := location(resp, op, name); lerr == nil {
						loc = l
					}
				}
			}
			retryable := resp.StatusCode == http.StatusRequestedRangeNotSatisfiable || resp.StatusCode >= 500
			err = responseError(resp, op, name)
			if !retryable {
				return "", err
			}
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		if attempt >= c.maxRetries {
			return "", err
		}
		if have < 0 {
			n, l, serr := c.uploadStatus(ctx, repo, loc, scopes, op)
			if serr != nil {
				return "", fmt.Errorf("%w (and asking for the upload's state failed: %v)", err, serr)
			}
			have, loc = n, l
		}
		switch {
		case have == end:
			return loc, nil
		case have < offset || have > end:
			return "", fmt.Errorf("%w; cannot resume: the registry has %d bytes of the upload, the chunk covers %d-%d", err, have, offset, end-1)
		}
		c.log.Debug("resuming blob upload", "repo", name, "offset", have, "err", err)
		start = have
		if err := sleep(ctx, c.backoff(attempt)); err != nil {
			return "", err
		}
	}
}

// uploadRange parses an upload's Range header "0-<last>" into the number of
// bytes received. "0-0" is read as nothing received (the API cannot tell
// zero bytes from one).
func uploadRange(h string) (int64, bool) {
	h = strings.TrimSpace(h)
	h = strings.TrimPrefix(h, "bytes=")
	first, last, ok := strings.Cut(h, "-")
	if !ok || strings.TrimSpace(first) != "0" {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(last), 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	if n == 0 {
		return 0, true
	}
	return n + 1, true
}

// uploadStatus asks how many bytes an upload session holds (GET location).
func (c *Client) uploadStatus(ctx context.Context, repo Reference, loc string, scopes []string, op string) (int64, string, error) {
	resp, err := c.do(ctx, &request{
		method: http.MethodGet, registry: repo.Registry, target: loc,
		scopes: scopes, op: op, ref: repo.Name(),
	})
	if err != nil {
		return 0, "", err
	}
	if err := expectStatus(resp, op, repo.Name(), http.StatusNoContent, http.StatusOK, http.StatusAccepted); err != nil {
		return 0, "", err
	}
	drain(resp)
	n, ok := uploadRange(resp.Header.Get("Range"))
	if !ok {
		if resp.Header.Get("Range") != "" {
			return 0, "", fmt.Errorf("%w: bad upload Range header %q", ErrInvalidResponse, sanitize(resp.Header.Get("Range"), 80))
		}
		n = 0
	}
	if resp.Header.Get("Location") == "" {
		return n, loc, nil
	}
	l, err := location(resp, op, repo.Name())
	return n, l, err
}

// cancelUpload deletes an upload session, best effort.
func (c *Client) cancelUpload(ctx context.Context, repo Reference, loc string, scopes []string) {
	if loc == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	resp, err := c.do(ctx, &request{
		method: http.MethodDelete, registry: repo.Registry, target: loc,
		scopes: scopes, op: "cancelling upload to", ref: repo.Name(),
	})
	if err == nil {
		drain(resp)
	}
}

// MountBlob asks the registry to link the blob desc from repository
// fromRepo (a repository path in the same registry, e.g. "library/busybox")
// into repo, without uploading it. mounted is false when the registry did
// not mount it (it does not have the blob, or does not mount): then push it.
func (c *Client) MountBlob(ctx context.Context, repo Reference, fromRepo string, desc ocispec.Descriptor) (mounted bool, err error) {
	if err := repo.validate(); err != nil {
		return false, err
	}
	op := "mounting blob " + desc.Digest.String() + " from " + fromRepo + " into"
	if err := desc.Digest.Validate(); err != nil {
		return false, fmt.Errorf("%s %s: invalid digest: %w", op, repo.Name(), err)
	}
	from := Reference{Registry: repo.Registry, Repository: fromRepo}
	if err := from.validate(); err != nil {
		return false, fmt.Errorf("%s %s: %w", op, repo.Name(), err)
	}
	scopes := []string{repoScope(repo.Repository, true)}
	if fromRepo != repo.Repository {
		scopes = append(scopes, repoScope(fromRepo, false))
	}
	q := url.Values{"mount": {desc.Digest.String()}, "from": {fromRepo}}
	loc, err := c.startUpload(ctx, repo, q.Encode(), scopes, op)
	if err != nil {
		return false, err
	}
	if loc == "" {
		return true, nil
	}
	// The registry opened an ordinary upload session instead; drop it.
	c.cancelUpload(ctx, repo, loc, scopes)
	return false, nil
}
