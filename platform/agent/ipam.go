package agent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
)

// ipam hands out pod IPs from an IPv4 range: never the network address, the gateway (the
// range's first address) nor the broadcast address. It allocates next-fit, so a freed address
// is reused only after the rest of the range, and stale endpoints rarely point at a new pod.
type ipam struct {
	mu    sync.Mutex
	cidr  *net.IPNet
	base  uint32 // the network address
	size  uint32 // addresses in the range
	next  uint32 // offset to try first
	inUse map[uint32]bool
}

func newIPAM(cidr string) (*ipam, error) {
	_, n, err := net.ParseCIDR(cidr)
	if err != nil {
		return nil, fmt.Errorf("pod CIDR %q: %w", cidr, err)
	}
	ip4 := n.IP.To4()
	ones, bits := n.Mask.Size()
	if ip4 == nil || bits != 32 {
		return nil, fmt.Errorf("pod CIDR %q: only IPv4 ranges are supported", cidr)
	}
	if ones > 29 {
		return nil, fmt.Errorf("pod CIDR %q: too small, use a /29 or larger", cidr)
	}
	if ip4[0] == 127 {
		return nil, fmt.Errorf("pod CIDR %q: loopback addresses are refused in EndpointSlices", cidr)
	}
	return &ipam{cidr: n, base: binary.BigEndian.Uint32(ip4), size: 1 << (32 - ones), next: 2, inUse: map[uint32]bool{}}, nil
}

func (a *ipam) ip(off uint32) net.IP {
	ip := make(net.IP, 4)
	binary.BigEndian.PutUint32(ip, a.base+off)
	return ip
}

// gateway is the range's first address, the host's side of every pod's link.
func (a *ipam) gateway() net.IP { return a.ip(1) }

var errRangeFull = errors.New("no pod IP left in the range")

// allocate returns a free address for which taken (if not nil) is false.
func (a *ipam) allocate(taken func(net.IP) bool) (net.IP, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	first, last := uint32(2), a.size-2
	for range last - first + 1 {
		off := a.next
		if off < first || off > last {
			off = first
		}
		a.next = off + 1
		if a.inUse[off] {
			continue
		}
		ip := a.ip(off)
		if taken != nil && taken(ip) {
			continue
		}
		a.inUse[off] = true
		return ip, nil
	}
	return nil, fmt.Errorf("%w %s", errRangeFull, a.cidr)
}

// release frees ip; freeing an address not allocated is a no-op.
func (a *ipam) release(ip net.IP) {
	ip4 := ip.To4()
	if ip4 == nil || !a.cidr.Contains(ip4) {
		return
	}
	a.mu.Lock()
	delete(a.inUse, binary.BigEndian.Uint32(ip4)-a.base)
	a.mu.Unlock()
}
