package network

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
)

// The nftables backend, for hosts without iptables: Berth's own table "ip berth" with a
// forward chain (filter hook), an isolation chain it jumps to (traffic between two Berth
// networks is dropped there, as iptables' BERTH-ISOLATION does) and a postrouting chain
// (nat hook), each rule commented with the root's tag; the table goes when its last rule
// does.

const nftTable = "berth"

// nftBin finds nft.
var nftBin = sync.OnceValue(func() string {
	if p, err := exec.LookPath("nft"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/nft", "/sbin/nft"} {
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
})

// nft runs nft with args (each a separate word of the nft command line).
func nft(args ...string) (string, error) {
	cmd := exec.Command(nftBin(), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("nft %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// nftRules are the network's rules: chain and rule text.
func nftRules(n *Network, tag string) [][2]string {
	br := `"` + n.Bridge + `"`
	c := ` comment "` + tag + `"`
	rules := [][2]string{
		{"forward", "iifname " + br + " oifname != " + br + " jump isolation" + c},
		{"isolation", "oifname " + br + " drop" + c},
		{"forward", "iifname " + br + " oifname " + br + " accept" + c},
	}
	if n.Internal {
		return append(rules,
			[2]string{"forward", "iifname " + br + " oifname != " + br + " drop" + c},
			[2]string{"forward", "iifname != " + br + " oifname " + br + " drop" + c})
	}
	return append(rules,
		[2]string{"forward", "iifname " + br + " oifname != " + br + " accept" + c},
		[2]string{"forward", "oifname " + br + " ct state established,related accept" + c},
		[2]string{"postrouting", "ip saddr " + n.Subnet + " oifname != " + br + " masquerade" + c})
}

// nftSetup adds the table, its chains and the network's rules (its old ones replaced).
func nftSetup(n *Network, tag string) error {
	if err := nftDelete(tag, func(br string) bool { return br == n.Bridge }); err != nil {
		return err
	}
	if _, err := nft("add", "table", "ip", nftTable); err != nil {
		return err
	}
	if _, err := nft("add", "chain", "ip", nftTable, "forward", "{ type filter hook forward priority -1 ; policy accept ; }"); err != nil {
		return err
	}
	if _, err := nft("add", "chain", "ip", nftTable, "postrouting", "{ type nat hook postrouting priority 100 ; policy accept ; }"); err != nil {
		return err
	}
	if _, err := nft("add", "chain", "ip", nftTable, "isolation"); err != nil {
		return err
	}
	for _, r := range nftRules(n, tag) {
		if _, err := nft("add", "rule", "ip", nftTable, r[0], r[1]); err != nil {
			return err
		}
	}
	return nil
}

// nftTeardown deletes the network's rules, and the table when it is empty.
func nftTeardown(n *Network, tag string) error {
	return nftDelete(tag, func(br string) bool { return br == n.Bridge })
}

// nftCleanup deletes the rules tagged tag of bridges not in keep.
func nftCleanup(tag string, keep map[string]bool) error {
	return nftDelete(tag, func(br string) bool { return !keep[br] })
}

var (
	nftHandle = regexp.MustCompile(`# handle (\d+)\s*$`)
	nftIf     = regexp.MustCompile(`[io]ifname (?:!= )?"([^"]+)"`)
)

// nftDelete deletes the rules tagged tag whose bridge del selects, then the table when no
// rule is left in it.
func nftDelete(tag string, del func(bridge string) bool) error {
	var errs []error
	left := 0
	// The isolation chain last: the forward chain's jumps to it go first.
	for _, chain := range []string{"forward", "postrouting", "isolation"} {
		out, err := nft("-a", "list", "chain", "ip", nftTable, chain)
		if err != nil {
			continue // no table or chain
		}
		for _, line := range strings.Split(out, "\n") {
			h := nftHandle.FindStringSubmatch(line)
			if h == nil || strings.Contains(line, "hook ") || strings.Contains(line, "chain ") {
				continue
			}
			m := nftIf.FindStringSubmatch(line)
			if !strings.Contains(line, `comment "`+tag+`"`) || m == nil || !del(m[1]) {
				left++
				continue
			}
			if _, err := nft("delete", "rule", "ip", nftTable, chain, "handle", h[1]); err != nil {
				errs = append(errs, err)
				left++
			}
		}
	}
	if left == 0 {
		if _, err := nft("list", "table", "ip", nftTable); err == nil {
			if _, err := nft("delete", "table", "ip", nftTable); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
