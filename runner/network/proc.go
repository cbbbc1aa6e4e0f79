package network

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
)

// processStart returns the start time of a process (field 22 of /proc/<pid>/stat, clock
// ticks since boot), which tells a process from a later one with the same pid.
func processStart(pid int) (uint64, error) {
	start, _, err := processStat(pid)
	return start, err
}

// processStat returns the start time of a process and whether it is a zombie (dead, not
// yet reaped).
func processStat(pid int) (start uint64, zombie bool, err error) {
	if pid <= 0 {
		return 0, false, fmt.Errorf("invalid pid %d", pid)
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false, err
	}
	start, state, err := parseStat(b)
	return start, state == "Z" || state == "X" || state == "x", err
}

// parseStat reads the state (field 3) and start time (field 22) of a /proc/<pid>/stat line. The command (field 2) is in
// parentheses and may hold spaces and parentheses itself: fields are counted after the last
// ')'.
func parseStat(b []byte) (start uint64, state string, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, "", errors.New("malformed /proc stat")
	}
	fields := bytes.Fields(b[i+1:])
	// fields[0] is field 3 (state): field 22 is fields[19].
	if len(fields) < 20 {
		return 0, "", errors.New("malformed /proc stat: too few fields")
	}
	start, err = strconv.ParseUint(string(fields[19]), 10, 64)
	return start, string(fields[0]), err
}

// alive tells whether an endpoint's owner still runs. An endpoint without an owner pid is
// live until detached.
func (e *Endpoint) alive() bool {
	if e.OwnerPid <= 0 {
		return true
	}
	start, zombie, err := processStat(e.OwnerPid)
	if err != nil || zombie {
		return false
	}
	return e.OwnerStart == 0 || start == e.OwnerStart
}
