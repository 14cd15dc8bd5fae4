package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// podNetwork gives each pod an IP of its own: the pod's network namespace holds one end of a
// veth pair, "eth0", with the pod IP as a /32 and a default route through the gateway (the
// range's first address); the host's end carries the gateway address and the host routes the
// pod IP (a /32) to it. The host and its processes reach every pod IP directly, pods reach the
// host at the gateway address and each other through the host (forwarding is enabled on the
// host's veth ends only). Nothing is NATed: pods do not reach beyond the host.
type podNetwork struct {
	ipam   *ipam
	prefix string // names of this agent's host-side links: prefix + 8 hex digits
}

func newPodNetwork(cidr, stateDir string) (*podNetwork, error) {
	a, err := newIPAM(cidr)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(stateDir))
	return &podNetwork{ipam: a, prefix: "fn" + hex.EncodeToString(sum[:2])}, nil
}

func (n *podNetwork) gateway() net.IP { return n.ipam.gateway() }

// linkName is the host-side link of a pod (at most 15 characters, as Linux wants).
func (n *podNetwork) linkName(uid string) string {
	sum := sha256.Sum256([]byte(uid))
	return n.prefix + hex.EncodeToString(sum[:4])
}

// attach allocates an IP for the pod whose sandbox is sb and wires it up.
func (n *podNetwork) attach(sb *sandbox, uid string) (ip net.IP, err error) {
	ip, err = n.ipam.allocate(assignedOnHost)
	if err != nil {
		return nil, err
	}
	name := n.linkName(uid)
	nl, err := newNetlink()
	if err != nil {
		n.ipam.release(ip)
		return nil, err
	}
	defer nl.Close()
	defer func() {
		if err != nil {
			if idx, lerr := nl.linkIndex(name); lerr == nil {
				_ = nl.delLink(idx)
			}
			n.ipam.release(ip)
		}
	}()
	if idx, err := nl.linkIndex(name); err == nil { // left by a failed attempt
		_ = nl.delLink(idx)
	}
	gw := n.gateway()
	if err := nl.addVeth(name, "eth0", sb.netns); err != nil {
		return nil, err
	}
	idx, err := nl.linkIndex(name)
	if err != nil {
		return nil, err
	}
	if err := nl.addAddr(idx, gw); err != nil {
		return nil, err
	}
	if err := nl.setUp(idx); err != nil {
		return nil, err
	}
	// Pod to pod traffic goes through the host: let it forward what arrives on this link
	// (forwarding stays off elsewhere).
	_ = os.WriteFile("/proc/sys/net/ipv4/conf/"+name+"/forwarding", []byte("1"), 0o644)
	if err := nl.addRoute(ip, nil, idx); err != nil {
		if errors.Is(err, unix.EEXIST) {
			err = fmt.Errorf("%w: %s is already routed on this host (another node agent with the same pod CIDR?)", err, ip)
		}
		return nil, err
	}
	err = sb.do(func() error {
		pnl, err := newNetlink()
		if err != nil {
			return err
		}
		defer pnl.Close()
		lo, err := pnl.linkIndex("lo")
		if err != nil {
			return err
		}
		if err := pnl.setUp(lo); err != nil {
			return err
		}
		eth, err := pnl.linkIndex("eth0")
		if err != nil {
			return err
		}
		if err := pnl.addAddr(eth, ip); err != nil {
			return err
		}
		if err := pnl.setUp(eth); err != nil {
			return err
		}
		if err := pnl.addRoute(gw, nil, eth); err != nil {
			return err
		}
		return pnl.addRoute(nil, gw, eth)
	})
	if err != nil {
		return nil, fmt.Errorf("configuring the pod's network: %w", err)
	}
	return ip, nil
}

// detach removes the pod's link (the kernel removes its routes and addresses with it) and frees
// its IP.
func (n *podNetwork) detach(uid string, ip net.IP) error {
	defer n.ipam.release(ip)
	nl, err := newNetlink()
	if err != nil {
		return err
	}
	defer nl.Close()
	idx, err := nl.linkIndex(n.linkName(uid))
	if err != nil {
		if errors.Is(err, unix.ENODEV) {
			return nil // gone with the pod's namespace
		}
		return err
	}
	if err := nl.delLink(idx); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("deleting the pod's link: %w", err)
	}
	return nil
}

// cleanup deletes this agent's links left by a previous run.
func (n *podNetwork) cleanup() error {
	nl, err := newNetlink()
	if err != nil {
		return err
	}
	defer nl.Close()
	links, err := nl.links()
	if err != nil {
		return err
	}
	var errs []error
	for _, l := range links {
		if strings.HasPrefix(l.name, n.prefix) && len(l.name) == len(n.prefix)+8 {
			if err := nl.delLink(l.index); err != nil && !errors.Is(err, unix.ENODEV) {
				errs = append(errs, fmt.Errorf("deleting link %s: %w", l.name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// claimRange routes the pod range nowhere (unreachable) but for the pods' own routes: an
// address of a pod that is gone (its node lost, its link deleted) then fails at once with
// "no route to host", which the gateway retries elsewhere, instead of going out of the
// default route. The route outlives the agent, as the node's range does.
func (n *podNetwork) claimRange() error {
	nl, err := newNetlink()
	if err != nil {
		return err
	}
	defer nl.Close()
	return nl.setUnreachable(n.ipam.cidr, false)
}

// releaseRange removes claimRange's route.
func (n *podNetwork) releaseRange() error {
	nl, err := newNetlink()
	if err != nil {
		return err
	}
	defer nl.Close()
	return nl.setUnreachable(n.ipam.cidr, true)
}

// assignedOnHost reports whether ip is an address of one of the host's interfaces.
func assignedOnHost(ip net.IP) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// hostIPv4 is the host's first global IPv4 address outside the pod range: the pod IP of pods
// that share the host's network (hostNetwork, or an agent without root).
func hostIPv4(podCIDR *net.IPNet) (net.IP, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			n, ok := a.(*net.IPNet)
			if !ok || n.IP.To4() == nil || !n.IP.IsGlobalUnicast() || podCIDR.Contains(n.IP) {
				continue
			}
			return n.IP.To4(), nil
		}
	}
	return nil, errors.New("the host has no global IPv4 address for pods on the host's network")
}
