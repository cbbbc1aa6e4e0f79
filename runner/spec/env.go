package spec

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// DefaultPathEnv is the PATH a container gets when its image sets none (Docker's).
const DefaultPathEnv = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// ParseEnvFile reads an --env-file with the Docker CLI's rules: one variable a line;
// leading whitespace is dropped, then empty lines and lines starting with '#' are skipped
// (there are no trailing comments); "KEY=VALUE" is kept as it is (the value untrimmed,
// quotes included); a line "KEY" without '=' takes the caller's value from lookup and is
// left out when the caller has none (lookup nil: always left out). A key with whitespace
// in it or an empty key is an error, and so is invalid UTF-8. A UTF-8 BOM at the start is
// ignored.
func ParseEnvFile(r io.Reader, lookup func(string) (string, bool)) ([]string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	var out []string
	lineNo := 0
	for sc.Scan() {
		b := sc.Bytes()
		if !utf8.Valid(b) {
			return nil, fmt.Errorf("env file contains invalid utf8 bytes at line %d: %v", lineNo+1, b)
		}
		if lineNo == 0 {
			b = bytes.TrimPrefix(b, []byte{0xEF, 0xBB, 0xBF})
		}
		lineNo++
		line := strings.TrimLeftFunc(string(b), unicode.IsSpace)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, hasValue := strings.Cut(line, "=")
		key = strings.TrimLeft(key, " \t")
		if strings.ContainsAny(key, " \t") {
			return nil, fmt.Errorf("poorly formatted environment: variable '%s' contains whitespaces", key)
		}
		if key == "" {
			return nil, fmt.Errorf("poorly formatted environment: no variable name on line '%s'", line)
		}
		if hasValue {
			out = append(out, key+"="+value)
			continue
		}
		if lookup != nil {
			if v, ok := lookup(key); ok {
				out = append(out, key+"="+v)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("env file: %w", err)
	}
	return out, nil
}

// resolveCLIEnv turns the -e values into Docker's container Env entries: "KEY=VALUE" as
// given; a bare "KEY" gets the caller's value, or stays bare (meaning: unset KEY).
func resolveCLIEnv(vals []string, lookup func(string) (string, bool)) ([]string, error) {
	out := make([]string, 0, len(vals))
	for _, v := range vals {
		key, _, hasValue := strings.Cut(v, "=")
		if key == "" {
			return nil, fmt.Errorf("invalid environment variable: %s", v)
		}
		if strings.ContainsRune(v, 0) {
			return nil, fmt.Errorf("invalid environment variable %q: contains a NUL byte", v)
		}
		if !hasValue {
			if val, ok := lookup(key); ok {
				v = key + "=" + val
			}
		}
		out = append(out, v)
	}
	return out, nil
}

// mergeImageEnv is Docker's merge of the container's Env over the image's: the
// container's entries first, then the image's entries whose key the container does not
// name (a bare "KEY" names KEY too, so it hides the image's KEY).
func mergeImageEnv(user, image []string) []string {
	keys := make(map[string]bool, len(user))
	for _, e := range user {
		k, _, _ := strings.Cut(e, "=")
		keys[k] = true
	}
	out := append([]string(nil), user...)
	for _, e := range image {
		k, _, _ := strings.Cut(e, "=")
		if !keys[k] {
			out = append(out, e)
		}
	}
	return out
}

// replaceOrAppendEnv is Docker's ReplaceOrAppendEnvValues: each override replaces the
// entry with its key in place or is appended; a bare "KEY" removes KEY. Unlike Docker, a
// key given twice keeps one entry (the later value) instead of two.
func replaceOrAppendEnv(defaults, overrides []string) []string {
	env := append([]string(nil), defaults...)
	index := make(map[string]int, len(env))
	for i, e := range env {
		k, _, _ := strings.Cut(e, "=")
		index[k] = i
	}
	for _, o := range overrides {
		k, _, hasValue := strings.Cut(o, "=")
		i, exists := index[k]
		switch {
		case !hasValue:
			if exists {
				env[i] = ""
				delete(index, k)
			}
		case exists:
			env[i] = o
		default:
			index[k] = len(env)
			env = append(env, o)
		}
	}
	out := env[:0]
	for _, e := range env {
		if e != "" {
			out = append(out, e)
		}
	}
	return out
}

// hasEnv reports whether env has an entry for key.
func hasEnv(env []string, key string) bool {
	for _, e := range env {
		if k, _, _ := strings.Cut(e, "="); k == key {
			return true
		}
	}
	return false
}
