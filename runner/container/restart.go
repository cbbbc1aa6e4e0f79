package container

import (
	"strconv"
	"strings"
	"time"
)

// Restart policy names.
const (
	RestartNo            = "no"
	RestartAlways        = "always"
	RestartUnlessStopped = "unless-stopped"
	RestartOnFailure     = "on-failure"
)

// ParseRestartPolicy parses a --restart value, "no", "always", "unless-stopped" or
// "on-failure[:max-retries]", and validates it, with Docker's messages.
func ParseRestartPolicy(s string) (RestartPolicy, error) {
	var p RestartPolicy
	k, v, ok := strings.Cut(s, ":")
	if ok && k == "" {
		return p, invalidf("invalid restart policy format: no policy provided before colon")
	}
	if v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return p, invalidf("invalid restart policy format: maximum retry count must be an integer")
		}
		p.MaximumRetryCount = n
	}
	p.Name = k
	return p, p.Validate()
}

// Validate checks the policy as the Docker daemon does.
func (p RestartPolicy) Validate() error {
	switch p.Name {
	case "", RestartNo, RestartAlways, RestartUnlessStopped:
		if p.MaximumRetryCount != 0 {
			return invalidf("invalid restart policy: maximum retry count can only be used with 'on-failure'")
		}
	case RestartOnFailure:
		if p.MaximumRetryCount < 0 {
			return invalidf("invalid restart policy: maximum retry count cannot be negative")
		}
	default:
		return invalidf("invalid restart policy: unknown policy '%s'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'", p.Name)
	}
	return nil
}

// IsNone reports whether the policy never restarts.
func (p RestartPolicy) IsNone() bool { return p.Name == "" || p.Name == RestartNo }

// String is the policy as --restart takes it.
func (p RestartPolicy) String() string {
	if p.IsNone() {
		return RestartNo
	}
	if p.Name == RestartOnFailure && p.MaximumRetryCount > 0 {
		return p.Name + ":" + strconv.Itoa(p.MaximumRetryCount)
	}
	return p.Name
}

// Docker's restart manager: the delay starts at 100 ms and doubles after each restart up to
// one minute; it goes back to 100 ms when the container ran for at least 10 s.
const (
	restartDelayMin   = 100 * time.Millisecond
	restartDelayMax   = time.Minute
	restartResetAfter = 10 * time.Second
)

// restartManager decides, after each exit, whether to restart and after which delay.
type restartManager struct {
	policy RestartPolicy
	delay  time.Duration
}

// shouldRestart is Docker's RestartManager.ShouldRestart: restartCount is the number of
// restarts so far, ran how long the run lasted.
func (r *restartManager) shouldRestart(exitCode int, manuallyStopped bool, restartCount int, ran time.Duration) (bool, time.Duration) {
	if r.policy.IsNone() || manuallyStopped {
		return false, 0
	}
	if ran >= restartResetAfter {
		r.delay = 0
	}
	switch {
	case r.delay == 0:
		r.delay = restartDelayMin
	case r.delay < restartDelayMax:
		r.delay *= 2
	}
	r.delay = min(r.delay, restartDelayMax)
	restart := false
	switch r.policy.Name {
	case RestartAlways, RestartUnlessStopped:
		restart = true
	case RestartOnFailure:
		if max := r.policy.MaximumRetryCount; max == 0 || restartCount < max {
			restart = exitCode != 0
		}
	}
	return restart, r.delay
}

// bootRestart is the decision of `system boot` (Docker's daemon start): always restarts
// even a container stopped by hand (that is what sets it apart from unless-stopped),
// unless-stopped one that was not stopped by hand, on-failure one that failed and was not
// stopped by hand.
func bootRestart(p RestartPolicy, st *State) bool {
	switch p.Name {
	case RestartAlways:
		return true
	case RestartUnlessStopped:
		return !st.ManuallyStopped
	case RestartOnFailure:
		return !st.ManuallyStopped && st.ExitCode != 0
	}
	return false
}
