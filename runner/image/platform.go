package image

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// DefaultPlatform returns the host's platform: linux/GOARCH, with the variant for arm
// (v7 unless /proc/cpuinfo says otherwise) and none for arm64 (v8 is its only variant).
func DefaultPlatform() ocispec.Platform {
	p := ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}
	if runtime.GOARCH == "arm" {
		p.Variant = armVariant()
	}
	return p
}

// armVariant reads the CPU architecture of a 32-bit arm host from /proc/cpuinfo.
func armVariant() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "v7"
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(k) != "CPU architecture" {
			continue
		}
		switch strings.TrimSpace(v) {
		case "5", "5TE", "5TEJ":
			return "v5"
		case "6", "6TEJ":
			return "v6"
		case "8", "AArch64":
			return "v8"
		}
		return "v7"
	}
	return "v7"
}

// ParsePlatform parses "os[/arch[/variant]]" (as --platform takes it, e.g. "linux/amd64",
// "linux/arm64/v8", "linux/arm/v7") into a normalised platform. An architecture alone
// ("arm64") means linux.
func ParsePlatform(s string) (ocispec.Platform, error) {
	s = strings.TrimSpace(s)
	parts := strings.Split(s, "/")
	var p ocispec.Platform
	switch len(parts) {
	case 1:
		if parts[0] == "" {
			return p, fmt.Errorf("invalid platform %q: empty", s)
		}
		if isOS(parts[0]) {
			p.OS = parts[0]
			p.Architecture = runtime.GOARCH
		} else {
			p.OS, p.Architecture = "linux", parts[0]
		}
	case 2:
		p.OS, p.Architecture = parts[0], parts[1]
	case 3:
		p.OS, p.Architecture, p.Variant = parts[0], parts[1], parts[2]
	default:
		return p, fmt.Errorf("invalid platform %q: want os/arch[/variant]", s)
	}
	for _, part := range parts {
		if part == "" || strings.ContainsAny(part, " \t") {
			return p, fmt.Errorf("invalid platform %q: want os/arch[/variant]", s)
		}
	}
	p.OS = strings.ToLower(p.OS)
	p.Architecture, p.Variant = normalizeArch(strings.ToLower(p.Architecture), strings.ToLower(p.Variant))
	return p, nil
}

func isOS(s string) bool {
	return slices.Contains([]string{"linux", "windows", "darwin", "freebsd", "netbsd", "openbsd", "solaris", "illumos", "aix", "plan9", "js", "wasip1"}, strings.ToLower(s))
}

// normalizeArch maps the names of architectures and variants to the ones OCI indexes use.
func normalizeArch(arch, variant string) (string, string) {
	switch arch {
	case "i386", "i686", "x86":
		return "386", ""
	case "x86_64", "x86-64", "amd64":
		if variant == "v1" {
			variant = ""
		}
		return "amd64", variant
	case "aarch64", "arm64":
		if variant == "8" || variant == "v8" {
			variant = ""
		}
		return "arm64", variant
	case "armhf":
		return "arm", "v7"
	case "armel":
		return "arm", "v6"
	case "arm":
		switch variant {
		case "", "7":
			variant = "v7"
		case "5", "6", "8":
			variant = "v" + variant
		}
		return "arm", variant
	}
	return arch, variant
}

// FormatPlatform returns "os/arch[/variant]".
func FormatPlatform(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// platformRank tells how well have serves want: 0 = not at all, higher is better.
func platformRank(want, have ocispec.Platform) int {
	if !strings.EqualFold(want.OS, have.OS) {
		return 0
	}
	wa, wv := normalizeArch(strings.ToLower(want.Architecture), strings.ToLower(want.Variant))
	ha, hv := normalizeArch(strings.ToLower(have.Architecture), strings.ToLower(have.Variant))
	if wa != ha {
		return 0
	}
	switch {
	case wv == hv:
		return 100
	case wv == "" && hv == "":
		return 100
	case wv == "":
		return 50 // any variant will do; prefer an exact (empty) one
	case wa == "arm":
		// An armv7 host runs v6 and v5 code, a v6 host v5 code.
		order := []string{"v8", "v7", "v6", "v5"}
		wi, hi := slices.Index(order, wv), slices.Index(order, hv)
		if wi >= 0 && hi > wi {
			return 90 - (hi - wi)
		}
	}
	return 0
}

// selectManifest picks the best manifest of an index for want; ok is false when none runs
// there. Entries without a platform (attestations, artifacts) are skipped.
func selectManifest(idx ocispec.Index, want ocispec.Platform) (ocispec.Descriptor, bool) {
	best, bestRank := ocispec.Descriptor{}, 0
	for _, m := range idx.Manifests {
		if m.Platform == nil {
			continue
		}
		if r := platformRank(want, *m.Platform); r > bestRank {
			best, bestRank = m, r
		}
	}
	return best, bestRank > 0
}

// availablePlatforms lists the platforms of an index, for errors.
func availablePlatforms(idx ocispec.Index) []string {
	var out []string
	for _, m := range idx.Manifests {
		if m.Platform == nil || m.Platform.OS == "unknown" {
			continue
		}
		s := FormatPlatform(*m.Platform)
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
