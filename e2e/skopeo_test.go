//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestSkopeo copies an OCI image made from files to Berth with skopeo, inspects it, copies it
// back to an OCI layout, between repositories, converted to Docker schema 2, and deletes it;
// manifest digests are compared end to end.
func TestSkopeo(t *testing.T) {
	skopeo := need(t, "skopeo")
	addr := startBerth(t, t.TempDir())
	work := t.TempDir()
	sk := func(args ...string) string {
		t.Helper()
		return run(t, skopeo, append([]string{"--insecure-policy"}, args...)...)
	}

	img := newOCIImage(t, "linux", "amd64", "skopeo",
		buildTar(t, busyboxRootfs(t)),
		buildTar(t, []tarEntry{{Name: "data", Dir: true}, {Name: "data/skopeo.txt", Body: []byte("copied by skopeo\n")}}))
	src := filepath.Join(work, "src")
	img.writeLayout(t, src, "v1")

	ref := "docker://" + addr + "/e2e/skopeo/img:v1"
	sk("copy", "--dest-tls-verify=false", "oci:"+src+":v1", ref)

	raw := []byte(sk("inspect", "--raw", "--tls-verify=false", ref))
	if !bytes.Equal(raw, img.Manifest) {
		t.Fatalf("skopeo inspect --raw: manifest changed on the way (digest %s, pushed %s):\n%s\nwant\n%s", digestOf(raw), img.Digest, raw, img.Manifest)
	}
	var info struct {
		Digest   string   `json:"Digest"`
		Layers   []string `json:"Layers"`
		RepoTags []string `json:"RepoTags"`
		Labels   map[string]string
	}
	if err := json.Unmarshal([]byte(sk("inspect", "--tls-verify=false", ref)), &info); err != nil {
		t.Fatal(err)
	}
	if info.Digest != img.Digest || !slices.Equal(info.Layers, img.Layers) || info.Labels["org.berth.e2e"] != "skopeo" {
		t.Errorf("skopeo inspect: digest %s layers %v labels %v; want %s %v", info.Digest, info.Layers, info.Labels, img.Digest, img.Layers)
	}
	if !slices.Equal(info.RepoTags, []string{"v1"}) {
		t.Errorf("skopeo inspect: RepoTags %v, want [v1]", info.RepoTags)
	}

	// Back to an OCI layout: same manifest, every blob intact.
	out := filepath.Join(work, "out")
	sk("copy", "--src-tls-verify=false", ref, "oci:"+out+":v1")
	if d, body := layoutManifest(t, out, "v1"); d != img.Digest || !bytes.Equal(body, img.Manifest) {
		t.Errorf("round trip through the registry: manifest %s, want %s", d, img.Digest)
	}

	// Registry to registry (cross-repository blob mount), under a second tag.
	ref2 := "docker://" + addr + "/e2e/skopeo/copy:v2"
	sk("copy", "--src-tls-verify=false", "--dest-tls-verify=false", ref, ref2)
	if d := digestOf([]byte(sk("inspect", "--raw", "--tls-verify=false", ref2))); d != img.Digest {
		t.Errorf("registry-to-registry copy: digest %s, want %s", d, img.Digest)
	}
	sk("copy", "--src-tls-verify=false", "--dest-tls-verify=false", ref, "docker://"+addr+"/e2e/skopeo/copy:v3")
	var tags struct {
		Repository string
		Tags       []string
	}
	if err := json.Unmarshal([]byte(sk("list-tags", "--tls-verify=false", "docker://"+addr+"/e2e/skopeo/copy")), &tags); err != nil {
		t.Fatal(err)
	}
	slices.Sort(tags.Tags)
	if !slices.Equal(tags.Tags, []string{"v2", "v3"}) {
		t.Errorf("skopeo list-tags e2e/skopeo/copy: %v, want [v2 v3]", tags.Tags)
	}

	// Converted to Docker schema 2 on the way: a different manifest with the same config and
	// layers, which comes back as it was stored.
	ref3 := "docker://" + addr + "/e2e/skopeo/v2s2:v1"
	sk("copy", "--dest-tls-verify=false", "--format", "v2s2", "oci:"+src+":v1", ref3)
	raw3 := []byte(sk("inspect", "--raw", "--tls-verify=false", ref3))
	m3 := parseManifest(t, raw3)
	if m3.MediaType != "application/vnd.docker.distribution.manifest.v2+json" {
		t.Errorf("--format v2s2 stored mediaType %q", m3.MediaType)
	}
	if got, want := m3.blobs(), parseManifest(t, img.Manifest).blobs(); !slices.Equal(got, want) {
		t.Errorf("v2s2 copy references %v, want %v", got, want)
	}
	out3 := filepath.Join(work, "out3")
	sk("copy", "--src-tls-verify=false", ref3, "oci:"+out3+":v1")
	// (skopeo converts the config on the way back to OCI, the layers stay.)
	if _, body := layoutManifest(t, out3, "v1"); !slices.Equal(parseManifest(t, body).blobs()[1:], m3.blobs()[1:]) {
		t.Errorf("v2s2 image copied back to an OCI layout references other layers:\n%s\nstored:\n%s", body, raw3)
	}
	_, _, d3 := getManifest(t, addr, "e2e/skopeo/v2s2", "v1")
	if d3 != digestOf(raw3) {
		t.Errorf("HTTP GET and skopeo disagree on e2e/skopeo/v2s2:v1: %s vs %s", d3, digestOf(raw3))
	}

	// Delete (skopeo deletes the manifest by digest): gone from that repository only.
	sk("delete", "--tls-verify=false", ref2)
	if _, stderr, err := tryRun(t, cmdOpts{}, skopeo, "--insecure-policy", "inspect", "--raw", "--tls-verify=false", ref2); err == nil {
		t.Errorf("%s still readable after skopeo delete", ref2)
	} else if !strings.Contains(strings.ToLower(stderr), "manifest unknown") && !strings.Contains(stderr, "not found") {
		t.Errorf("inspect after delete failed, but not with manifest unknown: %s", stderr)
	}
	if d := digestOf([]byte(sk("inspect", "--raw", "--tls-verify=false", ref))); d != img.Digest {
		t.Errorf("%s after deleting the same manifest in another repository: %s", ref, d)
	}
}
