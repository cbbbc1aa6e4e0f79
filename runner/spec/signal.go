package spec

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// Real-time signal range on Linux as glibc exposes it to programs (what Docker's signal
// table names SIGRTMIN and SIGRTMAX).
const (
	sigRTMin = 34
	sigRTMax = 64
)

// ParseSignal parses a signal the way Docker's --stop-signal and `kill -s` do: a number
// ("9"), or a name with or without the SIG prefix in any case ("SIGTERM", "term",
// "RTMIN+3", "SIGRTMAX-1"). 0 and unknown names are errors ("Invalid signal: x").
func ParseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > sigRTMax {
			return 0, fmt.Errorf("Invalid signal: %s", s)
		}
		return syscall.Signal(n), nil
	}
	name := strings.TrimPrefix(strings.ToUpper(s), "SIG")
	if rest, ok := strings.CutPrefix(name, "RTMIN"); ok {
		return rtSignal(s, sigRTMin, rest, '+')
	}
	if rest, ok := strings.CutPrefix(name, "RTMAX"); ok {
		return rtSignal(s, sigRTMax, rest, '-')
	}
	if sig := unix.SignalNum("SIG" + name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("Invalid signal: %s", s)
}

func rtSignal(orig string, base int, rest string, sign byte) (syscall.Signal, error) {
	if rest == "" {
		return syscall.Signal(base), nil
	}
	if rest[0] != sign {
		return 0, fmt.Errorf("Invalid signal: %s", orig)
	}
	n, err := strconv.Atoi(rest[1:])
	if err != nil || n < 1 || n > sigRTMax-sigRTMin-1 {
		return 0, fmt.Errorf("Invalid signal: %s", orig)
	}
	if sign == '+' {
		return syscall.Signal(base + n), nil
	}
	return syscall.Signal(base - n), nil
}

// SignalName names a signal as Docker prints it: "SIGTERM", "SIGRTMIN+3"; a number
// without a name is given as digits.
func SignalName(sig syscall.Signal) string {
	if n := unix.SignalName(sig); n != "" {
		return n
	}
	switch {
	case int(sig) == sigRTMin:
		return "SIGRTMIN"
	case int(sig) == sigRTMax:
		return "SIGRTMAX"
	case int(sig) > sigRTMin && int(sig) < sigRTMax:
		return fmt.Sprintf("SIGRTMIN+%d", int(sig)-sigRTMin)
	}
	return strconv.Itoa(int(sig))
}

// StopSignal is the signal `stop` sends first: --stop-signal, else the image's
// STOPSIGNAL, else SIGTERM. img and opts may be nil.
func StopSignal(img *ocispec.Image, opts *Options) (syscall.Signal, error) {
	s := ""
	if opts != nil {
		s = opts.StopSignal
	}
	if s == "" && img != nil {
		s = img.Config.StopSignal
	}
	if s == "" {
		return syscall.SIGTERM, nil
	}
	return ParseSignal(s)
}
