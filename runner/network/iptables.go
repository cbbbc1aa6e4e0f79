package network

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
)

// forwardChain is Berth's chain in the filter table, jumped to from the top of FORWARD.
const forwardChain = "BERTH-FORWARD"

// isolationChain drops traffic between two Berth networks, as Docker's isolation chains
// do: each network sends what leaves its bridge for another interface there first, and
// each network drops there what goes out through its own bridge.
const isolationChain = "BERTH-ISOLATION"

// iptablesBin finds iptables (also where PATH lacks the sbin directories).
var iptablesBin = sync.OnceValue(func() string {
	if p, err := exec.LookPath("iptables"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/iptables", "/sbin/iptables"} {
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
})

// natBackend chooses how NAT and forwarding rules are made: BERTH_NETWORK_NAT
// ("iptables", "nft" or "none") when set, else iptables when installed, else nft, else none
// (with a warning: containers then reach only the host and each other).
var natBackend = sync.OnceValue(func() string {
	switch v := os.Getenv("BERTH_NETWORK_NAT"); v {
	case "iptables", "nft", "none":
		return v
	case "":
	default:
		slog.Warn("network: ignoring BERTH_NETWORK_NAT: want iptables, nft or none", "value", v)
	}
	if iptablesBin() != "" {
		return "iptables"
	}
	if nftBin() != "" {
		return "nft"
	}
	slog.Warn("network: neither iptables nor nft found: no NAT or forwarding rules; containers on bridge networks reach only the host and each other")
	return "none"
})

// setupNAT enables forwarding and adds the network's rules with the host's backend.
func setupNAT(n *Network, tag string) error {
	backend := natBackend()
	if backend == "none" {
		return nil
	}
	if !n.Internal {
		if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644); err != nil {
			return fmt.Errorf("enable IPv4 forwarding: %w", err)
		}
	}
	if backend == "nft" {
		return nftSetup(n, tag)
	}
	return iptablesSetup(n, tag)
}

// teardownNAT deletes the network's rules.
func teardownNAT(n *Network, tag string) error {
	switch natBackend() {
	case "nft":
		return nftTeardown(n, tag)
	case "iptables":
		return iptablesTeardown(n, tag)
	}
	return nil
}

// cleanupNAT deletes the rules tagged tag of bridges not in keep.
func cleanupNAT(tag string, keep map[string]bool) error {
	switch natBackend() {
	case "nft":
		return nftCleanup(tag, keep)
	case "iptables":
		return iptablesCleanup(tag, keep)
	}
	return nil
}

// iptables runs iptables -w with args and returns its output.
func iptables(args ...string) (string, error) {
	cmd := exec.Command(iptablesBin(), append([]string{"-w"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("iptables %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// iptablesOK runs iptables and reports whether it succeeded (for -C and -L checks).
func iptablesOK(args ...string) bool {
	_, err := iptables(args...)
	return err == nil
}

// rule is one iptables rule: table, chain and match/target arguments.
type rule struct {
	table, chain string
	args         []string
}

// networkRules are the rules of a bridge network.
func networkRules(n *Network, tag string) []rule {
	br := n.Bridge
	c := []string{"-m", "comment", "--comment", tag}
	fwd := func(args ...string) rule {
		return rule{"filter", forwardChain, append(args, c...)}
	}
	var rules []rule
	if !wildcardBridge(br) {
		// Traffic from the bridge to published ports goes to the proxy (publish.go).
		rules = append(rules, rule{"nat", preroutingChain, append([]string{"-i", br, "-j", "RETURN"}, c...)})
	}
	rules = append(rules,
		fwd("-i", br, "!", "-o", br, "-j", isolationChain),
		rule{"filter", isolationChain, append([]string{"-o", br, "-j", "DROP"}, c...)},
		fwd("-i", br, "-o", br, "-j", "ACCEPT"))
	if n.Internal {
		rules = append(rules,
			fwd("-i", br, "!", "-o", br, "-j", "DROP"),
			fwd("!", "-i", br, "-o", br, "-j", "DROP"))
		return rules
	}
	rules = append(rules,
		fwd("-i", br, "!", "-o", br, "-j", "ACCEPT"),
		fwd("-o", br, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"),
		rule{"nat", "POSTROUTING", append([]string{"-s", n.Subnet, "!", "-o", br, "-j", "MASQUERADE"}, c...)})
	return rules
}

func (r rule) cmd(op string) []string {
	return append([]string{"-t", r.table, op, r.chain}, r.args...)
}

// iptablesSetup adds the network's rules (idempotent).
func iptablesSetup(n *Network, tag string) error {
	for _, chain := range []string{isolationChain, forwardChain} {
		if !iptablesOK("-t", "filter", "-n", "-L", chain) {
			if _, err := iptables("-t", "filter", "-N", chain); err != nil {
				return err
			}
		}
	}
	if !iptablesOK("-t", "filter", "-C", "FORWARD", "-j", forwardChain) {
		if _, err := iptables("-t", "filter", "-I", "FORWARD", "1", "-j", forwardChain); err != nil {
			return err
		}
	}
	for _, r := range networkRules(n, tag) {
		cmd := r.cmd("-A")
		if r.chain == preroutingChain { // before BERTH-PREROUTING's jump to BERTH-DNAT
			if err := iptablesPublishChains(); err != nil {
				return err
			}
			cmd = append([]string{"-t", r.table, "-I", r.chain, "1"}, r.args...)
		}
		if iptablesOK(r.cmd("-C")...) {
			continue
		}
		if _, err := iptables(cmd...); err != nil {
			return err
		}
	}
	return nil
}

// iptablesTeardown deletes the network's rules, and Berth's chain when it is empty.
func iptablesTeardown(n *Network, tag string) error {
	var errs []error
	for _, r := range networkRules(n, tag) {
		for i := 0; i < 16 && iptablesOK(r.cmd("-C")...); i++ {
			if _, err := iptables(r.cmd("-D")...); err != nil {
				errs = append(errs, err)
				break
			}
		}
	}
	errs = append(errs, dropEmptyChain(), dropPublishChains())
	return errors.Join(errs...)
}

// dropEmptyChain deletes BERTH-FORWARD and FORWARD's jump to it when no rule is left in
// it, then BERTH-ISOLATION when it is empty and nothing jumps to it.
func dropEmptyChain() error {
	if err := dropForwardChain(); err != nil {
		return err
	}
	out, err := iptables("-t", "filter", "-S", isolationChain)
	if err != nil {
		return nil // no chain
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "-A ") {
			return nil // still used
		}
	}
	if iptablesOK("-t", "filter", "-n", "-L", forwardChain) {
		return nil // BERTH-FORWARD may still jump to it
	}
	_, err = iptables("-t", "filter", "-X", isolationChain)
	return err
}

// dropForwardChain deletes BERTH-FORWARD and FORWARD's jump to it when no rule is left in it.
func dropForwardChain() error {
	out, err := iptables("-t", "filter", "-S", forwardChain)
	if err != nil {
		return nil // no chain
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "-A ") {
			return nil // still used
		}
	}
	for i := 0; i < 16 && iptablesOK("-t", "filter", "-C", "FORWARD", "-j", forwardChain); i++ {
		if _, err := iptables("-t", "filter", "-D", "FORWARD", "-j", forwardChain); err != nil {
			return err
		}
	}
	if _, err := iptables("-t", "filter", "-X", forwardChain); err != nil {
		return err
	}
	return nil
}

// iptablesCleanup deletes the rules tagged tag whose bridge is not in keep (left by a
// crash), then the chain when it is empty.
func iptablesCleanup(tag string, keep map[string]bool) error {
	var errs []error
	for _, tc := range [][2]string{{"filter", forwardChain}, {"filter", isolationChain}, {"nat", "POSTROUTING"}, {"nat", preroutingChain}} {
		out, err := iptables("-t", tc[0], "-S", tc[1])
		if err != nil {
			continue // no such chain
		}
		for _, line := range strings.Split(out, "\n") {
			fields := strings.Fields(strings.ReplaceAll(line, `"`, ""))
			if len(fields) < 2 || fields[0] != "-A" || !taggedRule(fields, tag) {
				continue
			}
			if br := ruleBridge(fields); br != "" && keep[br] {
				continue
			}
			fields[0] = "-D"
			slog.Info("network: deleting an orphaned iptables rule", "table", tc[0], "rule", line)
			if _, err := iptables(append([]string{"-t", tc[0]}, fields...)...); err != nil {
				errs = append(errs, err)
			}
		}
	}
	errs = append(errs, dropEmptyChain(), dropPublishChains())
	return errors.Join(errs...)
}

// taggedRule tells whether the fields of an iptables -S line carry the comment tag.
func taggedRule(fields []string, tag string) bool {
	for i := 0; i+1 < len(fields); i++ {
		if fields[i] == "--comment" && fields[i+1] == tag {
			return true
		}
	}
	return false
}

// ruleBridge returns the interface a rule matches with -i or -o.
func ruleBridge(fields []string) string {
	for i := 0; i+1 < len(fields); i++ {
		if fields[i] == "-i" || fields[i] == "-o" {
			return fields[i+1]
		}
	}
	return ""
}
