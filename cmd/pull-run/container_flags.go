package main

import (
	"strconv"

	"github.com/berth-registry/berth/runner/cgroups"
)

// Flag values with Docker's parsing (and so its messages: pflag words a Set error as
// `invalid argument "1x" for "-m, --memory" flag: invalid suffix: 'x'`).

// memBytes is a size flag (-m, --memory-reservation, --shm-size): "200M", "1g", "512k".
type memBytes int64

func (m *memBytes) Set(s string) error {
	v, err := cgroups.ParseSize(s)
	if err != nil {
		return err
	}
	*m = memBytes(v)
	return nil
}

func (m *memBytes) String() string {
	if *m == 0 {
		return ""
	}
	return strconv.FormatInt(int64(*m), 10)
}

func (m *memBytes) Type() string { return "bytes" }

// memSwapBytes is --memory-swap: a size, or -1 for unlimited swap.
type memSwapBytes int64

func (m *memSwapBytes) Set(s string) error {
	v, err := cgroups.ParseMemorySwap(s)
	if err != nil {
		return err
	}
	*m = memSwapBytes(v)
	return nil
}

func (m *memSwapBytes) String() string {
	if *m == 0 {
		return ""
	}
	return strconv.FormatInt(int64(*m), 10)
}

func (m *memSwapBytes) Type() string { return "bytes" }

// nanoCPUs is --cpus: a decimal number of CPUs, kept exactly as nano-CPUs.
type nanoCPUs int64

func (n *nanoCPUs) Set(s string) error {
	v, err := cgroups.ParseCPUs(s)
	if err != nil {
		return err
	}
	*n = nanoCPUs(v)
	return nil
}

func (n *nanoCPUs) String() string {
	if *n == 0 {
		return ""
	}
	return strconv.FormatFloat(float64(*n)/1e9, 'f', -1, 64)
}

func (n *nanoCPUs) Type() string { return "decimal" }
