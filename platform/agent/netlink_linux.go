package agent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// A minimal rtnetlink client: the few requests the agent needs to give pods a network of
// their own (veth pairs, addresses, routes), without depending on iproute2.

const vethInfoPeer = 1 // VETH_INFO_PEER

type netlink struct {
	fd  int
	seq uint32
}

// newNetlink opens a route netlink socket in the calling thread's network namespace.
func newNetlink() (*netlink, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("opening a netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("binding a netlink socket: %w", err)
	}
	return &netlink{fd: fd}, nil
}

func (nl *netlink) Close() error { return unix.Close(nl.fd) }

// attr encodes a route attribute.
func attr(typ uint16, data ...[]byte) []byte {
	n := 4
	for _, d := range data {
		n += len(d)
	}
	b := make([]byte, 4, (n+3)&^3)
	binary.NativeEndian.PutUint16(b[0:], uint16(n))
	binary.NativeEndian.PutUint16(b[2:], typ)
	for _, d := range data {
		b = append(b, d...)
	}
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func cstring(s string) []byte { return append([]byte(s), 0) }

func u32(v uint32) []byte {
	b := make([]byte, 4)
	binary.NativeEndian.PutUint32(b, v)
	return b
}

// ifinfomsg encodes struct ifinfomsg.
func ifinfomsg(index int32, flags, change uint32) []byte {
	b := make([]byte, unix.SizeofIfInfomsg)
	b[0] = unix.AF_UNSPEC
	binary.NativeEndian.PutUint32(b[4:], uint32(index))
	binary.NativeEndian.PutUint32(b[8:], flags)
	binary.NativeEndian.PutUint32(b[12:], change)
	return b
}

// request sends one message. Without dump it waits for the kernel's acknowledgement; with dump
// it returns the payloads of the replies.
func (nl *netlink) request(typ, flags uint16, dump bool, body ...[]byte) ([][]byte, error) {
	nl.seq++
	n := unix.SizeofNlMsghdr
	for _, b := range body {
		n += len(b)
	}
	msg := make([]byte, unix.SizeofNlMsghdr, n)
	flags |= unix.NLM_F_REQUEST
	if dump {
		flags |= unix.NLM_F_DUMP
	} else {
		flags |= unix.NLM_F_ACK
	}
	binary.NativeEndian.PutUint32(msg[0:], uint32(n))
	binary.NativeEndian.PutUint16(msg[4:], typ)
	binary.NativeEndian.PutUint16(msg[6:], flags)
	binary.NativeEndian.PutUint32(msg[8:], nl.seq)
	for _, b := range body {
		msg = append(msg, b...)
	}
	if err := unix.Sendto(nl.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, err
	}
	var out [][]byte
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(nl.fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return nil, err
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			if m.Header.Seq != nl.seq {
				continue
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return out, nil
			case unix.NLMSG_ERROR:
				if len(m.Data) < 4 {
					return nil, errors.New("short netlink error message")
				}
				if errno := int32(binary.NativeEndian.Uint32(m.Data)); errno != 0 {
					return nil, syscall.Errno(-errno)
				}
				return out, nil
			default:
				out = append(out, append([]byte(nil), m.Data...))
			}
		}
	}
}

// link is a network interface.
type link struct {
	index int32
	name  string
}

// links lists the interfaces of the socket's namespace.
func (nl *netlink) links() ([]link, error) {
	msgs, err := nl.request(unix.RTM_GETLINK, 0, true, ifinfomsg(0, 0, 0))
	if err != nil {
		return nil, fmt.Errorf("listing links: %w", err)
	}
	var out []link
	for _, m := range msgs {
		if len(m) < unix.SizeofIfInfomsg {
			continue
		}
		l := link{index: int32(binary.NativeEndian.Uint32(m[4:]))}
		attrs, err := syscall.ParseNetlinkRouteAttr(&syscall.NetlinkMessage{
			Header: syscall.NlMsghdr{Type: unix.RTM_NEWLINK}, Data: m})
		if err != nil {
			return nil, err
		}
		for _, a := range attrs {
			if a.Attr.Type == unix.IFLA_IFNAME {
				l.name = string(trimNUL(a.Value))
			}
		}
		out = append(out, l)
	}
	return out, nil
}

func trimNUL(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return b
}

// linkIndex is the index of the interface named name.
func (nl *netlink) linkIndex(name string) (int32, error) {
	ls, err := nl.links()
	if err != nil {
		return 0, err
	}
	for _, l := range ls {
		if l.name == name {
			return l.index, nil
		}
	}
	return 0, fmt.Errorf("link %s: %w", name, unix.ENODEV)
}

// addVeth creates a veth pair: name here, peer in the network namespace peerNS (a file
// descriptor).
func (nl *netlink) addVeth(name, peer string, peerNS int) error {
	peerInfo := append(ifinfomsg(0, 0, 0), append(attr(unix.IFLA_IFNAME, cstring(peer)), attr(unix.IFLA_NET_NS_FD, u32(uint32(peerNS)))...)...)
	linkInfo := attr(unix.IFLA_LINKINFO,
		attr(unix.IFLA_INFO_KIND, cstring("veth")),
		attr(unix.IFLA_INFO_DATA, attr(vethInfoPeer, peerInfo)))
	_, err := nl.request(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL, false,
		ifinfomsg(0, 0, 0), attr(unix.IFLA_IFNAME, cstring(name)), linkInfo)
	if err != nil {
		return fmt.Errorf("creating veth %s: %w", name, err)
	}
	return nil
}

// setUp brings an interface up.
func (nl *netlink) setUp(index int32) error {
	_, err := nl.request(unix.RTM_NEWLINK, 0, false, ifinfomsg(index, unix.IFF_UP, unix.IFF_UP))
	if err != nil {
		return fmt.Errorf("bringing link %d up: %w", index, err)
	}
	return nil
}

// delLink deletes an interface (both ends, for a veth).
func (nl *netlink) delLink(index int32) error {
	_, err := nl.request(unix.RTM_DELLINK, 0, false, ifinfomsg(index, 0, 0))
	return err
}

// addAddr adds ip/32 to an interface.
func (nl *netlink) addAddr(index int32, ip net.IP) error {
	if err := nl.addr(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_EXCL, index, ip); err != nil {
		return fmt.Errorf("adding %s to link %d: %w", ip, index, err)
	}
	return nil
}

// delAddr removes ip/32 from an interface.
func (nl *netlink) delAddr(index int32, ip net.IP) error {
	if err := nl.addr(unix.RTM_DELADDR, 0, index, ip); err != nil {
		return fmt.Errorf("removing %s from link %d: %w", ip, index, err)
	}
	return nil
}

func (nl *netlink) addr(typ, flags uint16, index int32, ip net.IP) error {
	ip4 := ip.To4()
	msg := make([]byte, unix.SizeofIfAddrmsg)
	msg[0] = unix.AF_INET
	msg[1] = 32
	msg[3] = unix.RT_SCOPE_UNIVERSE
	binary.NativeEndian.PutUint32(msg[4:], uint32(index))
	_, err := nl.request(typ, flags, false, msg, attr(unix.IFA_LOCAL, ip4), attr(unix.IFA_ADDRESS, ip4))
	return err
}

// addRoute adds a route to dst/32 (the default route when dst is nil) out of interface index,
// through gw when not nil (directly on the link otherwise).
func (nl *netlink) addRoute(dst, gw net.IP, index int32) error {
	msg := make([]byte, unix.SizeofRtMsg)
	msg[0] = unix.AF_INET
	msg[4] = unix.RT_TABLE_MAIN
	msg[5] = unix.RTPROT_BOOT
	msg[6] = unix.RT_SCOPE_LINK
	msg[7] = unix.RTN_UNICAST
	body := [][]byte{msg}
	if dst != nil {
		msg[1] = 32
		body = append(body, attr(unix.RTA_DST, dst.To4()))
	}
	if gw != nil {
		msg[6] = unix.RT_SCOPE_UNIVERSE
		body = append(body, attr(unix.RTA_GATEWAY, gw.To4()))
	}
	body = append(body, attr(unix.RTA_OIF, u32(uint32(index))))
	_, err := nl.request(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_EXCL, false, body...)
	if err != nil {
		what := "default"
		if dst != nil {
			what = dst.String()
		}
		return fmt.Errorf("adding route %s via link %d: %w", what, index, err)
	}
	return nil
}

// setUnreachable makes dst unreachable (RTN_UNREACHABLE, replacing any such route): more
// specific routes, such as a pod's /32, still win; other addresses of dst fail at once with
// EHOSTUNREACH instead of taking the default route. del removes the route instead.
func (nl *netlink) setUnreachable(dst *net.IPNet, del bool) error {
	ones, _ := dst.Mask.Size()
	msg := make([]byte, unix.SizeofRtMsg)
	msg[0] = unix.AF_INET
	msg[1] = byte(ones)
	msg[4] = unix.RT_TABLE_MAIN
	msg[5] = unix.RTPROT_BOOT
	msg[6] = unix.RT_SCOPE_UNIVERSE
	msg[7] = unix.RTN_UNREACHABLE
	body := [][]byte{msg, attr(unix.RTA_DST, dst.IP.To4())}
	typ, flags := uint16(unix.RTM_NEWROUTE), uint16(unix.NLM_F_CREATE|unix.NLM_F_REPLACE)
	if del {
		typ, flags = unix.RTM_DELROUTE, 0
	}
	if _, err := nl.request(typ, flags, false, body...); err != nil {
		return fmt.Errorf("route unreachable %s: %w", dst, err)
	}
	return nil
}
