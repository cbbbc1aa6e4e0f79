package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// readResults reads the JSON lines of a results file; blank lines are skipped.
func readResults(path string) ([]*result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var rs []*result
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		r := new(result)
		if err := json.Unmarshal([]byte(line), r); err != nil {
			return nil, fmt.Errorf("%s:%d: %v", path, n, err)
		}
		rs = append(rs, r)
	}
	return rs, sc.Err()
}

// metrics lists the numeric fields that are aggregated over rounds.
var metrics = []func(r *result) *float64{
	func(r *result) *float64 { return &r.PushMBps },
	func(r *result) *float64 { return &r.PushChunkedMBps },
	func(r *result) *float64 { return &r.PullMBps },
	func(r *result) *float64 { return &r.HeadRPS },
	func(r *result) *float64 { return &r.HeadP50Ms },
	func(r *result) *float64 { return &r.HeadP99Ms },
	func(r *result) *float64 { return &r.ManifestRPS },
	func(r *result) *float64 { return &r.ManifestP50Ms },
	func(r *result) *float64 { return &r.ManifestP99Ms },
	func(r *result) *float64 { return &r.PeakRSSMiB },
}

// aggregate merges the results of several rounds of one registry: the
// median of every metric, errors summed. Any failed round fails the row.
func aggregate(rs []*result) *result {
	if len(rs) == 1 {
		return rs[0]
	}
	out := &result{Name: rs[0].Name, Errors: map[string]int64{}, FirstErrors: map[string]string{}}
	for _, r := range rs {
		if r.Failed != "" && out.Failed == "" {
			out.Failed = r.Failed
		}
		out.ErrorsTotal += r.ErrorsTotal
		for p, n := range r.Errors {
			out.Errors[p] += n
			if _, ok := out.FirstErrors[p]; !ok {
				out.FirstErrors[p] = r.FirstErrors[p]
			}
		}
	}
	for _, m := range metrics {
		vs := make([]float64, 0, len(rs))
		for _, r := range rs {
			if r.Failed == "" {
				vs = append(vs, *m(r))
			}
		}
		*m(out) = median(vs)
	}
	return out
}

func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	slices.Sort(vs)
	if len(vs)%2 == 1 {
		return vs[len(vs)/2]
	}
	return (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2
}

type column struct {
	head string
	val  func(r *result) string
}

var columns = []column{
	{"push MB/s", func(r *result) string { return fmt.Sprintf("%.0f", r.PushMBps) }},
	{"push-chunked MB/s", func(r *result) string { return fmt.Sprintf("%.0f", r.PushChunkedMBps) }},
	{"pull MB/s", func(r *result) string { return fmt.Sprintf("%.0f", r.PullMBps) }},
	{"HEAD req/s", func(r *result) string { return fmt.Sprintf("%.0f", r.HeadRPS) }},
	{"HEAD p99", func(r *result) string { return fmt.Sprintf("%.2fms", r.HeadP99Ms) }},
	{"mfGET req/s", func(r *result) string { return fmt.Sprintf("%.0f", r.ManifestRPS) }},
	{"mfGET p99", func(r *result) string { return fmt.Sprintf("%.2fms", r.ManifestP99Ms) }},
	{"peak RSS MB", func(r *result) string { return fmt.Sprintf("%.0f", r.PeakRSSMiB) }},
	{"errors", func(r *result) string {
		if r.ErrorsTotal == 0 {
			return "0"
		}
		return fmt.Sprintf("%d !", r.ErrorsTotal)
	}},
}

const nameWidth = 19

// printTable writes the results as a table, then the ratios of subject
// to every other registry, then the first error of each failing phase.
func printTable(w io.Writer, path, subject string) error {
	lines, err := readResults(path)
	if err != nil {
		return err
	}
	// Group the lines by registry, in order of first appearance.
	var names []string
	byName := map[string][]*result{}
	for _, r := range lines {
		if _, ok := byName[r.Name]; !ok {
			names = append(names, r.Name)
		}
		byName[r.Name] = append(byName[r.Name], r)
	}
	rounds := 0
	var rs []*result
	for _, n := range names {
		rounds = max(rounds, len(byName[n]))
		rs = append(rs, aggregate(byName[n]))
	}
	if rounds > 1 {
		fmt.Fprintf(w, "medians over up to %d rounds per registry\n", rounds)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-*s", nameWidth, "registry")
	for _, c := range columns {
		fmt.Fprintf(&b, "  %s", c.head)
	}
	fmt.Fprintln(w, b.String())
	for _, r := range rs {
		b.Reset()
		fmt.Fprintf(&b, "%-*s", nameWidth, r.Name)
		if r.Failed != "" {
			fmt.Fprintf(&b, "  FAILED: %s", r.Failed)
		} else {
			for _, c := range columns {
				fmt.Fprintf(&b, "  %*s", len(c.head), c.val(r))
			}
		}
		fmt.Fprintln(w, b.String())
	}

	var subj *result
	for _, r := range rs {
		if r.Name == subject {
			subj = r
		}
	}
	for _, r := range rs {
		if r.Name == subject {
			continue
		}
		prefix := fmt.Sprintf("ratios %s / %s:", subject, r.Name)
		switch {
		case subj == nil:
			fmt.Fprintf(w, "%s n/a (no %s result)\n", prefix, subject)
		case subj.Failed != "":
			fmt.Fprintf(w, "%s n/a (%s failed)\n", prefix, subject)
		case r.Failed != "":
			fmt.Fprintf(w, "%s n/a (%s failed)\n", prefix, r.Name)
		default:
			line := fmt.Sprintf("%s push %s  push-chunked %s  pull %s  HEAD %s  manifest GET %s  RSS %s",
				prefix,
				ratio(subj.PushMBps, r.PushMBps),
				ratio(subj.PushChunkedMBps, r.PushChunkedMBps),
				ratio(subj.PullMBps, r.PullMBps),
				ratio(subj.HeadRPS, r.HeadRPS),
				ratio(subj.ManifestRPS, r.ManifestRPS),
				ratio(subj.PeakRSSMiB, r.PeakRSSMiB))
			if subj.ErrorsTotal > 0 || r.ErrorsTotal > 0 {
				line += "  (runs with errors: not comparable)"
			}
			fmt.Fprintln(w, line)
		}
	}

	for _, r := range rs {
		if r.ErrorsTotal == 0 {
			continue
		}
		phases := make([]string, 0, len(r.Errors))
		for p := range r.Errors {
			phases = append(phases, p)
		}
		slices.Sort(phases)
		for _, p := range phases {
			fmt.Fprintf(w, "errors %s %s: %d, first: %s\n", r.Name, p, r.Errors[p], r.FirstErrors[p])
		}
	}
	return nil
}

func ratio(a, b float64) string {
	if a == 0 || b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx", a/b)
}
