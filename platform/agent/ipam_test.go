package agent

import (
	"errors"
	"net"
	"testing"
)

func TestIPAM(t *testing.T) {
	a, err := newIPAM("10.244.0.0/29") // .0 network, .1 gateway, .7 broadcast: .2 to .6
	if err != nil {
		t.Fatal(err)
	}
	if gw := a.gateway().String(); gw != "10.244.0.1" {
		t.Errorf("gateway %s", gw)
	}
	var got []string
	for range 5 {
		ip, err := a.allocate(nil)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ip.String())
	}
	if want := "[10.244.0.2 10.244.0.3 10.244.0.4 10.244.0.5 10.244.0.6]"; want != fmtIPs(got) {
		t.Errorf("allocated %v, want %s", got, want)
	}
	if _, err := a.allocate(nil); !errors.Is(err, errRangeFull) {
		t.Errorf("allocating from a full range: %v", err)
	}
	a.release(net.ParseIP("10.244.0.3"))
	a.release(net.ParseIP("10.244.0.5"))
	a.release(net.ParseIP("192.168.0.1")) // not in the range: ignored
	// Next-fit: after .6 comes .3 (wrapping), then .5.
	for _, want := range []string{"10.244.0.3", "10.244.0.5"} {
		if ip, err := a.allocate(nil); err != nil || ip.String() != want {
			t.Errorf("allocate: %v, %v; want %s", ip, err, want)
		}
	}
	// Addresses the host already has are skipped.
	b, _ := newIPAM("10.9.0.0/24")
	ip, err := b.allocate(func(ip net.IP) bool { return ip.String() == "10.9.0.2" })
	if err != nil || ip.String() != "10.9.0.3" {
		t.Errorf("allocate skipping .2: %v, %v", ip, err)
	}
}

func fmtIPs(ips []string) string {
	s := "["
	for i, ip := range ips {
		if i > 0 {
			s += " "
		}
		s += ip
	}
	return s + "]"
}

func TestIPAMRanges(t *testing.T) {
	for _, bad := range []string{"nonsense", "fd00::/64", "10.0.0.0/30", "127.0.0.0/8"} {
		if _, err := newIPAM(bad); err == nil {
			t.Errorf("newIPAM(%q) accepted it", bad)
		}
	}
	if _, err := newIPAM(DefaultPodCIDR); err != nil {
		t.Error(err)
	}
}
