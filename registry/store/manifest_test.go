package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

var (
	dCfg   = digest.FromString("config")
	dLayer = digest.FromString("layer")
	dChild = digest.FromString("child")
	dSubj  = digest.FromString("subject")
	hexCfg = dCfg.Encoded()
)

// m builds a manifest body from fields; nil values are left out.
func m(fields map[string]any) []byte {
	for k, v := range fields {
		if v == nil {
			delete(fields, k)
		}
	}
	return manifestJSON(fields)
}

func ociManifest(extra map[string]any) map[string]any {
	f := map[string]any{
		"schemaVersion": 2,
		"mediaType":     MediaTypeOCIManifest,
		"config":        desc(ocispec.MediaTypeImageConfig, dCfg, 10),
		"layers":        []any{desc(ocispec.MediaTypeImageLayerGzip, dLayer, 20)},
	}
	for k, v := range extra {
		f[k] = v
	}
	return f
}

func ociIndex(extra map[string]any) map[string]any {
	f := map[string]any{
		"schemaVersion": 2,
		"mediaType":     MediaTypeOCIIndex,
		"manifests": []any{
			desc(MediaTypeOCIManifest, dChild, 300),
			desc(MediaTypeOCIManifest, dCfg, 301),
		},
	}
	for k, v := range extra {
		f[k] = v
	}
	return f
}

func badDesc(d string, size any) map[string]any {
	return map[string]any{"mediaType": ocispec.MediaTypeImageLayerGzip, "digest": d, "size": size}
}

type parseCase struct {
	name        string
	contentType string
	body        []byte
	// on success
	mediaType    string
	artifactType string
	layers       int
	manifests    int
	subject      bool
	// on failure
	err error
}

func parseManifestCases() []parseCase {
	artifact := ociManifest(map[string]any{
		"artifactType": "application/vnd.example.sbom",
		"config":       desc(ocispec.MediaTypeEmptyJSON, ocispec.DescriptorEmptyJSON.Digest, 2),
		"subject":      desc(MediaTypeOCIManifest, dSubj, 500),
	})
	nondist := ociManifest(map[string]any{"layers": []any{map[string]any{
		"mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
		"digest":    dLayer.String(), "size": 20, "urls": []string{"https://example.com/layer"},
	}}})
	docker := ociManifest(map[string]any{"mediaType": MediaTypeDockerManifest,
		"config": desc("application/vnd.docker.container.image.v1+json", dCfg, 10),
		"layers": []any{desc("application/vnd.docker.image.rootfs.diff.tar.gzip", dLayer, 20)}})
	dockerList := ociIndex(map[string]any{"mediaType": MediaTypeDockerManifestList,
		"manifests": []any{desc(MediaTypeDockerManifest, dChild, 300)}})
	noMT := func(f map[string]any) map[string]any { f["mediaType"] = nil; return f }
	valid := m(ociManifest(nil))
	big := append(bytes.Clone(valid), bytes.Repeat([]byte(" "), MaxManifestSize-len(valid))...)

	return []parseCase{
		// Accepted.
		{name: "oci manifest", contentType: MediaTypeOCIManifest, body: valid, mediaType: MediaTypeOCIManifest, layers: 1},
		{name: "oci manifest without content type", body: valid, mediaType: MediaTypeOCIManifest, layers: 1},
		{name: "oci manifest content type with parameters", contentType: MediaTypeOCIManifest + "; charset=utf-8", body: m(noMT(ociManifest(nil))), mediaType: MediaTypeOCIManifest, layers: 1},
		{name: "oci manifest media type from content type", contentType: MediaTypeOCIManifest, body: m(noMT(ociManifest(nil))), mediaType: MediaTypeOCIManifest, layers: 1},
		{name: "oci manifest no media type anywhere", body: m(noMT(ociManifest(nil))), mediaType: MediaTypeOCIManifest, layers: 1},
		{name: "unrelated content type is ignored", contentType: "application/json", body: valid, mediaType: MediaTypeOCIManifest, layers: 1},
		{name: "oci manifest without layers", body: m(ociManifest(map[string]any{"layers": nil})), mediaType: MediaTypeOCIManifest},
		{name: "oci manifest with annotations", body: m(ociManifest(map[string]any{"annotations": map[string]string{"a": "b"}})), mediaType: MediaTypeOCIManifest, layers: 1},
		{name: "oci index", contentType: MediaTypeOCIIndex, body: m(ociIndex(nil)), mediaType: MediaTypeOCIIndex, manifests: 2},
		{name: "oci index media type from manifests field", body: m(noMT(ociIndex(nil))), mediaType: MediaTypeOCIIndex, manifests: 2},
		{name: "oci index media type from content type", contentType: MediaTypeOCIIndex, body: m(noMT(ociIndex(nil))), mediaType: MediaTypeOCIIndex, manifests: 2},
		{name: "empty oci index", body: m(ociIndex(map[string]any{"manifests": []any{}})), mediaType: MediaTypeOCIIndex},
		{name: "docker schema2 manifest", contentType: MediaTypeDockerManifest, body: m(docker), mediaType: MediaTypeDockerManifest, layers: 1},
		{name: "docker schema2 media type from content type", contentType: MediaTypeDockerManifest, body: m(noMT(ociManifest(nil))), mediaType: MediaTypeDockerManifest, layers: 1},
		{name: "docker manifest list", contentType: MediaTypeDockerManifestList, body: m(dockerList), mediaType: MediaTypeDockerManifestList, manifests: 1},
		{name: "artifact with artifactType and subject", contentType: MediaTypeOCIManifest, body: m(artifact), mediaType: MediaTypeOCIManifest, artifactType: "application/vnd.example.sbom", layers: 1, subject: true},
		{name: "index with artifactType and subject", body: m(ociIndex(map[string]any{"artifactType": "application/vnd.example.set", "subject": desc(MediaTypeOCIManifest, dSubj, 5)})), mediaType: MediaTypeOCIIndex, artifactType: "application/vnd.example.set", manifests: 2, subject: true},
		{name: "non-distributable layer with urls", body: m(nondist), mediaType: MediaTypeOCIManifest, layers: 1},
		{name: "sha512 descriptors", body: m(ociManifest(map[string]any{"config": desc(ocispec.MediaTypeImageConfig, digest.SHA512.FromString("c"), 1)})), mediaType: MediaTypeOCIManifest, layers: 1},
		{name: "zero sizes", body: m(ociManifest(map[string]any{"config": desc(ocispec.MediaTypeImageConfig, dCfg, 0)})), mediaType: MediaTypeOCIManifest, layers: 1},
		{name: "trailing whitespace", body: append(bytes.Clone(valid), " \n\t\r\n"...), mediaType: MediaTypeOCIManifest, layers: 1},
		{name: "exactly 4 MiB", body: big, mediaType: MediaTypeOCIManifest, layers: 1},

		// Refused.
		{name: "media type does not match content type", contentType: MediaTypeDockerManifest, body: valid, err: ErrManifestInvalid},
		{name: "index body sent as manifest", contentType: MediaTypeOCIManifest, body: m(ociIndex(nil)), err: ErrManifestInvalid},
		{name: "docker list sent as oci index", contentType: MediaTypeOCIIndex, body: m(dockerList), err: ErrManifestInvalid},
		{name: "content type index, body has config", contentType: MediaTypeOCIIndex, body: m(noMT(ociManifest(nil))), err: ErrManifestInvalid},
		{name: "missing config", body: m(ociManifest(map[string]any{"config": nil})), err: ErrManifestInvalid},
		{name: "null config", body: []byte(`{"schemaVersion":2,"mediaType":"` + MediaTypeOCIManifest + `","config":null,"layers":[]}`), err: ErrManifestInvalid},
		{name: "manifest with manifests list", body: m(ociManifest(map[string]any{"manifests": []any{}})), err: ErrManifestInvalid},
		{name: "index with config", body: m(ociIndex(map[string]any{"config": desc(ocispec.MediaTypeImageConfig, dCfg, 1)})), err: ErrManifestInvalid},
		{name: "index with layers", body: m(ociIndex(map[string]any{"layers": []any{}})), err: ErrManifestInvalid},
		{name: "schema1 fsLayers", body: []byte(`{"schemaVersion":1,"name":"a","tag":"b","architecture":"amd64","fsLayers":[{"blobSum":"` + dLayer.String() + `"}],"history":[]}`), err: ErrManifestInvalid},
		{name: "schemaVersion 1", body: m(ociManifest(map[string]any{"schemaVersion": 1})), err: ErrManifestInvalid},
		{name: "schemaVersion 3", body: m(ociManifest(map[string]any{"schemaVersion": 3})), err: ErrManifestInvalid},
		{name: "schemaVersion missing", body: m(ociManifest(map[string]any{"schemaVersion": nil})), err: ErrManifestInvalid},
		{name: "schemaVersion as string", body: m(ociManifest(map[string]any{"schemaVersion": "2"})), err: ErrManifestInvalid},
		{name: "schemaVersion 2.5", body: []byte(`{"schemaVersion":2.5}`), err: ErrManifestInvalid},
		{name: "schema1 signed media type", contentType: "application/vnd.docker.distribution.manifest.v1+prettyjws", body: m(ociManifest(map[string]any{"mediaType": "application/vnd.docker.distribution.manifest.v1+prettyjws"})), err: ErrManifestInvalid},
		{name: "unknown media type", body: m(ociManifest(map[string]any{"mediaType": "application/vnd.example.thing+json"})), err: ErrManifestInvalid},
		{name: "oci artifact manifest media type", body: m(ociManifest(map[string]any{"mediaType": "application/vnd.oci.artifact.manifest.v1+json"})), err: ErrManifestInvalid},
		{name: "media type with different case", body: m(ociManifest(map[string]any{"mediaType": strings.ToUpper(MediaTypeOCIManifest)})), err: ErrManifestInvalid},
		{name: "config digest not hex", body: m(ociManifest(map[string]any{"config": badDesc("sha256:xyz", 1)})), err: ErrManifestInvalid},
		{name: "config digest empty", body: m(ociManifest(map[string]any{"config": badDesc("", 1)})), err: ErrManifestInvalid},
		{name: "layer digest uppercase", body: m(ociManifest(map[string]any{"layers": []any{badDesc("sha256:"+strings.ToUpper(hexCfg), 1)}})), err: ErrManifestInvalid},
		{name: "layer digest md5", body: m(ociManifest(map[string]any{"layers": []any{badDesc("md5:d41d8cd98f00b204e9800998ecf8427e", 1)}})), err: ErrManifestInvalid},
		{name: "layer digest short", body: m(ociManifest(map[string]any{"layers": []any{badDesc("sha256:"+hexCfg[:63], 1)}})), err: ErrManifestInvalid},
		{name: "layer digest long", body: m(ociManifest(map[string]any{"layers": []any{badDesc("sha256:"+hexCfg+"0", 1)}})), err: ErrManifestInvalid},
		{name: "layer digest path traversal", body: m(ociManifest(map[string]any{"layers": []any{badDesc("sha256:../../../etc/passwd", 1)}})), err: ErrManifestInvalid},
		{name: "layer digest without algorithm", body: m(ociManifest(map[string]any{"layers": []any{badDesc(hexCfg, 1)}})), err: ErrManifestInvalid},
		{name: "index entry digest bad", body: m(ociIndex(map[string]any{"manifests": []any{badDesc("sha256:zz", 1)}})), err: ErrManifestInvalid},
		{name: "subject digest bad", body: m(ociManifest(map[string]any{"subject": badDesc("sha256:", 1)})), err: ErrManifestInvalid},
		{name: "negative config size", body: m(ociManifest(map[string]any{"config": desc(ocispec.MediaTypeImageConfig, dCfg, -1)})), err: ErrManifestInvalid},
		{name: "negative layer size", body: m(ociManifest(map[string]any{"layers": []any{desc(ocispec.MediaTypeImageLayer, dLayer, -20)}})), err: ErrManifestInvalid},
		{name: "negative index entry size", body: m(ociIndex(map[string]any{"manifests": []any{desc(MediaTypeOCIManifest, dChild, -1)}})), err: ErrManifestInvalid},
		{name: "negative subject size", body: m(ociManifest(map[string]any{"subject": desc(MediaTypeOCIManifest, dSubj, -5)})), err: ErrManifestInvalid},
		{name: "size as string", body: m(ociManifest(map[string]any{"config": badDesc(dCfg.String(), "10")})), err: ErrManifestInvalid},
		{name: "size as float", body: m(ociManifest(map[string]any{"config": badDesc(dCfg.String(), 1.5)})), err: ErrManifestInvalid},
		{name: "size overflows int64", body: []byte(`{"schemaVersion":2,"config":{"digest":"` + dCfg.String() + `","size":99999999999999999999}}`), err: ErrManifestInvalid},
		{name: "layers not an array", body: m(ociManifest(map[string]any{"layers": "x"})), err: ErrManifestInvalid},
		{name: "trailing garbage", body: append(bytes.Clone(valid), "garbage"...), err: ErrManifestInvalid},
		{name: "second object", body: append(bytes.Clone(valid), valid...), err: ErrManifestInvalid},
		{name: "trailing closing brace", body: append(bytes.Clone(valid), '}'), err: ErrManifestInvalid},
		{name: "trailing closing bracket", body: append(bytes.Clone(valid), "\n]"...), err: ErrManifestInvalid},
		{name: "truncated", body: valid[:len(valid)-1], err: ErrManifestInvalid},
		{name: "empty body", body: nil, err: ErrManifestInvalid},
		{name: "whitespace only", body: []byte(" \n "), err: ErrManifestInvalid},
		{name: "json array", body: []byte(`[` + string(valid) + `]`), err: ErrManifestInvalid},
		{name: "json string", body: []byte(`"manifest"`), err: ErrManifestInvalid},
		{name: "json number", body: []byte(`2`), err: ErrManifestInvalid},
		{name: "json null", body: []byte(`null`), err: ErrManifestInvalid},
		{name: "json true", body: []byte(`true`), err: ErrManifestInvalid},
		{name: "byte order mark", body: append([]byte("\xef\xbb\xbf"), valid...), err: ErrManifestInvalid},
		{name: "oversize", body: append(bytes.Clone(big), ' '), err: ErrTooLarge},
	}
}

func TestParseManifest(t *testing.T) {
	for _, tc := range parseManifestCases() {
		t.Run(tc.name, func(t *testing.T) {
			pm, err := ParseManifest(tc.contentType, tc.body)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("ParseManifest = %v, %v; want error %v", pm, err, tc.err)
				}
				var de *DetailError
				if !errors.As(err, &de) {
					t.Errorf("error %v is not a *DetailError", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseManifest: %v", err)
			}
			if pm.MediaType != tc.mediaType {
				t.Errorf("MediaType %q, want %q", pm.MediaType, tc.mediaType)
			}
			if pm.ArtifactType != tc.artifactType {
				t.Errorf("ArtifactType %q, want %q", pm.ArtifactType, tc.artifactType)
			}
			if len(pm.Layers) != tc.layers || len(pm.Manifests) != tc.manifests {
				t.Errorf("%d layers, %d manifests; want %d, %d", len(pm.Layers), len(pm.Manifests), tc.layers, tc.manifests)
			}
			if (pm.Subject != nil) != tc.subject {
				t.Errorf("Subject %v, want present=%v", pm.Subject, tc.subject)
			}
			checkParsedInvariants(t, pm)
		})
	}
}

// checkParsedInvariants holds for every manifest ParseManifest accepts.
func checkParsedInvariants(t *testing.T, pm *ParsedManifest) {
	t.Helper()
	index := pm.MediaType == MediaTypeOCIIndex || pm.MediaType == MediaTypeDockerManifestList
	if !index && pm.MediaType != MediaTypeOCIManifest && pm.MediaType != MediaTypeDockerManifest {
		t.Fatalf("accepted unknown media type %q", pm.MediaType)
	}
	if pm.IsIndex() != index {
		t.Fatalf("IsIndex() = %v for %q", pm.IsIndex(), pm.MediaType)
	}
	if index && (pm.Config != nil || pm.Layers != nil) {
		t.Fatalf("index with config or layers: %+v", pm)
	}
	if !index && (pm.Config == nil || pm.Manifests != nil) {
		t.Fatalf("image manifest without config or with manifests: %+v", pm)
	}
	descs := append(append([]ocispec.Descriptor{}, pm.Layers...), pm.Manifests...)
	if pm.Config != nil {
		descs = append(descs, *pm.Config)
	}
	if pm.Subject != nil {
		descs = append(descs, *pm.Subject)
	}
	for _, d := range descs {
		if err := d.Digest.Validate(); err != nil || d.Size < 0 {
			t.Fatalf("accepted descriptor %+v (%v)", d, err)
		}
	}
	_ = pm.String()
}

func TestParsedManifestDescriptor(t *testing.T) {
	tests := []struct {
		name, contentType string
		body              []byte
		wantArtifactType  string
	}{
		{"artifactType wins", "", m(ociManifest(map[string]any{"artifactType": "application/x.a"})), "application/x.a"},
		{"config media type otherwise", "", m(ociManifest(nil)), ocispec.MediaTypeImageConfig},
		{"index has no config fallback", "", m(ociIndex(nil)), ""},
		{"index artifactType", "", m(ociIndex(map[string]any{"artifactType": "application/x.b"})), "application/x.b"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pm, err := ParseManifest(tc.contentType, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			d := digest.FromBytes(tc.body)
			got := pm.Descriptor(d, int64(len(tc.body)))
			if got.ArtifactType != tc.wantArtifactType || got.Digest != d || got.Size != int64(len(tc.body)) || got.MediaType != pm.MediaType {
				t.Errorf("Descriptor = %+v", got)
			}
		})
	}
}

func FuzzParseManifest(f *testing.F) {
	for _, tc := range parseManifestCases() {
		if len(tc.body) < 64<<10 {
			f.Add(tc.contentType, tc.body)
		}
	}
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		pm, err := ParseManifest(contentType, body)
		if err != nil {
			if pm != nil {
				t.Fatalf("non-nil manifest with error %v", err)
			}
			if !errors.Is(err, ErrManifestInvalid) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		checkParsedInvariants(t, pm)
		// Whatever is stored is served back to clients that parse it with
		// ordinary JSON decoders: it must be one valid JSON value.
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
	})
}
