package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Media types used by the manifest workload.
const (
	mtOCIManifest   = "application/vnd.oci.image.manifest.v1+json"
	mtOCIIndex      = "application/vnd.oci.image.index.v1+json"
	mtOCIConfig     = "application/vnd.oci.image.config.v1+json"
	mtOCILayer      = "application/vnd.oci.image.layer.v1.tar+gzip"
	mtDockerV2      = "application/vnd.docker.distribution.manifest.v2+json"
	mtDockerList    = "application/vnd.docker.distribution.manifest.list.v2+json"
	manifestAccept  = mtOCIManifest + ", " + mtDockerV2 + ", " + mtOCIIndex + ", " + mtDockerList
	mtOctetStream   = "application/octet-stream"
	copyBufferBytes = 1 << 20
)

// client talks the OCI distribution API to one registry.
type client struct {
	base string // http://host:port, no trailing slash
	hc   *http.Client
}

func baseURL(addr string) string {
	addr = strings.TrimRight(addr, "/")
	if strings.HasPrefix(addr, "http://") || strings.HasPrefix(addr, "https://") {
		return addr
	}
	return "http://" + addr
}

func newClient(addr string, maxConns int) *client {
	tr := &http.Transport{
		Proxy: nil, // loopback only; never go through a proxy from the environment
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          4 * maxConns,
		MaxIdleConnsPerHost:   4 * maxConns,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
		ResponseHeaderTimeout: 2 * time.Minute,
		WriteBufferSize:       256 << 10,
		ReadBufferSize:        256 << 10,
	}
	return &client{
		base: baseURL(addr),
		hc:   &http.Client{Transport: tr, Timeout: 5 * time.Minute},
	}
}

func (c *client) close() { c.hc.CloseIdleConnections() }

// httpError describes an unexpected response.
type httpError struct {
	method, url string
	status      int
	body        string
}

func (e *httpError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d: %s", e.method, e.url, e.status, e.body)
}

// check returns an error unless resp has the wanted status. It always drains
// and closes the body so the connection can be reused.
func check(resp *http.Response, want int) error {
	defer resp.Body.Close()
	if resp.StatusCode == want {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	io.Copy(io.Discard, resp.Body)
	return &httpError{
		method: resp.Request.Method,
		url:    resp.Request.URL.RequestURI(),
		status: resp.StatusCode,
		body:   strings.Join(strings.Fields(string(b)), " "),
	}
}

func sha256Digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// startUpload POSTs a new upload session and returns its absolute location.
func (c *client) startUpload(repo string) (*url.URL, error) {
	req, err := http.NewRequest(http.MethodPost, c.base+"/v2/"+repo+"/blobs/uploads/", http.NoBody)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	return location(resp, http.StatusAccepted)
}

// location checks the status and resolves the Location header against the
// request URL (registries may answer with a relative or absolute location).
func location(resp *http.Response, want int) (*url.URL, error) {
	loc := resp.Header.Get("Location")
	if err := check(resp, want); err != nil {
		return nil, err
	}
	if loc == "" {
		return nil, fmt.Errorf("%s %s: no Location header", resp.Request.Method, resp.Request.URL.RequestURI())
	}
	return resp.Request.URL.Parse(loc)
}

func withDigest(u *url.URL, digest string) string {
	v := *u
	q := v.Query()
	q.Set("digest", digest)
	v.RawQuery = q.Encode()
	return v.String()
}

// pushMonolithic uploads data with POST + a single PUT carrying the body.
func (c *client) pushMonolithic(repo, digest string, data []byte) error {
	loc, err := c.startUpload(repo)
	if err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodPut, withDigest(loc, digest), bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.ContentLength = int64(len(data))
	req.Header.Set("Content-Type", mtOctetStream)
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	return check(resp, http.StatusCreated)
}

// pushChunked uploads data with POST, PATCHes of chunk bytes (following the
// Location each time) and a closing PUT with an empty body.
func (c *client) pushChunked(repo, digest string, data []byte, chunk int) error {
	loc, err := c.startUpload(repo)
	if err != nil {
		return err
	}
	for off := 0; off < len(data); off += chunk {
		end := min(off+chunk, len(data))
		req, err := http.NewRequest(http.MethodPatch, loc.String(), bytes.NewReader(data[off:end]))
		if err != nil {
			return err
		}
		req.ContentLength = int64(end - off)
		req.Header.Set("Content-Type", mtOctetStream)
		req.Header.Set("Content-Range", fmt.Sprintf("%d-%d", off, end-1))
		resp, err := c.hc.Do(req)
		if err != nil {
			return err
		}
		if loc, err = location(resp, http.StatusAccepted); err != nil {
			return err
		}
	}
	req, err := http.NewRequest(http.MethodPut, withDigest(loc, digest), http.NoBody)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	return check(resp, http.StatusCreated)
}

// getBlob GETs a blob and streams its body into w (through buf), checking
// the status and the length. It returns the number of bytes read.
func (c *client) getBlob(repo, digest string, size int64, w io.Writer, buf []byte) (int64, error) {
	resp, err := c.hc.Get(c.base + "/v2/" + repo + "/blobs/" + digest)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, check(resp, http.StatusOK)
	}
	defer resp.Body.Close()
	var n int64
	for {
		m, err := resp.Body.Read(buf)
		if m > 0 {
			n += int64(m)
			if w != nil {
				w.Write(buf[:m])
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return n, fmt.Errorf("GET blob %s: after %d bytes: %v", digest, n, err)
		}
	}
	if n != size {
		return n, fmt.Errorf("GET blob %s: got %d bytes, want %d", digest, n, size)
	}
	return n, nil
}

// headBlob HEADs a blob and checks status and Content-Length.
func (c *client) headBlob(url string, size int64) error {
	req, err := http.NewRequest(http.MethodHead, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	if err := check(resp, http.StatusOK); err != nil {
		return err
	}
	if resp.ContentLength != size {
		return fmt.Errorf("HEAD %s: Content-Length %d, want %d", url, resp.ContentLength, size)
	}
	return nil
}

// putManifest PUTs an OCI image manifest under a reference.
func (c *client) putManifest(repo, ref string, body []byte) error {
	req, err := http.NewRequest(http.MethodPut, c.base+"/v2/"+repo+"/manifests/"+ref, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", mtOCIManifest)
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	return check(resp, http.StatusCreated)
}

// getManifest GETs a manifest by reference with OCI and Docker Accept types
// and checks the status and body length.
func (c *client) getManifest(url string, size int, buf []byte) error {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", manifestAccept)
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return check(resp, http.StatusOK)
	}
	defer resp.Body.Close()
	n, err := io.ReadFull(resp.Body, buf)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return fmt.Errorf("GET %s: %v", url, err)
	}
	if extra, _ := io.Copy(io.Discard, resp.Body); extra > 0 || n != size {
		return fmt.Errorf("GET %s: got %d bytes, want %d", url, n+int(extra), size)
	}
	return nil
}
