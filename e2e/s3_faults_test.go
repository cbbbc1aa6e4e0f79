//go:build e2e

package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestS3Faults: MinIO dying in the middle of a push, a replica killed during an upload, and
// a start with wrong credentials or a missing bucket.
func TestS3Faults(t *testing.T) {
	m := startMinio(t)

	// MinIO stopped in the middle of a chunked upload: the next request gets a 5xx with an OCI
	// error body, the registry stays up, no partial blob becomes visible, and once MinIO is back
	// the push, retried from scratch, succeeds.
	t.Run("minio-outage", func(t *testing.T) {
		target := m.target(m.NewBucket(t, "outage"))
		b := startBerthS3(t, target)
		repo := "e2e/s3/faults/outage"
		chunks := [][]byte{randomBytes(11, 1<<20), randomBytes(12, 1<<20), randomBytes(13, 512<<10)}
		blob := bytes.Join(chunks, nil)
		dgst := digestOf(blob)
		if st := blobStatus(t, b.Addr, repo, dgst); st != http.StatusNotFound {
			t.Fatalf("HEAD %s before any upload: %d, want 404", dgst, st)
		}

		loc := startUpload(t, b.Addr, repo)
		loc = mustPatch(t, b.Addr, loc, 0, chunks[0])
		m.Kill(t)

		start := time.Now()
		resp, body, _ := patchChunk(t, b.Addr, loc, int64(len(chunks[0])), chunks[1])
		t.Logf("PATCH with MinIO down: %s after %s: %.300s", resp.Status, time.Since(start).Round(time.Millisecond), body)
		checkOutageError(t, "PATCH (chunk 2) with MinIO down", resp, body)

		// A monolithic upload and a completion fail the same way.
		url := fmt.Sprintf("http://%s/v2/%s/blobs/uploads/?digest=%s", b.Addr, repo, dgst)
		resp, body = httpDo(t, http.MethodPost, url, map[string]string{"Content-Type": "application/octet-stream"}, blob)
		checkOutageError(t, "monolithic POST ?digest= with MinIO down", resp, body)
		resp, body = httpDo(t, http.MethodPut, "http://"+b.Addr+withQuery(loc, "digest", dgst), nil, nil)
		checkOutageError(t, "PUT ?digest= (completion) with MinIO down", resp, body)

		// The blob is not there (whatever the registry can tell without storage), and the
		// process still answers.
		if st := blobStatus(t, b.Addr, repo, dgst); st == http.StatusOK {
			t.Errorf("HEAD %s with MinIO down: 200, the blob was never completed", dgst)
		}
		resp, body = httpDo(t, http.MethodGet, "http://"+b.Addr+"/v2/", nil, nil)
		if resp.StatusCode != http.StatusOK && resp.StatusCode < 500 {
			t.Errorf("GET /v2/ with MinIO down: %s: %s (want 200 or a 5xx)", resp.Status, body)
		}
		if !b.Alive() {
			t.Fatalf("the registry exited while MinIO was down:\n%s", b.logTail(40))
		}

		m.Restart(t)
		if st := blobStatus(t, b.Addr, repo, dgst); st != http.StatusNotFound {
			t.Fatalf("HEAD %s after MinIO came back, before any retry: %d, want 404 (no partial blob)", dgst, st)
		}
		for _, k := range m.Keys(t, target.Bucket) {
			if strings.Contains(k, "/blobs/") {
				t.Errorf("bucket holds %s after the interrupted push, before any retry", k)
			}
		}
		// The interrupted session kept what it had before the outage, and only that.
		if got := uploadStatus(t, b.Addr, loc); got != int64(len(chunks[0])) {
			t.Errorf("interrupted session after the outage: %d bytes, want %d (chunk 1 only)", got, len(chunks[0]))
		}

		// The push, retried from scratch.
		loc2 := startUpload(t, b.Addr, repo)
		var off int64
		for i, c := range chunks[:2] {
			loc2 = mustPatch(t, b.Addr, loc2, off, c)
			off += int64(len(c))
			if st := blobStatus(t, b.Addr, repo, dgst); st != http.StatusNotFound {
				t.Fatalf("HEAD %s after chunk %d of the retry: %d, want 404", dgst, i+1, st)
			}
		}
		completeUpload(t, b.Addr, loc2, dgst, off, chunks[2])
		checkBlob(t, b.Addr, repo, dgst, blob)

		// The interrupted session can still be cancelled (or completed) after the outage.
		resp, body = httpDo(t, http.MethodDelete, "http://"+b.Addr+loc, nil, nil)
		if resp.StatusCode != http.StatusNoContent {
			t.Errorf("DELETE of the interrupted session: %s: %s", resp.Status, body)
		}
		if !b.Alive() {
			t.Fatalf("the registry exited:\n%s", b.logTail(40))
		}
	})

	// A replica killed with SIGKILL while a chunk is streaming into it: the client asks another
	// replica where the upload stands and finishes there.
	t.Run("replica-killed", func(t *testing.T) {
		target := m.target(m.NewBucket(t, "killed"))
		a := startBerthS3(t, target)
		b := startBerthS3(t, target)
		repo := "e2e/s3/faults/killed"
		chunks := [][]byte{randomBytes(21, 2<<20), randomBytes(22, 2<<20), randomBytes(23, 2<<20), randomBytes(24, 300<<10)}
		blob := bytes.Join(chunks, nil)
		dgst := digestOf(blob)

		loc := startUpload(t, a.Addr, repo)
		loc = mustPatch(t, a.Addr, loc, 0, chunks[0])
		loc = mustPatch(t, a.Addr, loc, int64(len(chunks[0])), chunks[1])
		done := int64(len(chunks[0]) + len(chunks[1]))

		// Chunk 3 is half sent when A dies.
		pr, pw := io.Pipe()
		req, err := http.NewRequest(http.MethodPatch, "http://"+a.Addr+loc, pr)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = int64(len(chunks[2]))
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set("Content-Range", fmt.Sprintf("%d-%d", done, done+int64(len(chunks[2]))-1))
		errc := make(chan error, 1)
		go func() {
			resp, err := httpClient.Do(req)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				err = fmt.Errorf("answered %s: %s", resp.Status, b)
			}
			errc <- err
		}()
		if _, err := pw.Write(chunks[2][:1<<20]); err != nil {
			t.Fatalf("sending the first half of chunk 3: %v", err)
		}
		time.Sleep(300 * time.Millisecond)
		a.Kill9(t)
		pw.CloseWithError(errors.New("replica killed"))
		select {
		case err := <-errc:
			t.Logf("the interrupted PATCH on A: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("the PATCH to the killed replica did not end")
		}

		if st := blobStatus(t, b.Addr, repo, dgst); st != http.StatusNotFound {
			t.Fatalf("HEAD %s on B before completion: %d, want 404", dgst, st)
		}
		got := uploadStatus(t, b.Addr, loc)
		t.Logf("upload status on B after A was killed: %d bytes (A had acknowledged %d)", got, done)
		if got != done {
			t.Fatalf("upload status on B: %d bytes, want %d (the chunks A acknowledged, nothing of the interrupted one)", got, done)
		}
		loc = mustPatch(t, b.Addr, loc, got, chunks[2])
		got += int64(len(chunks[2]))
		completeUpload(t, b.Addr, loc, dgst, got, chunks[3])
		checkBlob(t, b.Addr, repo, dgst, blob)
	})

	// Wrong credentials or a missing bucket: the registry does not start; it exits non-zero in
	// bounded time and says what is wrong.
	t.Run("bad-start", func(t *testing.T) {
		bucket := m.NewBucket(t, "exists")
		good := m.target(bucket)
		cases := []struct {
			name     string
			target   s3Target
			noRegion bool
			want     []string // each group: one of the alternatives (|) must appear in stderr
		}{
			{"wrong-secret-key", withKeys(good, minioUser, "not-the-secret"), false, []string{"secretkey|credential", "access denied|signature"}},
			{"unknown-access-key", withKeys(good, "nobody-here", minioPassword), false, []string{"accesskey|credential", "access denied|access key"}},
			{"missing-bucket", withBucket(good, "no-such-bucket-here"), false, []string{"no-such-bucket-here", "does not exist|nosuchbucket|no such bucket|not found"}},
			{"missing-bucket-no-region", withBucket(good, "no-such-bucket-either"), true, []string{"no-such-bucket-either", "does not exist|nosuchbucket|no such bucket|not found"}},
			{"wrong-secret-key-no-region", withKeys(good, minioUser, "not-the-secret"), true, []string{"secretkey|credential", "access denied|signature"}},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				dir := t.TempDir()
				addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
				cfg := berthS3Config(addr, c.target)
				if c.noRegion {
					cfg = strings.Replace(cfg, "    region: us-east-1\n", "", 1)
				}
				cfgPath := filepath.Join(dir, "config.yml")
				if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				stdout, stderr, err := tryRun(t, cmdOpts{timeout: 90 * time.Second, dropEnv: "REGISTRY_", dir: dir}, berthBin, "serve", cfgPath)
				elapsed := time.Since(start)
				t.Logf("exit after %s: %v\n--- stderr:\n%s", elapsed.Round(time.Millisecond), err, tail(stderr, 10))
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() <= 0 {
					t.Fatalf("want a non-zero exit status, got %v\nconfig:\n%s\n--- stdout:\n%s\n--- stderr:\n%s", err, cfg, tail(stdout, 20), tail(stderr, 20))
				}
				if elapsed > 30*time.Second {
					t.Errorf("took %s to give up, want under 30s", elapsed.Round(time.Millisecond))
				}
				low := strings.ToLower(stderr)
				for _, group := range c.want {
					found := false
					for _, alt := range strings.Split(group, "|") {
						found = found || strings.Contains(low, alt)
					}
					if !found {
						t.Errorf("stderr does not say what is wrong: none of %q in:\n%s", group, stderr)
					}
				}
			})
		}
	})
}

func withKeys(s s3Target, access, secret string) s3Target {
	s.AccessKey, s.SecretKey = access, secret
	return s
}

func withBucket(s s3Target, bucket string) s3Target {
	s.Bucket = bucket
	return s
}

// checkOutageError requires a 5xx answer with an OCI error body.
func checkOutageError(t *testing.T, what string, resp *http.Response, body []byte) {
	t.Helper()
	if resp.StatusCode < 500 || resp.StatusCode > 599 {
		t.Errorf("%s: %s, want a 5xx: %.300s", what, resp.Status, body)
		return
	}
	if _, ok := parseOCIError(body); !ok {
		t.Errorf("%s: %s without an OCI error body (Content-Type %q): %.300s", what, resp.Status, resp.Header.Get("Content-Type"), body)
	}
}
