//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var dockerPushDigestRE = regexp.MustCompile(`digest: (sha256:[0-9a-f]{64}) size: \d+`)

// TestDockerPushPull pushes a multi-layer image built by the Docker Engine (from
// busybox-static, offline) to Berth, pulls it back by tag and by digest, runs it, then pushes
// a second image sharing the base layers and checks each blob is stored once.
func TestDockerPushPull(t *testing.T) {
	docker := needDocker(t)
	root := t.TempDir()
	addr := startBerth(t, root)
	work := t.TempDir()
	u := uniq()

	base := "berth-e2e-base:" + u
	local := "berth-e2e-multi:" + u
	ref := addr + "/e2e/docker/multi:v1"
	ref2 := addr + "/e2e/docker/derived:v1"
	t.Cleanup(func() {
		// Best effort: leave no images behind in the shared Docker store.
		_, _, _ = tryRun(t, cmdOpts{}, docker, "rmi", "-f", base, local, ref, ref2, "berth-e2e-derived:"+u)
		_, _, _ = tryRun(t, cmdOpts{}, docker, "image", "prune", "-f", "--filter", "label=org.berth.e2e="+u)
	})

	// Base image: a root filesystem with busybox, imported as one layer.
	baseTar := filepath.Join(work, "base.tar")
	if err := os.WriteFile(baseTar, buildTar(t, busyboxRootfs(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, docker, "import", "--change", `CMD ["/bin/busybox","echo","ok"]`, baseTar, base)

	// Three more layers: COPY, RUN, RUN (the legacy builder needs no network nor frontend image).
	ctxDir := filepath.Join(work, "ctx")
	if err := os.MkdirAll(ctxDir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(ctxDir, "hello.txt"), "hello from berth e2e "+u+"\n")
	writeFile(t, filepath.Join(ctxDir, "Dockerfile"), `FROM `+base+`
LABEL org.berth.e2e=`+u+`
COPY hello.txt /data/hello.txt
RUN ["/bin/busybox", "sh", "-c", "echo layer-two > /data/two.txt"]
RUN ["/bin/busybox", "sh", "-c", "mkdir -p /data/three && /bin/busybox dd if=/dev/urandom of=/data/three/random bs=1024 count=512 2>/dev/null"]
CMD ["/bin/busybox", "cat", "/data/two.txt"]
`)
	build := cmdOpts{timeout: 3 * time.Minute, env: []string{"DOCKER_BUILDKIT=0"}}
	runWith(t, build, docker, "build", "-t", local, ctxDir)
	run(t, docker, "tag", local, ref)

	out := runWith(t, cmdOpts{timeout: 3 * time.Minute}, docker, "push", ref)
	m := dockerPushDigestRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no digest in docker push output:\n%s", out)
	}
	pushed := m[1]
	body, mediaType, regDigest := getManifest(t, addr, "e2e/docker/multi", "v1")
	if regDigest != pushed {
		t.Fatalf("registry serves e2e/docker/multi:v1 as %s, docker pushed %s", regDigest, pushed)
	}
	if mediaType != "application/vnd.docker.distribution.manifest.v2+json" {
		t.Errorf("Content-Type of the manifest: %q, want the Docker schema 2 type that was pushed", mediaType)
	}
	man := parseManifest(t, body)
	if len(man.Layers) != 4 {
		t.Errorf("pushed manifest has %d layers, want 4:\n%s", len(man.Layers), body)
	}

	// Remove every local copy so that the pull downloads all layers.
	run(t, docker, "rmi", ref, local, base)

	out = runWith(t, cmdOpts{timeout: 3 * time.Minute}, docker, "pull", ref)
	if !strings.Contains(out, "Digest: "+pushed) {
		t.Errorf("docker pull %s: no 'Digest: %s' in output:\n%s", ref, pushed, out)
	}
	repoDigests := run(t, docker, "image", "inspect", "--format", "{{json .RepoDigests}}", ref)
	if !strings.Contains(repoDigests, "/e2e/docker/multi@"+pushed) {
		t.Errorf("pulled image's RepoDigests %s lack %s", strings.TrimSpace(repoDigests), pushed)
	}
	byDigest := addr + "/e2e/docker/multi@" + pushed
	t.Cleanup(func() { _, _, _ = tryRun(t, cmdOpts{}, docker, "rmi", "-f", byDigest) })
	run(t, docker, "rmi", ref)
	out = runWith(t, cmdOpts{timeout: 3 * time.Minute}, docker, "pull", byDigest)
	if !strings.Contains(out, "Digest: "+pushed) {
		t.Errorf("docker pull %s: no 'Digest: %s' in output:\n%s", byDigest, pushed, out)
	}
	run(t, docker, "tag", byDigest, ref)

	// The pulled content works: run it (no network needed).
	out = run(t, docker, "run", "--rm", "--network", "none", ref)
	if strings.TrimSpace(out) != "layer-two" {
		t.Errorf("docker run %s printed %q, want layer-two", ref, out)
	}
	out = run(t, docker, "run", "--rm", "--network", "none", ref, "/bin/busybox", "cat", "/data/hello.txt")
	if strings.TrimSpace(out) != "hello from berth e2e "+u {
		t.Errorf("/data/hello.txt in the pulled image: %q", out)
	}

	// A second image on top of the first one: its push reuses (mounts) the shared layers.
	writeFile(t, filepath.Join(ctxDir, "Dockerfile"), `FROM `+ref+`
RUN ["/bin/busybox", "sh", "-c", "echo derived > /data/derived.txt"]
`)
	runWith(t, build, docker, "build", "-t", ref2, ctxDir)
	out = runWith(t, cmdOpts{timeout: 3 * time.Minute}, docker, "push", ref2)
	m = dockerPushDigestRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no digest in docker push output:\n%s", out)
	}
	body2, _, regDigest2 := getManifest(t, addr, "e2e/docker/derived", "v1")
	if regDigest2 != m[1] {
		t.Fatalf("registry serves e2e/docker/derived:v1 as %s, docker pushed %s", regDigest2, m[1])
	}
	man2 := parseManifest(t, body2)
	if len(man2.Layers) != 5 {
		t.Errorf("derived manifest has %d layers, want 5", len(man2.Layers))
	}
	for i := range min(len(man.Layers), len(man2.Layers)) {
		if man.Layers[i].Digest != man2.Layers[i].Digest {
			t.Errorf("layer %d of the derived image is %s, base image has %s", i, man2.Layers[i].Digest, man.Layers[i].Digest)
		}
	}

	// Deduplication: the blob store holds each manifest, config and layer exactly once.
	want := map[string]bool{regDigest: true, regDigest2: true}
	for _, d := range append(man.blobs(), man2.blobs()...) {
		want[d] = true
	}
	got := storedBlobs(t, root)
	if len(got) != len(want) {
		t.Errorf("blob store holds %d blobs, want %d (2 manifests + configs + distinct layers)", len(got), len(want))
	}
	for _, d := range sortedKeys(want) {
		if !got[d] {
			t.Errorf("blob %s referenced by the pushed images is not stored under blobs/sha256", d)
		}
	}
	for _, d := range sortedKeys(got) {
		if !want[d] {
			t.Errorf("blob store holds %s, which no pushed manifest references", d)
		}
	}
	// Both repositories link the shared base layer (distribution's layout).
	shared := strings.TrimPrefix(man.Layers[0].Digest, "sha256:")
	for _, repo := range []string{"e2e/docker/multi", "e2e/docker/derived"} {
		link := filepath.Join(root, "docker/registry/v2/repositories", repo, "_layers/sha256", shared, "link")
		if b, err := os.ReadFile(link); err != nil || string(b) != "sha256:"+shared {
			t.Errorf("layer link %s: %q, %v", link, b, err)
		}
	}
	if got := catalog(t, addr); strings.Join(got, " ") != "e2e/docker/derived e2e/docker/multi" {
		t.Errorf("catalog: %v", got)
	}
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
