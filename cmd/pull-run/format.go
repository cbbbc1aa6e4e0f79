package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"text/template"
	"time"
	"unicode"
)

var decimalUnits = []string{"B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"}

// humanSizePrecision formats a size in decimal units with precision significant digits, as
// Docker's go-units HumanSizeWithPrecision does ("4.26MB", "0B", "1.5kB").
func humanSizePrecision(size float64, precision int) string {
	i := 0
	for size >= 1000 && i < len(decimalUnits)-1 {
		size /= 1000
		i++
	}
	return fmt.Sprintf("%.*g%s", precision, size, decimalUnits[i])
}

// humanSize is `docker images`' SIZE column (3 significant digits).
func humanSize(size int64) string { return humanSizePrecision(float64(size), 3) }

// humanDuration is go-units' HumanDuration: "Less than a second", "About a minute",
// "2 hours", "3 weeks", …
func humanDuration(d time.Duration) string {
	if seconds := int(d.Seconds()); seconds < 1 {
		return "Less than a second"
	} else if seconds == 1 {
		return "1 second"
	} else if seconds < 60 {
		return fmt.Sprintf("%d seconds", seconds)
	} else if minutes := int(d.Minutes()); minutes == 1 {
		return "About a minute"
	} else if minutes < 60 {
		return fmt.Sprintf("%d minutes", minutes)
	} else if hours := int(d.Round(time.Hour).Hours()); hours == 1 {
		return "About an hour"
	} else if hours < 48 {
		return fmt.Sprintf("%d hours", hours)
	} else if hours < 24*7*2 {
		return fmt.Sprintf("%d days", hours/24)
	} else if hours < 24*30*2 {
		return fmt.Sprintf("%d weeks", hours/24/7)
	} else if hours < 24*365*2 {
		return fmt.Sprintf("%d months", hours/24/30)
	}
	return fmt.Sprintf("%d years", int(d.Hours())/24/365)
}

// createdSince is the CREATED column: "2 hours ago", "N/A" when unknown.
func createdSince(t time.Time, now time.Time) string {
	if t.IsZero() {
		return "N/A"
	}
	return humanDuration(now.Sub(t)) + " ago"
}

// templateFuncs are Docker's --format functions.
var templateFuncs = template.FuncMap{
	"json": func(v any) (string, error) {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return "", err
		}
		return strings.TrimSpace(buf.String()), nil
	},
	"split": strings.Split,
	"join":  strings.Join,
	"title": func(s string) string {
		prev := ' '
		return strings.Map(func(r rune) rune {
			defer func() { prev = r }()
			if unicode.IsSpace(prev) {
				return unicode.ToTitle(r)
			}
			return r
		}, s)
	},
	"lower": strings.ToLower,
	"upper": strings.ToUpper,
	"pad": func(s string, before, after int) string {
		return strings.Repeat(" ", before) + s + strings.Repeat(" ", after)
	},
	"truncate": func(s string, n int) string {
		r := []rune(s)
		if len(r) > n {
			return string(r[:n])
		}
		return s
	},
	"println": func(args ...any) string { return fmt.Sprintln(args...) },
}

// parseTemplate parses a --format template with Docker's functions.
func parseTemplate(format string) (*template.Template, error) {
	tmpl, err := template.New("format").Funcs(templateFuncs).Parse(format)
	if err != nil {
		return nil, fmt.Errorf("template parsing error: %w", err)
	}
	return tmpl, nil
}

// tableWriter is Docker's table layout: columns separated by three spaces at least.
func tableWriter(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 10, 1, 3, ' ', 0)
}

// formatRows prints rows with a --format value: "" or "table" (the default table),
// "json" (one JSON object per line), "table TEMPLATE" (a table with a header), or a bare
// TEMPLATE (one line per row). header maps each field to its column title; defaultTable is
// the template of the default table.
func formatRows[T any](w io.Writer, format, defaultTable string, header T, rows []T) error {
	switch strings.TrimSpace(format) {
	case "":
		format = "table " + defaultTable
	case "table":
		format = "table " + defaultTable
	case "json":
		for _, r := range rows {
			b, err := json.Marshal(r)
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "%s\n", b)
		}
		return nil
	}
	tableMode := false
	if rest, ok := strings.CutPrefix(format, "table"); ok && (rest == "" || rest[0] == ' ' || rest[0] == '\t') {
		tableMode = true
		format = strings.TrimLeft(rest, " \t")
	}
	format = strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(format)
	tmpl, err := parseTemplate(format)
	if err != nil {
		return err
	}
	var out io.Writer = w
	var tw *tabwriter.Writer
	if tableMode {
		tw = tableWriter(w)
		out = tw
		var hb bytes.Buffer
		if err := tmpl.Execute(&hb, header); err != nil {
			return fmt.Errorf("template: %w", err)
		}
		if s := strings.TrimSpace(hb.String()); s != "" {
			fmt.Fprintln(out, hb.String())
		}
	}
	for _, r := range rows {
		var buf bytes.Buffer
		if err := tmpl.Execute(&buf, r); err != nil {
			return fmt.Errorf("template: %w", err)
		}
		fmt.Fprintln(out, buf.String())
	}
	if tw != nil {
		return tw.Flush()
	}
	return nil
}

// labelString is Docker's "k=v,k2=v2" of the LABELS column of ls (sorted).
func labelString(l map[string]string) string {
	var out []string
	for k, v := range l {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// printErrors prints errs as Docker's CLI does, one "Error: …" line each on stderr, and
// returns errSilent (exit status 1) when there is one.
func (a *app) printErrors(errs []string) error {
	for _, e := range errs {
		fmt.Fprintf(a.stderr, "Error: %s\n", e)
	}
	if len(errs) > 0 {
		return errSilent
	}
	return nil
}

// confirm prints warning with Docker's prune question and reads the answer from stdin:
// true for y or yes; otherwise the prompt line is ended.
func (a *app) confirm(warning string) bool {
	fmt.Fprintf(a.stdout, "%s\nAre you sure you want to continue? [y/N] ", warning)
	answer, _ := bufio.NewReader(a.stdin).ReadString('\n')
	if ans := strings.ToLower(strings.TrimSpace(answer)); ans == "y" || ans == "yes" {
		return true
	}
	fmt.Fprintln(a.stdout)
	return false
}

// printDeleted prints a prune's list ("Deleted Networks:", one line each, a blank line);
// nothing when lines is empty.
func (a *app) printDeleted(heading string, lines []string) {
	if len(lines) == 0 {
		return
	}
	fmt.Fprintln(a.stdout, heading)
	for _, l := range lines {
		fmt.Fprintln(a.stdout, l)
	}
	fmt.Fprintln(a.stdout)
}
