//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestS3Conformance runs the OCI conformance suite (TestConformance's settings: every API and
// data set, 0 failures, 0 skipped) against Berth storing into a MinIO bucket.
func TestS3Conformance(t *testing.T) {
	need(t, "conformance")
	m := startMinio(t)
	target := m.target(m.NewBucket(t, "conformance"))
	target.Root = "/berth/conformance"
	b := startBerthS3(t, target)
	runConformance(t, b.Addr)

	// The bucket holds distribution's layout below the root directory, nothing else.
	keys := m.Keys(t, target.Bucket)
	if len(keys) == 0 {
		t.Fatalf("bucket %s is empty after the conformance suite", target.Bucket)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "berth/conformance/docker/registry/v2/") {
			t.Errorf("key %q outside <rootdirectory>/docker/registry/v2/", k)
		}
	}
}

// TestS3Replicas runs three Berth replicas on one bucket behind a round-robin proxy: the
// conformance suite and docker push/pull go through the proxy, so consecutive requests of one
// operation land on different replicas; a chunked upload is driven by hand across them.
func TestS3Replicas(t *testing.T) {
	need(t, "conformance")
	docker := needDocker(t)
	m := startMinio(t)
	target := m.target(m.NewBucket(t, "replicas"))
	var replicas []*registryServer
	var addrs []string
	for range 3 {
		r := startBerthS3(t, target)
		replicas = append(replicas, r)
		addrs = append(addrs, r.Addr)
	}
	proxy := startRRProxy(t, addrs...)

	t.Run("conformance", func(t *testing.T) {
		runConformance(t, proxy.Addr)
		hits := proxy.Hits()
		t.Logf("requests per replica: %v", hits)
		for _, a := range addrs {
			if hits[a] == 0 {
				t.Errorf("replica %s received no request through the proxy", a)
			}
		}
	})

	t.Run("docker", func(t *testing.T) {
		s3DockerPushPull(t, docker, proxy.Addr, addrs)
	})

	t.Run("chunked-across-replicas", func(t *testing.T) {
		a, b, c := addrs[0], addrs[1], addrs[2]
		repo := "e2e/s3/replicas/chunked"
		// 6 MiB (more than one S3 part), then 1 MiB, then a last 100 KiB sent with the PUT.
		chunks := [][]byte{randomBytes(1, 6<<20), randomBytes(2, 1<<20), randomBytes(3, 100<<10)}
		blob := append(append(append([]byte{}, chunks[0]...), chunks[1]...), chunks[2]...)
		dgst := digestOf(blob)

		loc := startUpload(t, a, repo)
		t.Logf("POST on A (%s): %s", a, loc)
		loc = mustPatch(t, b, loc, 0, chunks[0])
		t.Logf("PATCH bytes 0-%d on B (%s)", len(chunks[0])-1, b)
		if got := uploadStatus(t, c, loc); got != int64(len(chunks[0])) {
			t.Fatalf("upload status on C after chunk 1 (written on B): %d bytes, want %d", got, len(chunks[0]))
		}
		if st := blobStatus(t, a, repo, dgst); st != 404 {
			t.Fatalf("HEAD of the blob before completion: %d, want 404", st)
		}
		off := int64(len(chunks[0]))
		loc = mustPatch(t, c, loc, off, chunks[1])
		t.Logf("PATCH bytes %d-%d on C (%s)", off, off+int64(len(chunks[1]))-1, c)
		off += int64(len(chunks[1]))
		completeUpload(t, a, loc, dgst, off, chunks[2])
		t.Logf("PUT ?digest=%s with bytes %d-%d on A: 201", dgst, off, len(blob)-1)
		for _, r := range addrs {
			checkBlob(t, r, repo, dgst, blob)
		}
		checkBlob(t, proxy.Addr, repo, dgst, blob)
		// The session is gone everywhere.
		for _, r := range addrs {
			resp, body := httpDo(t, "GET", "http://"+r+loc, nil, nil)
			if resp.StatusCode != 404 {
				t.Errorf("GET http://%s%s after completion: %s, want 404: %s", r, loc, resp.Status, body)
			}
		}
		// No upload data is left behind in the bucket.
		for _, k := range m.Keys(t, target.Bucket) {
			if strings.Contains(k, "/_uploads/") {
				t.Errorf("bucket still holds upload key %s after completion", k)
			}
		}
	})
}

// s3DockerPushPull builds a multi-layer image with the Docker Engine (from busybox-static,
// offline), pushes it through the proxy, checks every replica serves the digest docker
// reported, removes it locally and pulls it back through the proxy.
func s3DockerPushPull(t *testing.T, docker, proxy string, replicas []string) {
	work := t.TempDir()
	u := uniq()
	base := "berth-e2e-s3base:" + u
	local := "berth-e2e-s3multi:" + u
	ref := proxy + "/e2e/s3/docker:v1"
	t.Cleanup(func() {
		_, _, _ = tryRun(t, cmdOpts{}, docker, "rmi", "-f", base, local, ref)
		_, _, _ = tryRun(t, cmdOpts{}, docker, "image", "prune", "-f", "--filter", "label=org.berth.e2e="+u)
	})
	baseTar := filepath.Join(work, "base.tar")
	if err := os.WriteFile(baseTar, buildTar(t, busyboxRootfs(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, docker, "import", "--change", `CMD ["/bin/busybox","echo","ok"]`, baseTar, base)
	ctxDir := filepath.Join(work, "ctx")
	if err := os.MkdirAll(ctxDir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(ctxDir, "hello.txt"), "hello from berth on s3 "+u+"\n")
	// The last layer is 7 MiB of random data: more than one S3 part.
	writeFile(t, filepath.Join(ctxDir, "Dockerfile"), `FROM `+base+`
LABEL org.berth.e2e=`+u+`
COPY hello.txt /data/hello.txt
RUN ["/bin/busybox", "sh", "-c", "echo layer-two > /data/two.txt"]
RUN ["/bin/busybox", "sh", "-c", "mkdir -p /data/three && /bin/busybox dd if=/dev/urandom of=/data/three/random bs=1024 count=7168 2>/dev/null"]
CMD ["/bin/busybox", "cat", "/data/two.txt"]
`)
	runWith(t, cmdOpts{timeout: 3 * time.Minute, env: []string{"DOCKER_BUILDKIT=0"}}, docker, "build", "-t", local, ctxDir)
	run(t, docker, "tag", local, ref)

	out := runWith(t, cmdOpts{timeout: 3 * time.Minute}, docker, "push", ref)
	mm := dockerPushDigestRE.FindStringSubmatch(out)
	if mm == nil {
		t.Fatalf("no digest in docker push output:\n%s", out)
	}
	pushed := mm[1]
	var layers []string
	for _, r := range append([]string{proxy}, replicas...) {
		body, _, d := getManifest(t, r, "e2e/s3/docker", "v1")
		if d != pushed {
			t.Fatalf("%s serves e2e/s3/docker:v1 as %s, docker pushed %s", r, d, pushed)
		}
		man := parseManifest(t, body)
		if len(man.Layers) != 4 {
			t.Fatalf("pushed manifest has %d layers, want 4:\n%s", len(man.Layers), body)
		}
		layers = man.blobs()
	}
	// Every replica serves every blob, with the right digest.
	for i, d := range layers {
		r := replicas[i%len(replicas)]
		resp, body := httpDo(t, "GET", fmt.Sprintf("http://%s/v2/e2e/s3/docker/blobs/%s", r, d), nil, nil)
		if resp.StatusCode != 200 || digestOf(body) != d {
			t.Errorf("GET blob %s from %s: %s, content digest %s", d, r, resp.Status, digestOf(body))
		}
	}

	run(t, docker, "rmi", ref, local, base)
	out = runWith(t, cmdOpts{timeout: 3 * time.Minute}, docker, "pull", ref)
	if !strings.Contains(out, "Digest: "+pushed) {
		t.Errorf("docker pull %s: no 'Digest: %s' in output:\n%s", ref, pushed, out)
	}
	repoDigests := run(t, docker, "image", "inspect", "--format", "{{json .RepoDigests}}", ref)
	if !strings.Contains(repoDigests, "/e2e/s3/docker@"+pushed) {
		t.Errorf("pulled image's RepoDigests %s lack %s", strings.TrimSpace(repoDigests), pushed)
	}
	out = run(t, docker, "run", "--rm", "--network", "none", ref, "/bin/busybox", "cat", "/data/hello.txt")
	if strings.TrimSpace(out) != "hello from berth on s3 "+u {
		t.Errorf("/data/hello.txt in the pulled image: %q", out)
	}
}
